"""Keeps the tenant's Services served: ServiceLBs and the private zone in the meta-cluster,
and each LoadBalancer Service's EXTERNAL-IP in the tenant.

Everything is driven by watches (Services, EndpointSlices, ServiceLBs): an endpoint
change reaches the ServiceLB's backends and the zone's records in one patch each.
"""
from __future__ import annotations

import asyncio
import logging

from ... import API_VERSION
from ...kubeclient.events import EventRecorder
from ...kubeclient.informer import Informer
from ...kubeclient.client import ApiError, KubeClient
from ...kubeclient.runner import Runner
from ...models.contracts import LABEL_SERVICE_NAME, LABEL_SERVICE_NAMESPACE
from ..mapping.reversezone import REVERSE_ZONE_OBJECT, build_reverse_zone, pod_records, ptr_records
from ..mapping import with_provider
from ..mapping.services import (ZONE_OBJECT, build_servicelbs, build_zone,
                       external_type, ignored_ports, ingress, lb_failure, lb_refusal, records, svc_key)

log = logging.getLogger(__name__)
WORKERS = 4
ZONE_DEBOUNCE = 0.05
SERVICE_NAME_LABEL = "kubernetes.io/service-name"


def _ns_name(obj: dict) -> tuple[str, str]:
    return obj["metadata"]["namespace"], obj["metadata"]["name"]


# Providers with private zones (the tenant's cluster.local). metapod has none yet: its
# tenants' pods resolve with the resolvers the operator is configured with (README).
ZONE_PROVIDERS = ("local", "aliyun")


