"""Hostile tenants, class 5 (issue 9): one tenant's virtual-node credentials for the
meta-cluster reach no other tenant, and load balancer failures are said, not swallowed.

Two real tenant clusters, A and B. With A's virtual node's own meta kubeconfig (the file
the ServerlessCluster operator wrote into A's control-plane directory), every object that
names B's cluster, VPC or zone binding, or tries B's namespace, must be refused: by RBAC,
at admission, or by its operator with a Failed status and an Event naming the field. After
each attempt B's pods, sandboxes, DNS answers and VPC are as they were, and no network or
address is left behind.
"""
from __future__ import annotations

import ipaddress
import json
import os
import signal
import socket
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from dnslib import DNSRecord

from operators.config import home_id
from operators.providers.local.loadbalancer import internet_range

from .conftest import IMAGE, REPO, phase
from .tenant import Tenant, anchor_addresses, delete_cluster, make_cluster, wait_deletions

pytestmark = pytest.mark.e2e
API = "sk8s.io/v1alpha1"
WEB = "web.default.svc.cluster.local"
TENANCY_POLICY = REPO / "manifests" / "tenancy" / "tenancy-policy.yaml"


@dataclass
class Side:
    tenant: Tenant
    name: str
    uid: str
    ns: str


def make_side(meta, name: str) -> Side:
    t = make_cluster(meta, name, quotas={"maxPods": 10, "cpu": "8", "memory": "8Gi"})
    sc = meta.get("serverlesscluster", name, "default")
    return Side(t, name, sc["metadata"]["uid"], sc["status"]["sandboxNamespace"])


