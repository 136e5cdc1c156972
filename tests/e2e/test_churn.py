"""Churn: each of the eight components killed at random while pods and Services come and go.

The four operators, the meta kube-apiserver and etcd (restarted by the supervisor), and a
tenant's kube-apiserver and virtual node (restarted by the serverlesscluster operator) are
each SIGKILLed once, in a random order, while Deployments and LoadBalancer Services are
created and deleted in the tenant. Nobody restarts anything by hand. In the end every pod
runs, every Service has its addresses and records, the cluster is Ready, and once the
workloads are deleted nothing is left: no sandbox, no load balancer address, no DNS record,
no object stuck on a finalizer.
"""
from __future__ import annotations

import json
import os
import random
import signal
import time

import pytest
from dnslib import QTYPE, RCODE, DNSRecord

from .conftest import IMAGE
from .tenant import anchor_addresses, delete_cluster, make_cluster, plane_dir

# Chaos runs (operators, the meta apiserver and tenant components killed): make test-long,
# apart from make test, which stays within its 30 minutes.
pytestmark = [pytest.mark.e2e, pytest.mark.long]

META = ["etcd", "kube-apiserver", "sandboxpod-operator", "serverlesscluster-operator",
        "servicelb-operator", "privatezone-operator"]
TENANT = ["tenant kube-apiserver", "tenant virtual-node"]
SK8S_KINDS = ["sandboxpods", "servicelbs", "privatezones", "serverlessclusters"]


