"""The pod's `<hostname>.<subdomain>.<ns>.svc.cluster.local` line of /etc/hosts (virtual node:
hostDomain; local provider: the line, before podman's own) and the reverse zone's PTR
records as kube-dns answers them, served by the VPC resolver."""
import pytest
from dnslib import QTYPE, RCODE, DNSRecord

from operators.providers.errors import InvalidSpecError
from operators.providers.local.dnsserver import ZoneTable
from operators.providers.local.hostsfile import domain_line, with_domain_line
from operators.virtualnode.mapping.reversezone import build_reverse_zone, ptr_records, reverse_rr
from operators.models.podspec import PodSpec
from operators.providers.podrules import kernel_hostname
from operators.providers.sandbox import SandboxRef
from operators.virtualnode.mapping.spec import build_sandboxpod, host_domain, hostname_of


def pod(**spec):
    return {"metadata": {"name": "web-0", "namespace": "shop", "uid": "u"},
            "spec": {"containers": [{"name": "app", "image": "busybox"}], **spec}}


def test_subdomain_gives_the_kubelets_host_domain_and_hostname_the_pods_hostname():
    assert host_domain(pod(subdomain="web")) == "web.shop.svc.cluster.local"
    assert host_domain(pod()) is None
    spec = build_sandboxpod(pod(hostname="db", subdomain="web"), namespace="t", cluster="c", cluster_uid="cu",
                            env={})["spec"]
    assert spec["hostname"] == "db" and spec["hostDomain"] == "web.shop.svc.cluster.local"
    assert "hostDomain" not in build_sandboxpod(pod(), namespace="t", cluster="c", cluster_uid="cu", env={})["spec"]


def test_set_hostname_as_fqdn_and_hostname_override_as_the_kubelet():
    spec = build_sandboxpod(pod(hostname="db", subdomain="web", setHostnameAsFQDN=True), namespace="t",
                            cluster="c", cluster_uid="cu", env={})["spec"]
    assert spec["setHostnameAsFQDN"] is True
    ref = SandboxRef("t", "shop.web-0", "u")
    assert kernel_hostname(ref, PodSpec.model_validate(spec)) == "db.web.shop.svc.cluster.local"
    plain = build_sandboxpod(pod(hostname="db", setHostnameAsFQDN=True), namespace="t", cluster="c",
                             cluster_uid="cu", env={})["spec"]
    assert kernel_hostname(ref, PodSpec.model_validate(plain)) == "db"  # no subdomain: no domain
    long = build_sandboxpod(pod(hostname="d" * 40, subdomain="web", setHostnameAsFQDN=True), namespace="t",
                            cluster="c", cluster_uid="cu", env={})["spec"]
    with pytest.raises(InvalidSpecError, match=r"is too long \(64 characters is the max, 67 characters requested\)"):
        kernel_hostname(ref, PodSpec.model_validate(long))
    # hostnameOverride: the hostname as given (a DNS subdomain, cut to 63), and no domain.
    over = pod(hostname="db", subdomain="web", hostnameOverride="my.host.example")
    assert hostname_of(over) == "my.host.example" and host_domain(over) is None
    spec = build_sandboxpod(over, namespace="t", cluster="c", cluster_uid="cu", env={})["spec"]
    assert kernel_hostname(ref, PodSpec.model_validate(spec)) == "my.host.example"
    assert hostname_of(pod(hostnameOverride="a" * 62 + ".b")) == "a" * 62


@pytest.mark.parametrize("sub", ["Web", "a\nb", "a b", "x" * 64, "-a", "a.b"])
def test_a_subdomain_that_is_no_dns_label_is_not_written(sub):
    assert host_domain(pod(subdomain=sub)) is None


PODMAN_HOSTS = "127.0.0.1\tlocalhost\n::1\tlocalhost\n10.112.0.7\tdb abc123-infra\n127.0.0.1\tpod-app\n"


def test_the_line_goes_before_podmans_line_for_the_address_once():
    line = domain_line("10.112.0.7", "db", "web.shop.svc.cluster.local")
    assert line == "10.112.0.7\tdb.web.shop.svc.cluster.local\tdb"
    out = with_domain_line(PODMAN_HOSTS, line)
    assert out.splitlines() == ["127.0.0.1\tlocalhost", "::1\tlocalhost", line, "10.112.0.7\tdb abc123-infra",
                                "127.0.0.1\tpod-app"]
    assert with_domain_line(out, line) == out  # again after a provider restart: unchanged
    assert with_domain_line("127.0.0.1\tlocalhost\n", line).splitlines()[-1] == line


@pytest.mark.parametrize("ip,host,domain", [
    ("10.0.0.1\n1.2.3.4", "db", "web.ns.svc.cluster.local"),
    ("", "db", "web.ns.svc.cluster.local"),
    ("10.0.0.1", "db evil", "web.ns.svc.cluster.local"),
    ("10.0.0.1", "db", "web.ns.svc.cluster.local\n6.6.6.6 bank.example"),
    ("10.0.0.1", "db", "web ns"),
    ("10.0.0.1", "db", "a" * 250),
])
def test_hostile_parts_are_refused_not_written(ip, host, domain):
    with pytest.raises(InvalidSpecError):
        domain_line(ip, host, domain)