def wait(predicate, timeout: float = 30, interval: float = 0.2, what: str = "condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except Exception as exc:  # not there yet
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


@pytest.fixture(scope="module")
def a(meta):
    side = make_side(meta, "sec-a")
    yield side
    delete_cluster(meta, "sec-a")


@pytest.fixture(scope="module")
def b(meta):
    side = make_side(meta, "sec-b")
    side.tenant.kubectl("create", "deployment", "web", f"--image={IMAGE}")
    side.tenant.kubectl("expose", "deployment", "web", "--port=80", "--target-port=80")
    side.tenant.kubectl("rollout", "status", "deployment/web", "--timeout=120s")
    wait(lambda: resolve(meta, side, WEB)[1], timeout=60, what="B's web Service in B's DNS")
    yield side
    delete_cluster(meta, "sec-b")


def vnode_kubeconfig(meta, uid: str) -> Path:
    """Where the virtual node's meta credentials live: its control plane's directory."""
    for d in (meta.home / "planes").iterdir():
        claim = d / "claimed-by"
        if claim.exists() and claim.read_text().strip() == uid:
            path = d / "meta.kubeconfig"
            assert path.exists(), f"no meta kubeconfig in {d}"
            return path
    raise AssertionError(f"no control plane claimed by {uid}")


@pytest.fixture(scope="module")
def vnode(meta, a):
    """kubectl as A's virtual node towards the meta-cluster (its context's namespace is A's)."""
    kubeconfig = vnode_kubeconfig(meta, a.uid)
    assert yaml.safe_load(kubeconfig.read_text())["contexts"][0]["context"]["namespace"] == a.ns

    def run(*args: str, input: str | None = None) -> subprocess.CompletedProcess:
        return meta.kubectl(f"--kubeconfig={kubeconfig}", *args, input=input, check=False)
    return run


def create(run, obj: dict, ns: str) -> subprocess.CompletedProcess:
    return run("create", "-n", ns, "-f", "-", input=yaml.safe_dump(obj))


# --- what B has, and what the host has -------------------------------------------------
def zone(meta, side: Side) -> dict:
    return meta.get("privatezone", "cluster.local", side.ns)


def resolve(meta, side: Side, name: str) -> tuple[int, list[str]]:
    resolver = zone(meta, side)["status"]["resolvers"][0]
    reply = DNSRecord.parse(DNSRecord.question(name, "A").send(resolver, 53, timeout=2))
    return reply.header.rcode, sorted(str(r.rdata) for r in reply.rr)


def networks(meta) -> set[str]:
    out = meta.podman("network", "ls", "--format={{.Name}}", f"--filter=label=sk8s.io/home={home_id(meta.home)}")
    return set(out.stdout.split())


def containers_of(meta, uid: str) -> set[str]:
    out = meta.podman("ps", "-a", "--format={{.Names}}", f"--filter=label=sk8s.io/cluster-uid={uid}")
    return set(out.stdout.split())


def lb_listeners(meta) -> set[tuple[str, int]]:
    """TCP listeners of this installation's internet LB range (host-wide: /proc/net/tcp)."""
    rng = internet_range(home_id(meta.home))
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        if state != "0A":  # LISTEN
            continue
        hexip, hexport = local.split(":")
        ip = str(ipaddress.IPv4Address(bytes(reversed(bytes.fromhex(hexip)))))
        if ipaddress.ip_address(ip) in rng:
            found.add((ip, int(hexport, 16)))
    return found


def snapshot(meta, b: Side) -> dict:
    pods = json.loads(b.tenant.kubectl("get", "pods", "-o", "json").stdout)["items"]
    return {"pods": sorted((p["metadata"]["uid"], p["status"].get("podIP"), p["status"].get("phase")) for p in pods),
            "sandboxes": containers_of(meta, b.uid), "dns": resolve(meta, b, WEB),
            "addresses": anchor_addresses(meta, b.uid),
            "network": meta.podman("network", "inspect", f"sk8s-{home_id(meta.home)}-{b.uid[:12]}",
                                   "--format={{json .Subnets}}").stdout}


@pytest.fixture
def b_untouched(meta, a, b):
    """B's pods, sandboxes, DNS answer and VPC are the same after the test; no network of
    this installation appeared or went. (An earlier module's cluster may still be being
    deleted, its network with it: that deletion ends first.)"""
    wait_deletions(meta)
    before, nets = snapshot(meta, b), networks(meta)
    assert len(before["pods"]) == 1 and before["dns"][1]
    yield before
    assert snapshot(meta, b) == before
    assert networks(meta) == nets


# --- refusals ----------------------------------------------------------------------------
def refused(meta, proc: subprocess.CompletedProcess, kind: str, name: str, ns: str, field: str) -> str:
    """Refused at admission or by RBAC (the answer names the field or says Forbidden), or by
    its operator: a Failed status whose condition names the field, and an Event saying it."""
    if proc.returncode != 0:
        assert field in proc.stderr, proc.stderr
        return "admission"
    obj = meta.wait_for(kind, name, ns, lambda o: phase(o) == "Failed", timeout=60, interval=0.2)
    st = obj["status"]
    assert field in (st.get("message") or ""), st
    assert any(c["status"] == "False" and field in (c.get("message") or "") for c in st.get("conditions") or []), st

    def event():
        out = meta.kubectl("get", "events", "-n", ns, f"--field-selector=involvedObject.name={name}",
                           "-o", "json").stdout
        return [e for e in json.loads(out)["items"] if e["type"] == "Warning" and field in e["message"]]
    wait(event, timeout=20, what=f"a Warning Event naming {field} on {kind} {name}")
    return "operator"


def delete_as(run, kind: str, name: str, ns: str) -> None:
    proc = run("delete", kind, name, "-n", ns, "--ignore-not-found", "--timeout=60s")
    assert proc.returncode == 0, proc.stderr


def sandboxpod(name: str, labels: dict | None = None, **spec) -> dict:
    return {"apiVersion": API, "kind": "SandboxPod", "metadata": {"name": name, "labels": labels or {}},
            "spec": {"containers": [{"name": "c", "image": IMAGE, "imagePullPolicy": "IfNotPresent",
                                     "command": ["sleep", "3600"]}],
                     "terminationGracePeriodSeconds": 0, **spec}}


def servicelb(name: str, labels: dict | None = None, **spec) -> dict:
    spec.setdefault("listeners", [{"protocol": "TCP", "port": 80, "targetPort": 80}])
    return {"apiVersion": API, "kind": "ServiceLB", "metadata": {"name": name, "labels": labels or {}},
            "spec": spec}


def privatezone(name: str, vpcs: list[str], records: list[dict] | None = None, **spec) -> dict:
    return {"apiVersion": API, "kind": "PrivateZone", "metadata": {"name": name},
            "spec": {"zoneName": "cluster.local", "vpcIDs": vpcs, **spec,
                     "records": records or [{"rr": "web.default.svc", "type": "A", "values": ["6.6.6.6"]}]}}


# --- RBAC: the credentials end at the tenant's namespace ---------------------------------------
def test_the_virtual_nodes_credentials_end_at_its_namespace(meta, vnode, a, b, b_untouched):
    forbidden = [
        create(vnode, sandboxpod("x"), b.ns),
        create(vnode, servicelb("x", vpcID=b.uid, addressType="intranet"), b.ns),
        create(vnode, privatezone("x", [b.uid]), b.ns),
        vnode("get", "sandboxpods", "-n", b.ns),
        vnode("get", "secrets", "-n", b.ns),
        vnode("delete", "privatezone", "cluster.local", "-n", b.ns),
        vnode("patch", "privatezone", "cluster.local", "-n", b.ns, "--type=merge", "-p",
              json.dumps({"spec": {"records": [{"rr": "web.default.svc", "type": "A", "values": ["6.6.6.6"]}]}})),
        vnode("get", "servicelbs", "-A"),
        # Its own namespace's labels say whose objects are there: it cannot change them.
        vnode("label", "namespace", a.ns, f"sk8s.io/cluster-uid={b.uid}", "--overwrite"),
        vnode("create", "namespace", f"tenant-sec-b-{uuid.uuid4().hex[:8]}"),
        vnode("get", "serverlessclusters", "-A"),
        # Status is the operators' word, not the writer's (it records LB addresses).
        vnode("patch", "servicelb", "any", "-n", a.ns, "--subresource=status", "--type=merge",
              "-p", '{"status":{"address":"127.0.0.1"}}'),
        # Nothing but its sandboxes: no meta-cluster Pods, no RBAC of its own.
        vnode("run", "escape", f"--image={IMAGE}", "-n", a.ns),
        vnode("create", "rolebinding", "more", "--clusterrole=cluster-admin", "--serviceaccount", f"{a.ns}:default",
              "-n", a.ns),
    ]
    for proc in forbidden:
        assert proc.returncode != 0 and "forbidden" in proc.stderr.lower(), (proc.args, proc.stdout, proc.stderr)
    assert zone(meta, b)["spec"]["records"] and resolve(meta, b, WEB) == b_untouched["dns"]


@pytest.fixture
def host_listener():
    """A loopback service on the host (as the meta etcd and apiservers are) that counts
    every connection it gets."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    sock.settimeout(0.2)
    hits: list[int] = []
    stop = threading.Event()

    def accept():
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
                hits.append(1)
                conn.close()
            except OSError:
                pass
    threading.Thread(target=accept, daemon=True).start()
    yield sock.getsockname()[1], hits
    stop.set()
    sock.close()


# --- attacks: a table of (kind, object, field the refusal names), tried with the meta-cluster's
# admission policy (manifests/tenancy) and again without it, where the operators must refuse the same.
def attacks(a: Side, b: Side, b_pod_ip: str, host_port: int) -> dict[str, tuple[str, dict, str]]:
    ghost = "0e7a1b2c-0000-4000-8000-" + uuid.uuid4().hex[:12]
    return {
        # SandboxPods that would run in B's VPC.
        "sbp-uid-label": ("sandboxpod", sandboxpod("into-b", {"sk8s.io/cluster-uid": b.uid}),
                          "metadata.labels[sk8s.io/cluster-uid]"),
        "sbp-all-of-b": ("sandboxpod", sandboxpod("into-b", {"sk8s.io/cluster-uid": b.uid, "sk8s.io/cluster": b.name},
                                                  clusterRef={"name": b.name}),
                         "metadata.labels[sk8s.io/cluster-uid]"),
        "sbp-cluster-ref": ("sandboxpod", sandboxpod("into-b", clusterRef={"name": b.name}), "spec.clusterRef.name"),
        "sbp-cluster-label": ("sandboxpod", sandboxpod("into-b", {"sk8s.io/cluster": b.name}),
                              "metadata.labels[sk8s.io/cluster]"),
        # A host loopback port on an internet address, through an LB without a VPC.
        "lb-no-vpc-host-port": ("servicelb", servicelb("into-b", addressType="internet", backends=[{"ip": "127.0.0.1"}],
                                                       listeners=[{"protocol": "TCP", "port": 80,
                                                                   "targetPort": host_port}]), "spec.vpcID"),
        "lb-empty-vpc": ("servicelb", servicelb("into-b", addressType="internet", vpcID="",
                                                backends=[{"ip": "127.0.0.1"}]), "spec.vpcID"),
        # An address in B's VPC, or B's pod on the internet.
        "lb-intranet-in-b": ("servicelb", servicelb("into-b", addressType="intranet", vpcID=b.uid,
                                                    backends=[{"ip": b_pod_ip}]), "spec.vpcID"),
        "lb-internet-from-b": ("servicelb", servicelb("into-b", addressType="internet", vpcID=b.uid,
                                                      backends=[{"ip": b_pod_ip}]), "spec.vpcID"),
        "lb-uid-label": ("servicelb", servicelb("into-b", {"sk8s.io/cluster-uid": b.uid}, addressType="intranet",
                                                vpcID=a.uid), "metadata.labels[sk8s.io/cluster-uid]"),
        "lb-cluster-ref": ("servicelb", servicelb("into-b", addressType="intranet", vpcID=a.uid,
                                                  clusterRef={"name": b.name}), "spec.clusterRef.name"),
        # Records overriding B's names, and a VPC nobody has (it would be created, never removed).
        "zone-b": ("privatezone", privatezone("into-b", [b.uid]), "spec.vpcIDs"),
        "zone-a-and-b": ("privatezone", privatezone("into-b", [a.uid, b.uid]), "spec.vpcIDs"),
        "zone-unknown-vpc": ("privatezone", privatezone("into-b", [ghost]), "spec.vpcIDs"),
    }


ATTACKS = ["sbp-uid-label", "sbp-all-of-b", "sbp-cluster-ref", "sbp-cluster-label", "lb-no-vpc-host-port",
           "lb-empty-vpc", "lb-intranet-in-b", "lb-internet-from-b", "lb-uid-label", "lb-cluster-ref", "zone-b",
           "zone-a-and-b", "zone-unknown-vpc"]


def attempt(meta, vnode, a: Side, b: Side, before: dict, variant: str, host) -> str:
    """One attack with A's virtual-node credentials; how it was refused. Nothing of it runs,
    listens, answers or stays on the host."""
    port, hits = host
    kind, obj, field = attacks(a, b, before["pods"][0][1], port)[variant]
    a_sandboxes, a_addresses, listening = containers_of(meta, a.uid), anchor_addresses(meta, a.uid), lb_listeners(meta)
    proc = create(vnode, obj, a.ns)
    try:
        how = refused(meta, proc, kind, "into-b", a.ns, field)
        got = meta.get(kind, "into-b", a.ns)
        if got is not None:
            assert not (got.get("status") or {}).get("address")
            out = meta.podman("ps", "-a", "--format={{.Names}}", f"--filter=label=sk8s.io/uid={got['metadata']['uid']}")
            assert out.stdout.split() == []  # no sandbox anywhere: not in B's VPC, not in A's
        if kind == "privatezone":
            time.sleep(1)  # a zone served in B's VPC would answer at once
        assert resolve(meta, b, WEB) == before["dns"]
        assert containers_of(meta, a.uid) == a_sandboxes and anchor_addresses(meta, a.uid) == a_addresses
        assert lb_listeners(meta) == listening and not hits
        return how
    finally:
        delete_as(vnode, kind, "into-b", a.ns)  # a refused object goes as any other: no stuck finalizer


@pytest.mark.parametrize("variant", ATTACKS)
def test_an_object_naming_another_tenant_is_refused_at_admission(meta, vnode, a, b, b_untouched, host_listener,
                                                                 variant):
    assert attempt(meta, vnode, a, b, b_untouched, variant, host_listener) == "admission"


@pytest.fixture
def without_admission_policy(meta, vnode, a, b):
    """The meta-cluster's tenancy policy unbound (as on a meta-cluster where it was never
    installed): the operators are the second line."""
    probe = yaml.safe_dump(servicelb("probe", addressType="intranet", vpcID=b.uid))

    def admitted() -> bool:
        return vnode("create", "--dry-run=server", "-n", a.ns, "-f", "-", input=probe).returncode == 0
    meta.kubectl("delete", "validatingadmissionpolicybinding", "sk8s-tenancy")
    wait(admitted, timeout=30, what="the policy unbound")
    yield
    meta.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(TENANCY_POLICY))
    wait(lambda: not admitted(), timeout=30, what="the policy bound again")


def test_without_the_admission_policy_the_operators_refuse_the_same(meta, vnode, a, b, b_untouched, host_listener,
                                                                    without_admission_policy):
    for variant in ATTACKS:
        assert attempt(meta, vnode, a, b, b_untouched, variant, host_listener) == "operator", variant


def test_a_sandboxpod_asking_for_another_provider_is_refused_by_name(meta, vnode, a, b_untouched):
    proc = create(vnode, sandboxpod("elsewhere", provider="aliyun"), a.ns)
    try:
        assert refused(meta, proc, "sandboxpod", "elsewhere", a.ns, "spec.provider") == "operator"
    finally:
        delete_as(vnode, "sandboxpod", "elsewhere", a.ns)


def test_backends_outside_the_tenants_own_vpc_are_never_proxied(meta, vnode, a, b_untouched, host_listener):
    """In its own VPC an LB is served, but only to the tenant's own pods: B's pod and the
    host's loopback are refused backends."""
    port, hits = host_listener
    b_pod_ip = b_untouched["pods"][0][1]
    lb = servicelb("own-vpc", addressType="internet", vpcID=a.uid,
                   listeners=[{"protocol": "TCP", "port": 80, "targetPort": 80},
                              {"protocol": "TCP", "port": 81, "targetPort": port}],
                   backends=[{"ip": b_pod_ip}, {"ip": "127.0.0.1"}])
    proc = create(vnode, lb, a.ns)
    assert proc.returncode == 0, proc.stderr
    try:
        obj = meta.wait_for("servicelb", "own-vpc", a.ns, lambda o: phase(o) == "Ready" and o["status"].get("backends"),
                            timeout=60)
        assert {b["ip"] for b in obj["status"]["backends"] if not b["healthy"]} == {b_pod_ip, "127.0.0.1"}
        assert all(b["message"] == "outside the load balancer's VPC" for b in obj["status"]["backends"])
        for p in (80, 81):
            with pytest.raises(OSError):
                with socket.create_connection((obj["status"]["address"], p), timeout=2) as conn:
                    conn.settimeout(2)
                    conn.sendall(b"GET / HTTP/1.0\r\n\r\n")
                    if not conn.recv(100):
                        raise OSError("closed without a byte")
        assert not hits
    finally:
        delete_as(vnode, "servicelb", "own-vpc", a.ns)