def wait(predicate, timeout: float, what: str, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except Exception as exc:  # a component may be down: try again
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


def retry(fn, timeout: float = 90, what: str = "a call"):
    """Calls made while a component is down: retried until they go through."""
    def attempt():
        fn()
        return True
    return wait(attempt, timeout, what, interval=1)


def component_pid(meta, name: str, uid: str) -> int:
    if name in TENANT:
        return int((plane_dir(meta, uid) / "run" / f"{name.split()[1]}.pid").read_text())
    return meta.state()["components"][name]["pid"]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead too
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def kill(meta, name: str, uid: str) -> None:
    pid = component_pid(meta, name, uid)
    assert alive(pid), f"{name} (pid {pid}) was not running before it was killed"
    os.kill(pid, signal.SIGKILL)
    print(f"killed {name} (pid {pid})")


def sk8s_objects(meta, kind: str) -> list[dict]:
    return json.loads(meta.kubectl("get", kind, "-A", "-o", "json").stdout)["items"]


def resolve(meta, ns: str, name: str) -> tuple[int, list[str]]:
    zone = meta.get("privatezone", "cluster.local", ns)
    resolver = zone["status"]["resolvers"][0]
    reply = DNSRecord.parse(DNSRecord.question(name, "A").send(resolver, 53, timeout=2))
    return reply.header.rcode, sorted(str(r.rdata) for r in reply.rr if r.rtype == QTYPE.A)


def sandboxes(meta, ns: str) -> set[str]:
    """The podman pods that run the SandboxPods of meta namespace `ns`."""
    out = meta.podman("ps", "--all", "--format=json", f"--filter=label=sk8s.io/namespace={ns}").stdout
    return {c.get("Pod") for c in json.loads(out or "[]") or []}


def state_of_pods(meta, t, ns: str) -> str:
    """What a failure report needs: each tenant pod's phase and readiness beside its
    SandboxPod's phase (the churn test's failures are states that never converged)."""
    lines = [t.kubectl("get", "pods", "-o", "wide", check=False).stdout]
    for o in sk8s_objects(meta, "sandboxpods"):
        if o["metadata"]["namespace"] == ns:
            st = o.get("status") or {}
            conds = {c["type"]: c["status"] for c in st.get("conditions") or []}
            lines.append(f"SandboxPod {o['metadata']['name']}: phase={st.get('phase')} conditions={conds} "
                         f"containers={[(c.get('name'), c.get('state')) for c in st.get('containerStatuses') or []]}")
    return "\n".join(lines)


def test_components_killed_at_random_during_churn(meta):
    t = make_cluster(meta, "churn", quotas={"maxPods": 40, "cpu": "32", "memory": "32Gi"})
    try:
        churn(meta, t)
    except BaseException:
        # Say where it stuck, and leave no cluster behind for the modules after this one.
        ns = meta.get("serverlesscluster", "churn", "default")["status"]["sandboxNamespace"]
        print(state_of_pods(meta, t, ns))
        delete_cluster(meta, "churn")
        raise


def churn(meta, t) -> None:
    cluster = meta.get("serverlesscluster", "churn", "default")
    uid, ns = cluster["metadata"]["uid"], cluster["status"]["sandboxNamespace"]
    seed = int(os.environ.get("SK8S_CHURN_SEED", time.time()))
    order = META + TENANT
    random.Random(seed).shuffle(order)
    print(f"churn seed {seed}: kill order {order}")

    live: list[int] = []
    for i, name in enumerate(order):
        retry(lambda: t.kubectl("create", "deployment", f"d{i}", f"--image={IMAGE}", "--replicas=2",
                                check=True, timeout=20), what=f"create d{i}")
        retry(lambda: t.kubectl("expose", "deployment", f"d{i}", "--port=80", f"--name=s{i}",
                                "--type=LoadBalancer", check=True, timeout=20), what=f"expose d{i}")
        live.append(i)
        if i % 3 == 2:  # and some go again, while others are still being made
            gone = live.pop(0)
            retry(lambda: t.kubectl("delete", "deployment", f"d{gone}", "--wait=false", timeout=20),
                  what=f"delete d{gone}")
            retry(lambda: t.kubectl("delete", "svc", f"s{gone}", "--wait=false", timeout=20),
                  what=f"delete s{gone}")
        kill(meta, name, uid)
        time.sleep(random.Random(seed + i).uniform(0.5, 3))

    # Everything converges without help.
    retry(lambda: meta.kubectl("wait", "--for=condition=Ready", "serverlesscluster/churn", "--timeout=10s",
                               timeout=20), timeout=180, what="cluster Ready again")
    for i in live:
        retry(lambda: t.kubectl("rollout", "status", f"deployment/d{i}", "--timeout=10s", timeout=20),
              timeout=180, what=f"d{i} rolled out")
    pods = json.loads(t.kubectl("get", "pods", "-o", "json").stdout)["items"]
    running = [p for p in pods if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")]
    assert len(running) == 2 * len(live), [(p["metadata"]["name"], p["status"].get("phase")) for p in pods]
    for i in live:
        wait(lambda: t.kubectl("get", "svc", f"s{i}", "-o", "jsonpath={.status.loadBalancer.ingress[0].ip}",
                               check=False).stdout.strip(), 120, f"EXTERNAL-IP of s{i}")
        wait(lambda: resolve(meta, ns, f"s{i}.default.svc.cluster.local")[1], 60, f"record of s{i}")
    # the Services deleted during churn left no record behind
    for i in set(range(len(order))) - set(live):
        wait(lambda: resolve(meta, ns, f"s{i}.default.svc.cluster.local")[0] == RCODE.NXDOMAIN, 60,
             f"s{i} record removed")
    # no duplicate sandbox for any pod
    wait(lambda: len(sandboxes(meta, ns)) == 2 * len(live), 60, "one sandbox per pod")

    # Delete everything: nothing is left, nothing is stuck.
    for i in live:
        t.kubectl("delete", "deployment", f"d{i}", "--wait=false")
        t.kubectl("delete", "svc", f"s{i}", "--wait=false")
    wait(lambda: not [p for p in json.loads(t.kubectl("get", "pods", "-o", "json").stdout)["items"]], 120,
         "tenant pods gone")
    wait(lambda: not sk8s_objects(meta, "sandboxpods") or
         not [o for o in sk8s_objects(meta, "sandboxpods") if o["metadata"]["namespace"] == ns], 60,
         "SandboxPods gone")
    wait(lambda: not sandboxes(meta, ns), 60, "sandboxes gone")
    wait(lambda: not [lb for lb in sk8s_objects(meta, "servicelbs") if lb["metadata"]["namespace"] == ns
                      and lb["metadata"].get("labels", {}).get("sk8s.io/service-name", "").startswith("s")],
         60, "ServiceLBs gone")
    for i in range(len(order)):
        assert resolve(meta, ns, f"s{i}.default.svc.cluster.local")[0] == RCODE.NXDOMAIN
    # This cluster's objects only: an earlier module's cluster may still be being deleted.
    stuck = [(kind, o["metadata"]["namespace"], o["metadata"]["name"])
             for kind in SK8S_KINDS for o in sk8s_objects(meta, kind) if o["metadata"].get("deletionTimestamp")
             and (o["metadata"]["namespace"] == ns or (kind, o["metadata"]["name"]) == ("serverlessclusters", "churn"))]
    assert stuck == []
    # the intranet addresses bound in the VPC are exactly those of the LBs still recorded
    lbs = [lb for lb in sk8s_objects(meta, "servicelbs") if lb["metadata"]["namespace"] == ns]
    recorded = {lb["status"]["address"] for lb in lbs if lb["spec"]["addressType"] == "intranet"
                and (lb.get("status") or {}).get("address")}
    assert anchor_addresses(meta, uid) == recorded

    meta.kubectl("delete", "serverlesscluster", "churn", "--timeout=180s")
    assert sandboxes(meta, ns) == set()
    nets = json.loads(meta.podman("network", "ls", "--format=json",
                                  f"--filter=label=sk8s.io/cluster-uid={uid}").stdout or "[]")
    assert nets in ([], None)



def test_operators_restarted_with_the_meta_apiserver_serve_again(meta, namespace):
    """Operators that restart while the meta apiserver restarts too (its CRDs are served a
    moment after it answers) must still watch their resources once it is back."""
    from .conftest import sandboxpod
    state = meta.state()["components"]
    victims = ["kube-apiserver"] + [n for n in META if n.endswith("-operator")]
    old = {n: state[n]["pid"] for n in victims}
    for name in victims:
        os.kill(old[name], signal.SIGKILL)
    wait(lambda: all(meta.state()["components"][n]["pid"] != old[n] for n in victims), 60, "restarts")
    retry(lambda: meta.apply(sandboxpod("after", [{"name": "a", "command": ["sleep", "3600"]}]), namespace),
          what="apply a SandboxPod")
    meta.wait_for("sandboxpod", "after", namespace,
                  lambda o: (o.get("status") or {}).get("phase") == "Running", timeout=120)
    t = make_cluster(meta, "after")
    try:
        t.kubectl("create", "deployment", "web", f"--image={IMAGE}")
        t.kubectl("expose", "deployment", "web", "--port=80", "--type=LoadBalancer")
        ns = meta.get("serverlesscluster", "after", "default")["status"]["sandboxNamespace"]
        wait(lambda: t.kubectl("get", "svc", "web", "-o", "jsonpath={.status.loadBalancer.ingress[0].ip}",
                               check=False).stdout.strip(), 120, "EXTERNAL-IP (servicelb-operator)")
        wait(lambda: resolve(meta, ns, "web.default.svc.cluster.local")[1], 60, "record (privatezone-operator)")
    finally:
        delete_cluster(meta, "after")