def svc(name, ns="default", **spec):
    return {"metadata": {"name": name, "namespace": ns}, "spec": spec}


def slice_(ips_hosts):
    return {"addressType": "IPv4", "endpoints": [
        {"addresses": [ip], "hostname": h, "conditions": {"ready": True}} for ip, h in ips_hosts]}


def test_ptr_records_for_cluster_ips_and_headless_endpoints_with_hostnames():
    services = [svc("kubernetes", clusterIP="10.96.0.1"),
                svc("nginx-svc", "web", clusterIP="10.112.1.20", clusterIPs=["10.112.1.20"]),
                svc("db", "web", clusterIP="None"),
                svc("ext", "web", type="ExternalName", externalName="example.com"),
                svc("v6", "web", clusterIP="fd00::1")]
    slices = {("web", "db"): [slice_([("10.112.0.5", "db-0"), ("10.112.0.6", None)])]}
    recs = ptr_records(services, lambda ns, n: slices.get((ns, n), []))
    assert recs == [
        {"rr": "1.0.96.10", "type": "PTR", "values": ["kubernetes.default.svc.cluster.local"], "ttl": 5},
        {"rr": "20.1.112.10", "type": "PTR", "values": ["nginx-svc.web.svc.cluster.local"], "ttl": 5},
        {"rr": "5.0.112.10", "type": "PTR", "values": ["db-0.db.web.svc.cluster.local"], "ttl": 5},
    ]
    assert reverse_rr("fd00::1") is None and reverse_rr("nonsense") is None
    zone = build_reverse_zone(cluster="c", cluster_uid="u1", namespace="tenant-c", zone_records=recs)
    assert zone["metadata"]["name"] == "in-addr.arpa" and zone["spec"]["zoneName"] == "in-addr.arpa"
    assert zone["spec"]["vpcIDs"] == ["u1"]

    # The VPC resolver answers them beside cluster.local, and NXDOMAIN for other addresses.
    table = ZoneTable()
    table.load([("cluster.local", []), ("in-addr.arpa", recs)])
    answer = table.answer(DNSRecord.question("20.1.112.10.in-addr.arpa", "PTR"))
    assert [str(rr.rdata) for rr in answer.rr] == ["nginx-svc.web.svc.cluster.local."]
    assert answer.rr[0].rtype == QTYPE.PTR
    assert table.answer(DNSRecord.question("9.9.112.10.in-addr.arpa", "PTR")).header.rcode == RCODE.NXDOMAIN


async def test_service_sync_keeps_the_reverse_zone_beside_cluster_local():
    from .fakekube import Tasks, until
    from .test_servicesync import META_NS, SVCS, Services, service
    s = Services()
    s.tenant.put(SVCS, service(clusterIP="10.96.0.10"))
    path = f"/apis/sk8s.io/v1alpha1/namespaces/{META_NS}/privatezones/in-addr.arpa"

    def ptrs():
        return {r["rr"]: r["values"] for r in ((s.meta.stored(path) or {}).get("spec") or {}).get("records") or []}
    async with Tasks() as tasks:
        s.start(tasks)
        await until(lambda: ptrs() == {"10.0.96.10": ["web.default.svc.cluster.local"]})
        zone = s.meta.stored(path)
        assert zone["spec"]["zoneName"] == "in-addr.arpa" and zone["spec"]["vpcIDs"] == ["u1"]
        await s.tenant.delete(f"{SVCS}/web")
        await until(lambda: ptrs() == {})


def test_pod_a_records_for_pods_with_an_address_that_have_not_finished():
    from operators.virtualnode.mapping.reversezone import pod_records

    def p(ns, ip, phase="Running"):
        return {"metadata": {"namespace": ns, "name": "x"}, "status": {"podIP": ip, "phase": phase}}
    recs = pod_records([p("web", "10.112.0.5"), p("db", "10.112.0.6", "Pending"), p("web", "10.112.0.7", "Succeeded"),
                        p("web", ""), p("web", "fd00::5")])
    assert recs == [{"rr": "10-112-0-5.web.pod", "type": "A", "values": ["10.112.0.5"], "ttl": 5},
                    {"rr": "10-112-0-6.db.pod", "type": "A", "values": ["10.112.0.6"], "ttl": 5}]


async def test_service_sync_writes_pod_records_into_cluster_local():
    from .fakekube import Tasks, until
    from .test_servicesync import ZONE, Services
    s = Services()
    s.sync.pods = s.informers.pods
    s.informers.pods.handlers.append(s.sync._on_pod)
    pods = "/api/v1/namespaces/default/pods"
    s.tenant.put(pods, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a"},
                        "status": {"podIP": "10.112.0.9", "phase": "Running"}})

    def a_records():
        return {r["rr"]: r["values"] for r in ((s.meta.stored(ZONE) or {}).get("spec") or {}).get("records") or []
                if r["rr"].endswith(".pod")}
    async with Tasks() as tasks:
        tasks(s.informers.pods)
        s.start(tasks)
        await until(lambda: a_records() == {"10-112-0-9.default.pod": ["10.112.0.9"]})
        await s.tenant.delete(f"{pods}/a")
        await until(lambda: a_records() == {})