# --- PrivateZones ----------------------------------------------------------------------------
def test_a_zone_in_the_tenants_own_vpc_still_works(meta, vnode, a, b_untouched):
    """The refusals are about other tenants: the same credentials still serve A's own VPC."""
    proc = create(vnode, privatezone("own", [a.uid], [{"rr": "mine.example", "type": "A", "values": ["10.9.9.9"]}]),
                  a.ns)
    assert proc.returncode == 0, proc.stderr
    try:
        meta.wait_for("privatezone", "own", a.ns, lambda o: phase(o) == "Ready", timeout=60)
        assert wait(lambda: resolve(meta, a, "mine.example.cluster.local")[1] == ["10.9.9.9"], timeout=10)
    finally:
        delete_as(vnode, "privatezone", "own", a.ns)


# --- an admin's objects: trusted, but a VPC they name must be a cluster's ----------------------
def test_admin_objects_naming_no_cluster_create_no_network(meta, namespace, a, b_untouched):
    ghost = str(uuid.uuid4())
    cases = [(sandboxpod("ghost", {"sk8s.io/cluster-uid": ghost}), "sandboxpod",
              "metadata.labels[sk8s.io/cluster-uid]"),
             (servicelb("ghost", addressType="intranet", vpcID=ghost), "servicelb", "spec.vpcID"),
             (privatezone("ghost", [ghost]), "privatezone", "spec.vpcIDs[0]")]
    for obj, kind, field in cases:
        proc = meta.apply(obj, namespace, check=False)
        assert refused(meta, proc, kind, "ghost", namespace, field) == "operator"
        assert "no ServerlessCluster" in meta.get(kind, "ghost", namespace)["status"]["message"]
    assert not any(ghost[:12] in n for n in networks(meta))
    # An admin may still put a SandboxPod into a tenant's VPC on purpose (e.g. to debug it).
    meta.apply(sandboxpod("debug-a", {"sk8s.io/cluster-uid": a.uid}), namespace)
    meta.kubectl("wait", "--for=condition=Ready", "sandboxpod/debug-a", "-n", namespace, "--timeout=90s", timeout=100)
    ip = meta.get("sandboxpod", "debug-a", namespace)["status"]["podIP"]
    assert ipaddress.ip_address(ip) in ipaddress.ip_network(json.loads(meta.podman(
        "network", "inspect", f"sk8s-{home_id(meta.home)}-{a.uid[:12]}", "--format={{json .Subnets}}").stdout)[0]["subnet"])
    for kind in ("sandboxpod", "servicelb", "privatezone"):
        meta.kubectl("delete", kind, "--all", "-n", namespace, "--timeout=90s", timeout=100)


