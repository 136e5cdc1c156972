"""The metapod provider's load balancers: each ServiceLB is a meta-cluster Service of type
LoadBalancer in the ServiceLB's namespace (the tenant's sandbox namespace), owned by the
ServiceLB, selector-less, with EndpointSlices this provider writes (lbbuild.py: the
backends that are sandbox Pods of that namespace, nothing else).

Who gives the address (config.metapod_lb_settings):

- a meta-cluster with a load-balancer controller (a cloud's): the Service is left to it
  (no loadBalancerClass unless SK8S_METAPOD_LB_CLASS names one) and the ServiceLB's address
  is the Service's status.loadBalancer.ingress, waited for up to ADDRESS_WAIT in `ensure`
  (then a retryable ProviderError, and the handler asks again);
- SK8S_METAPOD_LB_ADDRESSES (a pool): this provider is the controller. The Service takes
  loadBalancerClass `sk8s.io/metapod-pool` (a cloud's controller leaves it alone) and no
  node ports; the provider picks a free pool address (the one asked for in
  spec.loadBalancerIP, else the one recorded, else the first free) and writes it to the
  Service's status.loadBalancer.ingress. kube-proxy on every node then serves it: its
  nftables mode DNATs a load-balancer ingress IP as it does a ClusterIP, whatever the
  class. On the kind bed, hack/kind.sh routes the pool (SK8S_KIND_LB_SUBNET, 10.248.0.0/24
  for the first bed) from the host to the control-plane node over the bed's podman
  bridge, with a `prohibit` route under it, so no packet for the pool leaves the machine
  while the bed is down.

Rejected alternative: `spec.externalIPs` from the pool. kube-proxy (nftables) serves those
too (measured on the bed, same answer), but the field is deprecated (the 1.37 apiserver
warns "spec.externalIPs is deprecated and may no longer be implemented in some clusters"),
is often forbidden by admission (DenyServiceExternalIPs, CVE-2020-8554), and would make
the meta Service a ClusterIP in one mode and a LoadBalancer in the other.

Not served: intranet ServiceLBs (a tenant's ClusterIP Services: their addresses are the
tenant's service range, which the meta-cluster does not route) and `apiServer` ones; both
are refused as NotSupported. Health is the sandbox Pods' readiness as last read (the meta
kubelet runs the probes; a change there changes the tenant's endpoints, hence `follow`).

Measured on the kind bed (tests/kind/test_metapod_loadbalancer.py, pool mode, 2 shared
cores): the first HTTP answer from the host 1.1 s after `ensure` starts (`ensure` itself
0.05-0.08 s; the rest is kube-proxy's sync, min-sync-period 1 s), against 1.3-1.5 s for a
plain meta Service selecting the same Pod with its address written the same way (ratio
0.8, same run). Slices are written before the Service: the other order cost a second sync
(2.3 s). Through the ServiceLB operator (kopf, SK8S_PROVIDER=metapod, a pool; 1-node bed, 5
runs): ServiceLB created -> address in status 0.3-1.0 s, first answer p50 1.86 s against
2.32 s for the plain meta Service (0.80).

API cost per ensure: an apply of the Service, one list of the namespace's sandbox Pods,
one list and an apply per EndpointSlice, and in pool mode a status patch when the address
changes; per follow the same without the Service.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Callable

from ... import kube
from ...kubeclient.client import ApiError, KubeClient
from ...models.contracts import LABEL_HOME, LABEL_PROVIDER
from ..errors import ProviderError
from ..services import LBSpec, LBState, LoadBalancers
from .lbbuild import (LABEL_LB_UID, build_service, build_slices, build_state, ingress_address, pick_address,
                      pool_addresses, sandbox_ips, service_name)
from .podbuild import PROVIDER

log = logging.getLogger(__name__)
MANAGER = "sk8s-servicelb"
ADDRESS_WAIT = 30.0  # seconds `ensure` waits for a controller's address before asking to be retried
ADDRESS_POLL = 1.0


def services_path(namespace: str | None = None, name: str | None = None) -> str:
    scope = f"/namespaces/{namespace}" if namespace else ""
    return f"/api/v1{scope}/services" + (f"/{name}" if name else "")


def slices_path(namespace: str | None = None, name: str | None = None) -> str:
    scope = f"/namespaces/{namespace}" if namespace else ""
    return f"/apis/discovery.k8s.io/v1{scope}/endpointslices" + (f"/{name}" if name else "")


def _error(err: ApiError, what: str) -> ProviderError:
    final = err.status in (400, 422)
    return ProviderError(f"{what}: {err}", reason=err.reason or ("Unreachable" if not err.status else "ApiError"),
                         retryable=not final)


@dataclass
class _Served:
    spec: LBSpec
    address: str
    state: LBState


def _shape(spec: LBSpec) -> tuple:
    """What `follow` must find unchanged to take new backends (everything but them)."""
    return (spec.namespace, spec.name, spec.address_type, tuple(spec.listeners), spec.load_balancer_ip,
            spec.affinity_seconds)


class MetaPodLoadBalancers(LoadBalancers):
    name = PROVIDER

    def __init__(self, home_id: str, pool: tuple[str, ...] | list[str] = (), lb_class: str | None = None,
                 client: Callable[[], KubeClient] = kube.client, *, address_wait: float = ADDRESS_WAIT):
        self.home_id, self._client, self.address_wait = home_id, client, address_wait
        self.pool = pool_addresses(pool)
        self.lb_class = lb_class
        self._taken: dict[str, str] = {}  # pool address -> LB id
        self._served: dict[str, _Served] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    @property
    def selector(self) -> str:
        return f"{LABEL_HOME}={self.home_id},{LABEL_PROVIDER}={PROVIDER}"

    async def setup(self, known: dict[str, str]) -> None:
        """Reserve the recorded addresses; delete the Services of LBs no status records (a
        run killed before it wrote one: `ensure` makes them again on resume)."""
        for lb_id, addr in known.items():
            if addr in self.pool:
                self._taken[addr] = lb_id
        try:
            items, _ = await self._client().list_all(services_path(), {"labelSelector": self.selector})
        except ApiError as err:
            raise _error(err, "listing the load balancers' Services") from None
        for svc in items:
            lb_id = (svc["metadata"].get("labels") or {}).get(LABEL_LB_UID)
            if lb_id and lb_id not in known:
                log.info("deleting orphaned load balancer Service %s/%s", svc["metadata"]["namespace"],
                         svc["metadata"]["name"])
                await self.delete(lb_id)

    async def ensure(self, spec: LBSpec, address: str | None) -> LBState:
        self._check(spec)
        async with self._locks.setdefault(spec.id, asyncio.Lock()):
            # Slices first: kube-proxy then sees the Service with its endpoints in one sync
            # (one the address waits for fewer; its min-sync-period is a second).
            pods = await self._sandbox_pods(spec.namespace)
            await self._write_slices(spec, pods)
            svc = await self._apply_service(spec)
            if self.pool:
                addr = await self._give_address(spec, svc, address)
            else:
                addr = ingress_address(svc) or await self._wait_for_address(spec)
            state = build_state(spec, addr, pods)
            self._served[spec.id] = _Served(spec, addr, state)
            return state

    def _check(self, spec: LBSpec) -> None:
        if spec.api_server or spec.address_type != "internet":
            raise ProviderError("the metapod provider serves internet load balancers only (a tenant's ClusterIPs and "
                                "its API server's are not routed in the meta-cluster)", reason="NotSupported",
                                retryable=False)
        if not spec.namespace or not spec.name:
            raise ProviderError("the ServiceLB's namespace and name are unknown", reason="NotSupported",
                                retryable=False)

    async def follow(self, spec: LBSpec) -> bool:
        served = self._served.get(spec.id)
        if served is None or _shape(served.spec) != _shape(spec):
            return False
        async with self._locks.setdefault(spec.id, asyncio.Lock()):
            served = self._served.get(spec.id)
            if served is None or _shape(served.spec) != _shape(spec):
                return False
            if spec.version is not None and served.spec.version is not None and spec.version < served.spec.version:
                return True  # older than what is served: dropped
            pods = await self._sandbox_pods(spec.namespace)
            await self._write_slices(spec, pods)
            self._served[spec.id] = _Served(spec, served.address, build_state(spec, served.address, pods))
            return True

    def state(self, lb_id: str) -> LBState | None:
        served = self._served.get(lb_id)
        return served.state if served else None

    async def delete(self, lb_id: str, address: str | None = None, vpc_id: str | None = None) -> None:
        """The Service and slices by label, in whichever namespace (a run that never served
        the LB does not know it); the ServiceLB's ownership deletes them too, later."""
        async with self._locks.setdefault(lb_id, asyncio.Lock()):
            selector = f"{self.selector},{LABEL_LB_UID}={lb_id}"
            for path in (slices_path, services_path):
                try:
                    items, _ = await self._client().list_all(path(), {"labelSelector": selector})
                    for obj in items:
                        meta = obj["metadata"]
                        await self._delete(path(meta["namespace"], meta["name"]), meta["uid"])
                except ApiError as err:
                    raise _error(err, f"deleting load balancer {lb_id}") from None
            self._served.pop(lb_id, None)
            for addr in [a for a, owner in self._taken.items() if owner == lb_id]:
                del self._taken[addr]
        self._locks.pop(lb_id, None)

    async def _delete(self, path: str, uid: str) -> None:
        try:
            await self._client().delete(path, uid=uid)
        except ApiError as err:
            if err.status not in (404, 409):  # gone, or another object of that name now
                raise

    # --- meta-cluster objects ---------------------------------------------------------
    async def _apply_service(self, spec: LBSpec) -> dict:
        body = build_service(spec, self.home_id, self.lb_class)
        name = body["metadata"]["name"]
        try:
            current = await self._client().get_or_none(services_path(spec.namespace, name))
            labels = ((current or {}).get("metadata") or {}).get("labels") or {}
            if current is not None and (labels.get(LABEL_LB_UID), labels.get(LABEL_HOME)) != (spec.id, self.home_id):
                raise ProviderError(f"Service {spec.namespace}/{name} exists and is not this load balancer's "
                                    "(or is another installation's)",
                                    reason="Conflict", retryable=False)
            return await self._client().apply(services_path(spec.namespace, name), body, MANAGER)
        except ApiError as err:
            raise _error(err, f"applying Service {spec.namespace}/{name}") from None

    async def _sandbox_pods(self, namespace: str) -> dict[str, dict]:
        try:
            items, _ = await self._client().list_all(f"/api/v1/namespaces/{namespace}/pods",
                                                     {"labelSelector": self.selector})
        except ApiError as err:
            raise _error(err, f"listing the sandbox Pods of {namespace}") from None
        return sandbox_ips(items, self.home_id)

    async def _write_slices(self, spec: LBSpec, pods: dict[str, dict]) -> None:
        want = build_slices(spec, pods, self.home_id)
        names = {s["metadata"]["name"] for s in want}
        try:
            have, _ = await self._client().list_all(slices_path(spec.namespace),
                                                    {"labelSelector": f"{LABEL_LB_UID}={spec.id}"})
            for sl in want:
                await self._client().apply(slices_path(spec.namespace, sl["metadata"]["name"]), sl, MANAGER)
            for sl in have:
                if sl["metadata"]["name"] not in names:
                    await self._delete(slices_path(spec.namespace, sl["metadata"]["name"]), sl["metadata"]["uid"])
        except ApiError as err:
            raise _error(err, f"writing the EndpointSlices of {service_name(spec.id)}") from None

    async def _give_address(self, spec: LBSpec, svc: dict, recorded: str | None) -> str:
        """Pool mode: this provider is the load-balancer controller of its class."""
        addr = pick_address(spec, recorded or ingress_address(svc), self.pool, self._taken)
        if addr is None:
            if spec.load_balancer_ip:
                raise ProviderError(f"spec.loadBalancerIP {spec.load_balancer_ip} is not a free address of the pool",
                                    reason="AddressUnavailable", retryable=False)
            raise ProviderError("the load balancer address pool is exhausted", reason="AddressUnavailable")
        for other in [a for a, owner in self._taken.items() if owner == spec.id and a != addr]:
            del self._taken[other]
        self._taken[addr] = spec.id
        if ingress_address(svc) != addr:
            try:
                await self._client().patch_status(services_path(spec.namespace, service_name(spec.id)),
                                                  {"loadBalancer": {"ingress": [{"ip": addr, "ipMode": "VIP"}]}})
            except ApiError as err:
                raise _error(err, f"writing the address of Service {service_name(spec.id)}") from None
        return addr

    async def _wait_for_address(self, spec: LBSpec) -> str:
        deadline = time.monotonic() + self.address_wait
        path = services_path(spec.namespace, service_name(spec.id))
        while time.monotonic() < deadline:
            await asyncio.sleep(ADDRESS_POLL)
            try:
                addr = ingress_address(await self._client().get_or_none(path))
            except ApiError as err:
                raise _error(err, f"reading Service {service_name(spec.id)}") from None
            if addr:
                return addr
        raise ProviderError(f"the meta-cluster's load-balancer controller gave Service {spec.namespace}/"
                            f"{service_name(spec.id)} no address in {self.address_wait:.0f}s", reason="Provisioning")
