"""ServiceSync against in-memory tenant and meta apiservers: a Service becomes a ServiceLB
with the EndpointSlice's ready backends, the private zone gets its records, a LoadBalancer
Service gets its EXTERNAL-IP from the ServiceLB's status, and a deleted Service takes its
ServiceLBs with it."""
import asyncio

from operators.kubeclient.events import EventRecorder
from operators.virtualnode.controllers.servicesync import ServiceSync
from operators.virtualnode.informers import NodeInformers

from .fakekube import FakeKube, Tasks, until

META_NS = "tenant-c"
SVCS = "/api/v1/namespaces/default/services"
SLICES = "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices"
LBS = f"/apis/sk8s.io/v1alpha1/namespaces/{META_NS}/servicelbs"
ZONE = f"/apis/sk8s.io/v1alpha1/namespaces/{META_NS}/privatezones/cluster.local"


def service(name="web", type_="ClusterIP", **spec):
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"type": type_, "clusterIP": "10.96.0.10",
                     "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}], **spec}}


def endpoint_slice(service_name, ips, name=None):
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name or f"{service_name}-1", "labels": {"kubernetes.io/service-name": service_name}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [{"addresses": [ip], "conditions": {"ready": True},
                           "targetRef": {"kind": "Pod", "name": f"p{n}"}} for n, ip in enumerate(ips)]}


class Services:
    def __init__(self):
        self.tenant, self.meta = FakeKube("tenant"), FakeKube("meta")
        inf = NodeInformers.create(self.tenant, self.meta, meta_namespace=META_NS, cluster_uid="u1",
                                   node_name="vn")
        self.informers = inf
        self.sync = ServiceSync(tenant=self.tenant, meta=self.meta, services=inf.services, slices=inf.slices,
                                servicelbs=inf.servicelbs, events=EventRecorder(self.tenant, component="t", host="n"),
                                cluster="c", cluster_uid="u1", meta_namespace=META_NS)

    def start(self, tasks: Tasks) -> None:
        for i in (self.informers.services, self.informers.slices, self.informers.servicelbs):
            tasks(i)
        tasks(self.sync)

    def lb(self, name="default.web"):
        return self.meta.stored(f"{LBS}/{name}")

    def zone_records(self):
        return {(r["rr"], r["type"]): r["values"] for r in ((self.meta.stored(ZONE) or {}).get("spec") or {})
                .get("records") or []}


async def test_a_service_becomes_a_servicelb_and_zone_records():
    s = Services()
    s.tenant.put(SVCS, service())
    s.tenant.put(SLICES, endpoint_slice("web", ["10.1.0.3", "10.1.0.2"]))
    async with Tasks() as tasks:
        s.start(tasks)
        await until(lambda: s.lb() is not None)
        lb = s.lb()
        assert lb["spec"]["service"] == {"namespace": "default", "name": "web"}
        assert lb["metadata"]["labels"]["sk8s.io/cluster-uid"] == "u1"
        assert lb["spec"]["listeners"] == [{"protocol": "TCP", "port": 80, "targetPort": 8080, "name": "http"}]
        assert [b["ip"] for b in lb["spec"]["backends"]] == ["10.1.0.2", "10.1.0.3"]

        # The ServiceLB operator gives it an address: the zone answers with it.
        await s.meta.patch(f"{LBS}/default.web/status", {"status": {"phase": "Ready", "address": "10.96.0.10"}})
        await until(lambda: s.zone_records().get(("web.default.svc", "A")) == ["10.96.0.10"])
        zone = s.meta.stored(ZONE)
        assert zone["spec"]["vpcIDs"] == ["u1"] and zone["spec"]["clusterRef"] == {"name": "c"}
        assert s.zone_records()[("_http._tcp.web.default.svc", "SRV")] == ["0 100 80 web.default.svc.cluster.local"]

        # An endpoint change reaches the backends.
        s.tenant.put(SLICES, endpoint_slice("web", ["10.1.0.9"]))
        await until(lambda: [b["ip"] for b in s.lb()["spec"]["backends"]] == ["10.1.0.9"])


async def test_a_load_balancer_service_gets_its_external_ip_and_a_deleted_service_loses_its_lbs():
    s = Services()
    s.tenant.put(SVCS, service(type_="LoadBalancer"))
    async with Tasks() as tasks:
        s.start(tasks)
        await until(lambda: s.lb() is not None and s.lb("default.web.internet") is not None)
        assert s.lb("default.web.internet")["spec"]["addressType"] == "internet"
        await s.meta.patch(f"{LBS}/default.web.internet/status", {"status": {"phase": "Ready", "address": "203.0.113.5"}})
        await until(lambda: ((s.tenant.stored(f"{SVCS}/web").get("status") or {}).get("loadBalancer") or {})
                    .get("ingress") == [{"ip": "203.0.113.5", "ipMode": "VIP"}])
        reasons = {o["reason"] for k, o in s.tenant.objects.items() if k[1] == "events"}
        assert {"EnsuringLoadBalancer", "EnsuredLoadBalancer"} <= reasons

        await s.tenant.delete(f"{SVCS}/web")
        await until(lambda: s.lb() is None and s.lb("default.web.internet") is None)


async def test_servicelbs_left_by_a_service_deleted_while_the_node_was_down_are_removed():
    s = Services()
    s.meta.put(LBS, {"apiVersion": "sk8s.io/v1alpha1", "kind": "ServiceLB",
                     "metadata": {"name": "default.old", "labels": {"sk8s.io/cluster-uid": "u1"}},
                     "spec": {"service": {"namespace": "default", "name": "old"}}})
    s.meta.put(LBS, {"apiVersion": "sk8s.io/v1alpha1", "kind": "ServiceLB",
                     "metadata": {"name": "default.theirs", "labels": {"sk8s.io/cluster-uid": "u2"}},
                     "spec": {"service": {"namespace": "default", "name": "theirs"}}})
    async with Tasks() as tasks:
        s.start(tasks)
        await until(lambda: s.lb("default.old") is None)
        await asyncio.sleep(0.05)
        assert s.lb("default.theirs") is not None  # another cluster's


async def test_session_affinity_switched_off_leaves_the_servicelb_without_it():
    """A merge patch of the wanted spec alone kept the old timeout: the load balancer stayed
    sticky after the Service's sessionAffinity went back to None."""
    s = Services()
    s.tenant.put(SVCS, service(sessionAffinity="ClientIP"))
    s.tenant.put(SLICES, endpoint_slice("web", ["10.1.0.2"]))
    async with Tasks() as tasks:
        s.start(tasks)
        await until(lambda: (s.lb() or {}).get("spec", {}).get("sessionAffinityTimeoutSeconds") == 10800)
        s.tenant.put(SVCS, service(sessionAffinity="None"))
        await until(lambda: "sessionAffinityTimeoutSeconds" not in s.lb()["spec"])
        assert [b["ip"] for b in s.lb()["spec"]["backends"]] == ["10.1.0.2"]