# --- Services: failures said on the Service, addresses never left behind ---------------------------
def service_events(side: Side, name: str) -> list[dict]:
    out = side.tenant.kubectl("get", "events", f"--field-selector=involvedObject.name={name},involvedObject.kind=Service",
                              "-o", "json").stdout
    return json.loads(out)["items"]


def warned(side: Side, name: str, reason: str, text: str) -> dict:
    return wait(lambda: next((e for e in service_events(side, name) if e["reason"] == reason and text in e["message"]),
                             None), timeout=30, what=f"{reason} Event on Service {name} saying {text!r}")


def test_a_service_with_too_many_ports_says_why(meta, a):
    ports = [{"name": f"p{i}", "port": 2000 + i, "targetPort": 2000 + i} for i in range(200)]
    a.tenant.kubectl("apply", "-f", "-", input=yaml.safe_dump(
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "wide"},
         "spec": {"type": "LoadBalancer", "selector": {"app": "wide"}, "ports": ports}}))
    try:
        ev = warned(a, "wide", "SyncLoadBalancerFailed", "spec.ports: 200 ports")
        assert ev["type"] == "Warning" and "64" in ev["message"]
        assert not meta.kubectl("get", "servicelbs", "-n", a.ns, "-l", "sk8s.io/service-name=wide",
                                "-o", "name").stdout.strip()
    finally:
        a.tenant.kubectl("delete", "svc", "wide", check=False)