class ServiceSync:
    def __init__(self, *, tenant: KubeClient, meta: KubeClient, services: Informer, slices: Informer,
                 servicelbs: Informer, events: EventRecorder, cluster: str, cluster_uid: str, meta_namespace: str,
                 service_cidr: str = "", pods: Informer | None = None, provider: str = "local"):
        self.tenant, self.meta, self.events = tenant, meta, events
        self.provider = provider  # the cluster's: its load balancers and zones are that provider's
        self.service_cidr = service_cidr or None  # the tenant's ClusterIP range (mapping/services.py)
        self.cluster, self.cluster_uid, self.namespace = cluster, cluster_uid, meta_namespace
        self.lb_path = f"/apis/{API_VERSION}/namespaces/{meta_namespace}/servicelbs"
        self.zone_path = f"/apis/{API_VERSION}/namespaces/{meta_namespace}/privatezones"
        self.services, self.slices, self.lbs = services, slices, servicelbs  # started by the VirtualNode
        self.slices_by_service: dict[tuple[str, str], set[tuple[str, str]]] = {}
        self.runner = Runner("service", self.reconcile, workers=WORKERS, describe=lambda key: "/".join(key))
        self.queue = self.runner.queue
        self.zone_dirty = asyncio.Event()
        self._zone_records: dict[str, list[dict]] = {}  # zone object -> records last written
        self.services.handlers.append(self._on_service)
        self.slices.handlers.append(self._on_slice)
        self.lbs.handlers.append(self._on_lb)
        self.pods = pods  # for pod A records (mapping/reversezone.py pod_records)
        if pods is not None:
            pods.handlers.append(self._on_pod)

    # --- events -> keys ----------------------------------------------------------
    def _on_service(self, kind: str, obj: dict, old: dict | None) -> None:
        self.queue.add(_ns_name(obj))

    def _on_slice(self, kind: str, obj: dict, old: dict | None) -> None:
        ns = obj["metadata"]["namespace"]
        svc = (obj["metadata"].get("labels") or {}).get(SERVICE_NAME_LABEL)
        if not svc:
            return
        keys = self.slices_by_service.setdefault((ns, svc), set())
        if kind == "DELETED":
            keys.discard(_ns_name(obj))
        else:
            keys.add(_ns_name(obj))
        self.queue.add((ns, svc))

    def _on_pod(self, kind: str, obj: dict, old: dict | None) -> None:
        def seen(p: dict | None) -> tuple:
            st = (p or {}).get("status") or {}
            return st.get("podIP"), st.get("phase") in ("Succeeded", "Failed")
        if kind == "DELETED" or old is None or seen(obj) != seen(old):
            self.zone_dirty.set()

    def _on_lb(self, kind: str, obj: dict, old: dict | None) -> None:
        labels = obj["metadata"].get("labels") or {}
        if labels.get(LABEL_SERVICE_NAMESPACE) and labels.get(LABEL_SERVICE_NAME):
            # Label values may be shortened; the spec has the exact names.
            ref = (obj.get("spec") or {}).get("service") or {}
            self.queue.add((ref.get("namespace") or labels[LABEL_SERVICE_NAMESPACE],
                            ref.get("name") or labels[LABEL_SERVICE_NAME]))
        self.zone_dirty.set()

    def slices_of(self, namespace: str, name: str) -> list[dict]:
        return [s for k in self.slices_by_service.get((namespace, name), ()) if (s := self.slices.get(k))]

    def lbs_of(self, namespace: str, name: str) -> dict[str, dict]:
        return {n: lb for n, lb in self.lbs.store.items()
                if ((lb.get("spec") or {}).get("service") or {}) == {"namespace": namespace, "name": name}}

    # --- loops -------------------------------------------------------------------
    async def run(self) -> None:
        tasks: list[asyncio.Task] = []
        try:
            await asyncio.gather(*(i.synced.wait() for i in (self.services, self.slices, self.lbs)))
            # ServiceLBs whose Service went away while we were down are found here.
            for lb in self.lbs.items():
                ref = (lb.get("spec") or {}).get("service") or {}
                if ref:
                    self.queue.add((ref["namespace"], ref["name"]))
            self.zone_dirty.set()
            tasks.append(asyncio.create_task(self.runner.run(), name="service-workers"))
            tasks.append(asyncio.create_task(self._zone_loop(), name="zone"))
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for t in done:
                t.result()
            raise RuntimeError("service sync ended unexpectedly")
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _warn(self, svc: dict, reason: str, message: str) -> None:
        self.events.emit(svc, "Warning", reason, message, kind="Service")

    async def reconcile(self, key: tuple[str, str]) -> None:
        svc = self.services.get(key)
        if svc is not None:
            for message in ignored_ports(svc, self.service_cidr):
                self._warn(svc, "PortNotServed", message)
            refusal = lb_refusal(svc, self.slices_of(*key), self.service_cidr)
            if refusal:
                # What is served stays, as upstream's service controller keeps a load
                # balancer it cannot update; the tenant learns why from the Event.
                self._warn(svc, "SyncLoadBalancerFailed", refusal)
                self.zone_dirty.set()
                return
        desired = {} if svc is None else {
            lb["metadata"]["name"]: with_provider(lb, self.provider) for lb in build_servicelbs(
                svc, self.slices_of(*key), cluster=self.cluster, cluster_uid=self.cluster_uid,
                namespace=self.namespace, service_cidr=self.service_cidr)}
        current = self.lbs_of(*key)
        for name, lb in current.items():
            if name not in desired and not lb["metadata"].get("deletionTimestamp"):
                log.info("deleting ServiceLB %s (its Service is gone or needs no load balancer)", name)
                try:
                    await self.meta.delete(f"{self.lb_path}/{name}")
                except ApiError as exc:
                    if exc.status != 404:
                        raise
        for name, want in desired.items():
            have = current.get(name)
            try:
                if have is None:
                    try:
                        self.lbs.put_if_newer(await self.meta.create(self.lb_path, want))
                    except ApiError as exc:
                        if exc.status != 409:
                            raise
                        have = await self.meta.get(f"{self.lb_path}/{name}")
                    if have is None and svc is not None and external_type(svc):
                        self.events.emit(svc, "Normal", "EnsuringLoadBalancer", "Ensuring load balancer",
                                         kind="Service")
                if have is not None and _spec_differs(have.get("spec") or {}, want["spec"]):
                    self.lbs.put_if_newer(await self.meta.patch(f"{self.lb_path}/{name}",
                                                                {"spec": spec_patch(have.get("spec") or {},
                                                                                    want["spec"])}))
            except ApiError as exc:
                if exc.status not in (400, 422) or svc is None:
                    raise
                # Refused by the ServiceLB schema: retrying the same spec cannot help.
                self._warn(svc, "SyncLoadBalancerFailed", f"load balancer {name} refused: {exc.message}")
            if have is not None and svc is not None and (failure := lb_failure(have)):
                self._warn(svc, "SyncLoadBalancerFailed", failure)
        if svc is not None and external_type(svc):
            await self._sync_ingress(svc)
        self.zone_dirty.set()

    async def _sync_ingress(self, svc: dict) -> None:
        want = ingress(svc, self.lbs_of(*svc_key(svc)))
        have = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        if want == have:
            return
        ns, name = svc_key(svc)
        updated = await self.tenant.patch(f"/api/v1/namespaces/{ns}/services/{name}/status",
                                          {"status": {"loadBalancer": {"ingress": want or None}}})
        self.services.put_if_newer(updated)
        if want:
            self.events.emit(svc, "Normal", "EnsuredLoadBalancer", f"Ensured load balancer {want[0]['ip']}",
                             kind="Service")

    async def _zone_loop(self) -> None:
        if self.provider not in ZONE_PROVIDERS:
            log.info("provider %s has no private zones: the tenant's Service names are not served", self.provider)
            return
        while True:
            await self.zone_dirty.wait()
            await asyncio.sleep(ZONE_DEBOUNCE)  # a burst of endpoint changes becomes one patch
            self.zone_dirty.clear()
            try:
                await self._sync_zone()
            except ApiError as exc:
                log.warning("private zone: %s; retrying", exc)
                await asyncio.sleep(1)
                self.zone_dirty.set()

    async def _sync_zone(self) -> None:
        services = self.services.items()
        zone = records(services, self.slices_of, self.lbs.store, self.service_cidr)
        if self.pods is not None:
            zone = sorted(zone + pod_records(self.pods.items()), key=lambda r: (r["rr"], r["type"]))
        await self._sync_one_zone(ZONE_OBJECT, zone, build_zone)
        # PTR records in a zone of their own, as kube-dns answers them (mapping/reversezone.py).
        await self._sync_one_zone(REVERSE_ZONE_OBJECT, ptr_records(services, self.slices_of), build_reverse_zone)

    async def _sync_one_zone(self, name: str, want: list[dict], build) -> None:
        if want == self._zone_records.get(name):
            return
        try:
            await self.meta.patch(f"{self.zone_path}/{name}", {"spec": {"records": want}})
        except ApiError as exc:
            if exc.status != 404:
                raise
            await self.meta.create(self.zone_path, with_provider(
                build(cluster=self.cluster, cluster_uid=self.cluster_uid, namespace=self.namespace,
                      zone_records=want), self.provider))
        self._zone_records[name] = want


# ServiceLB spec fields that build_servicelbs leaves out when the Service does not ask for
# them: a merge patch of the wanted spec alone would keep an old value.
OPTIONAL_LB_FIELDS = ("sessionAffinityTimeoutSeconds", "loadBalancerIP", "apiServer")


def _spec_differs(have: dict, want: dict) -> bool:
    return any(have.get(k) != v for k, v in want.items()) or \
        any(k in have and k not in want for k in OPTIONAL_LB_FIELDS)


def spec_patch(have: dict, want: dict) -> dict:
    """A merge patch from `have` to `want`: an optional field the wanted spec no longer has
    (sessionAffinityTimeoutSeconds once the Service's affinity is None) is removed, not kept."""
    return {**{k: None for k in OPTIONAL_LB_FIELDS if k in have and k not in want}, **want}