def external_ip(side: Side, name: str, timeout: float = 60) -> str:
    return wait(lambda: side.tenant.kubectl("get", "svc", name, "-o",
                                            "jsonpath={.status.loadBalancer.ingress[0].ip}").stdout.strip(),
                timeout=timeout, what=f"EXTERNAL-IP of {name}")


def lb_service(name: str, ip: str | None) -> dict:
    spec = {"type": "LoadBalancer", "selector": {"app": name}, "ports": [{"port": 80, "targetPort": 80}]}
    if ip:
        spec["loadBalancerIP"] = ip
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}


def test_load_balancer_ip_is_honoured_or_refused_by_name(meta, a):
    rng = internet_range(home_id(meta.home))
    wanted = str(rng.network_address + 4000 + int(uuid.uuid4().int % 1000))
    a.tenant.kubectl("apply", "-f", "-", input=yaml.safe_dump_all([
        lb_service("fixed", wanted), lb_service("outside", "192.0.2.7"), lb_service("clash", wanted)]))
    try:
        assert external_ip(a, "fixed") == wanted
        warned(a, "outside", "SyncLoadBalancerFailed", "spec.loadBalancerIP: 192.0.2.7 is not an address")
        warned(a, "clash", "SyncLoadBalancerFailed", f"spec.loadBalancerIP: {wanted} is in use")
        for name in ("outside", "clash"):
            assert not a.tenant.kubectl("get", "svc", name, "-o",
                                        "jsonpath={.status.loadBalancer.ingress}").stdout.strip()
        # Another free address asked for later: the Service moves to it.
        moved = str(ipaddress.ip_address(wanted) + 1)
        a.tenant.kubectl("patch", "svc", "fixed", "--type=merge", "-p", json.dumps({"spec": {"loadBalancerIP": moved}}))
        wait(lambda: external_ip(a, "fixed") == moved, timeout=30, what="the new EXTERNAL-IP")
        # The old address is free again: the clashing Service gets it at its operator's next try.
        assert external_ip(a, "clash", timeout=60) == wanted
    finally:
        a.tenant.kubectl("delete", "svc", "fixed", "outside", "clash", check=False)


def test_an_lb_deleted_before_its_operator_resumed_it_frees_its_address(meta, a):
    a.tenant.kubectl("create", "service", "clusterip", "leak", "--tcp=80:80")
    lb = wait(lambda: next((o for o in json.loads(meta.kubectl(
        "get", "servicelbs", "-n", a.ns, "-l", "sk8s.io/service-name=leak", "-o", "json").stdout)["items"]
        if (o.get("status") or {}).get("address")), None), timeout=60, what="the leak LB's address")
    address = lb["status"]["address"]
    assert address in anchor_addresses(meta, a.uid)
    pid = meta.state()["components"]["servicelb-operator"]["pid"]
    os.kill(pid, signal.SIGSTOP)
    try:
        a.tenant.kubectl("delete", "svc", "leak")
        wait(lambda: (meta.get("servicelb", lb["metadata"]["name"], a.ns) or {}).get("metadata", {})
             .get("deletionTimestamp"), timeout=30, what="the ServiceLB marked for deletion")
    finally:
        os.kill(pid, signal.SIGKILL)  # the next run finds it deleted, never having served it
    wait(lambda: meta.get("servicelb", lb["metadata"]["name"], a.ns) is None, timeout=60,
         what="the ServiceLB gone after the operator's restart")
    assert address not in anchor_addresses(meta, a.uid)


def test_nothing_leaked(meta, a, b, b_untouched):
    lbs = json.loads(meta.kubectl("get", "servicelbs", "-n", a.ns, "-o", "json").stdout)["items"]
    assert anchor_addresses(meta, a.uid) == {lb["status"]["address"] for lb in lbs
                                             if lb["spec"]["addressType"] == "intranet"}
    ours = (f"sk8s-{home_id(meta.home)}", f"sk8s-{home_id(meta.home)}-{a.uid[:12]}",
            f"sk8s-{home_id(meta.home)}-{b.uid[:12]}")
    # Every cluster gets its VPC at claim, so other modules' live (or still deleting)
    # clusters have networks too: a leak is a VPC whose cluster is gone.
    clusters = {c["metadata"]["uid"]: c for c in json.loads(meta.kubectl(
        "get", "serverlessclusters", "-A", "-o", "json").stdout)["items"]}
    stray = {n: uid for n in networks(meta) if n not in ours
             if (uid := meta.podman("network", "inspect", n, "--format={{index .Labels \"sk8s.io/cluster-uid\"}}")
                 .stdout.strip()) not in clusters}
    assert not stray, ("VPC networks whose cluster is gone",
                       stray, {uid: (c["metadata"]["name"], c["metadata"].get("deletionTimestamp"),
                                     (c.get("status") or {}).get("phase"))
                               for uid, c in clusters.items()})
