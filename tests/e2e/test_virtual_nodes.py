"""A tenant with `spec.virtualNodes: 3`: three Ready Nodes in three zones sharing the quota,
pods placed by the tenant's own kube-scheduler (required anti-affinity one per node, a
replica beyond it Pending with the scheduler's FailedScheduling, zone spread 2/2/2), a
DaemonSet's pod on every node, and exec and logs on a pod of a node other than the first."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from operators.embedded.processes import ProcessSet

from .conftest import IMAGE, until
from .tenant import Tenant, cluster_uid, delete_cluster, make_cluster, plane_dir

pytestmark = pytest.mark.e2e

NODES = ["virtual-node", "virtual-node-1", "virtual-node-2"]
ZONE = "topology.kubernetes.io/zone"
POD_WAIT = 120  # the first pods of a new tenant under load (as in the other files)


@pytest.fixture(scope="module")
def tenant(meta):
    t = make_cluster(meta, "threenodes", virtualNodes=3, quotas={"maxPods": 30, "cpu": "3", "memory": "6Gi"})
    yield t
    delete_cluster(meta, "threenodes")


def _json(t: Tenant, *args: str) -> dict:
    return json.loads(t.kubectl(*args, "-o", "json").stdout)


def _pods(t: Tenant, selector: str) -> list[dict]:
    return _json(t, "get", "pods", "-l", selector)["items"]


def _wait(what: str, check, timeout: float = POD_WAIT):
    return until(check, timeout, what)


def _running(t: Tenant, selector: str, count: int) -> list[dict]:
    def check():
        pods = _pods(t, selector)
        running = [p for p in pods if p["status"].get("phase") == "Running"]
        return running if len(running) >= count else None
    try:
        return _wait(f"{count} running pods of {selector}", check)
    except AssertionError:
        summary = [(p["metadata"]["name"], p["spec"].get("nodeName"), p["status"].get("phase"))
                   for p in _pods(t, selector)]
        raise AssertionError(f"{selector}: not {count} running: {summary}") from None


def _deployment(name: str, replicas: int, affinity: str = "", spread: str = "") -> str:
    return f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      terminationGracePeriodSeconds: 1
{affinity}{spread}      containers:
      - name: app
        image: {IMAGE}
        imagePullPolicy: IfNotPresent
        command: [sh, -c, "echo hello from $(hostname) on $NODE; exec sleep 3600"]
        env:
        - name: NODE
          valueFrom: {{fieldRef: {{fieldPath: spec.nodeName}}}}
"""


def _condition_taints(node: dict) -> list:
    return [t for t in node["spec"].get("taints") or [] if t["key"].startswith("node.kubernetes.io/")]


def test_three_ready_nodes_in_three_zones_share_the_quota(tenant, meta):
    # Ready before their not-ready taints go (the virtual node drops them once it sees Ready).
    try:
        _wait("the nodes' not-ready taints to go", lambda: not any(
            _condition_taints(n) for n in _json(tenant, "get", "nodes")["items"]), timeout=20)
    except AssertionError:
        pass  # the assertions below say which node and what
    nodes = {n["metadata"]["name"]: n for n in _json(tenant, "get", "nodes")["items"]}
    assert sorted(nodes) == NODES
    zones = {name: n["metadata"]["labels"].get(ZONE) for name, n in nodes.items()}
    assert sorted(zones.values()) == ["local-a", "local-b", "local-c"], zones
    for name, n in nodes.items():
        assert n["metadata"]["labels"]["kubernetes.io/hostname"] == name
        ready = next(c for c in n["status"]["conditions"] if c["type"] == "Ready")
        assert ready["status"] == "True", (name, ready)
        assert n["status"]["allocatable"]["pods"] == "10"
        assert not _condition_taints(n), (name, n["spec"])
        _wait(f"the Lease of {name}", lambda: tenant.kubectl("get", "lease", name, "-n", "kube-node-lease",
                                                             check=False).returncode == 0, timeout=20)
        lease = _json(tenant, "get", "lease", name, "-n", "kube-node-lease")
        assert lease["spec"]["holderIdentity"] == name
    assert [nodes[n]["status"]["allocatable"]["cpu"] for n in NODES] == ["1", "1", "1"]
    status = meta.get("serverlesscluster", "threenodes", "default")["status"]
    assert status["nodeName"] == "virtual-node" and status["nodeNames"] == NODES
    # The tenant's own kube-scheduler runs in its plane, with no port of its own.
    plane = plane_dir(meta, cluster_uid(meta, "threenodes"))
    pid = ProcessSet(plane).pid("kube-scheduler")
    assert pid, f"no kube-scheduler running in {plane}"
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    assert b"--secure-port=0" in argv and b"--leader-elect=false" in argv
    rows = {r["component"]: r for r in json.loads(meta.sk8s("status", "-o", "json").stdout)["tenants"]
            if r["cluster"] == "default/threenodes"}
    assert rows["kube-scheduler"]["pid"] == pid and rows["kube-scheduler"]["health"] == "running", rows


ANTI = """      affinity:
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
          - labelSelector: {matchLabels: {app: anti}}
            topologyKey: kubernetes.io/hostname
"""


def test_required_anti_affinity_puts_one_pod_on_each_node(tenant):
    tenant.kubectl("apply", "-f", "-", input=_deployment("anti", 3, affinity=ANTI))
    pods = _running(tenant, "app=anti", 3)
    assert sorted(p["spec"]["nodeName"] for p in pods) == NODES
    # A pod on a node other than the first: exec, logs, the downward API and hostIP.
    far = next(p for p in pods if p["spec"]["nodeName"] == "virtual-node-2")
    name = far["metadata"]["name"]
    assert tenant.kubectl("exec", name, "--", "sh", "-c", "echo $NODE").stdout.strip() == "virtual-node-2"
    logs = _wait("logs of the pod on virtual-node-2",
                 lambda: tenant.kubectl("logs", name, check=False).stdout.strip())
    assert logs == f"hello from {name} on virtual-node-2"
    assert far["status"]["hostIP"]
    # Its kubelet events come from the node it is on, as a kubelet's do.
    started = _wait("a Started event", lambda: next(
        (e for e in _json(tenant, "get", "events", f"--field-selector=involvedObject.name={name}")["items"]
         if e["reason"] == "Started"), None))
    assert started["source"]["host"] == "virtual-node-2", started

    # A fourth replica has no node left: the scheduler says so, and it stays Pending.
    tenant.kubectl("scale", "deployment/anti", "--replicas=4")

    def failed():
        pending = [p for p in _pods(tenant, "app=anti") if not p["spec"].get("nodeName")]
        if not pending:
            return None
        evs = _json(tenant, "get", "events", f"--field-selector=involvedObject.name={pending[0]['metadata']['name']}")
        return next((e for e in evs["items"] if e["reason"] == "FailedScheduling"), None)
    ev = _wait("FailedScheduling of the 4th replica", failed)
    assert "default-scheduler" in (ev.get("reportingComponent"), (ev.get("source") or {}).get("component")), ev
    assert "anti-affinity" in ev["message"], ev["message"]
    time.sleep(2)
    assert sum(1 for p in _pods(tenant, "app=anti") if p["spec"].get("nodeName")) == 3
    tenant.kubectl("delete", "deployment", "anti", "--wait=false")


def test_a_daemonset_runs_one_pod_on_every_node(tenant):
    tenant.kubectl("apply", "-f", "-", input=f"""
apiVersion: apps/v1
kind: DaemonSet
metadata: {{name: everywhere}}
spec:
  selector: {{matchLabels: {{app: everywhere}}}}
  template:
    metadata: {{labels: {{app: everywhere}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: app
        image: {IMAGE}
        imagePullPolicy: IfNotPresent
        command: [sleep, "3600"]
""")
    pods = _running(tenant, "app=everywhere", 3)
    assert sorted(p["spec"]["nodeName"] for p in pods) == NODES
    ds = _wait("DaemonSet status", lambda: (lambda d: d if d["status"].get("numberReady") == 3 else None)(
        _json(tenant, "get", "daemonset", "everywhere")))
    assert ds["status"]["desiredNumberScheduled"] == 3
    tenant.kubectl("delete", "daemonset", "everywhere", "--wait=false")


SPREAD = f"""      topologySpreadConstraints:
      - maxSkew: 1
        topologyKey: {ZONE}
        whenUnsatisfiable: DoNotSchedule
        labelSelector: {{matchLabels: {{app: spread}}}}
"""


def test_zone_spread_puts_two_of_six_in_each_zone(tenant):
    tenant.kubectl("apply", "-f", "-", input=_deployment("spread", 6, spread=SPREAD))
    _wait("6 bound pods", lambda: len([p for p in _pods(tenant, "app=spread") if p["spec"].get("nodeName")]) == 6)
    zones = {n["metadata"]["name"]: n["metadata"]["labels"][ZONE] for n in _json(tenant, "get", "nodes")["items"]}
    per_zone = Counter(zones[p["spec"]["nodeName"]] for p in _pods(tenant, "app=spread"))
    assert per_zone == {"local-a": 2, "local-b": 2, "local-c": 2}, per_zone
    _running(tenant, "app=spread", 6)
    tenant.kubectl("delete", "deployment", "spread", "--wait=false")


def test_the_node_count_is_fixed_and_needs_a_pod_per_node(tenant, meta):
    changed = meta.kubectl("patch", "serverlesscluster", "threenodes", "--type=merge",
                           "-p", '{"spec": {"virtualNodes": 2}}', check=False)
    assert changed.returncode != 0 and "spec.virtualNodes is immutable" in changed.stderr, changed.stderr
    too_few = meta.apply({"apiVersion": "sk8s.io/v1alpha1", "kind": "ServerlessCluster",
                          "metadata": {"name": "toofewpods"},
                          "spec": {"virtualNodes": 3, "quotas": {"maxPods": 2}}}, "default", check=False)
    assert too_few.returncode != 0
    assert "spec.quotas.maxPods must be at least spec.virtualNodes" in too_few.stderr, too_few.stderr


def test_a_dead_scheduler_is_restarted_and_schedules_again(tenant, meta):
    procs = ProcessSet(plane_dir(meta, cluster_uid(meta, "threenodes")))
    old = procs.pid("kube-scheduler")
    assert old
    os.kill(old, signal.SIGKILL)
    _wait("kube-scheduler restarted by the health timer", lambda: procs.pid("kube-scheduler") not in (None, old),
          timeout=90)
    tenant.kubectl("run", "after-restart", f"--image={IMAGE}", "--image-pull-policy=IfNotPresent",
                   "--overrides", json.dumps({"spec": {"terminationGracePeriodSeconds": 1}}),
                   "--", "sleep", "3600")
    pod = tenant.wait_pod("after-restart", lambda p: p["spec"].get("nodeName") in NODES, timeout=POD_WAIT)
    assert pod["spec"]["nodeName"] in NODES
    tenant.kubectl("delete", "pod", "after-restart", "--wait=false")


@pytest.mark.long  # chaos (test_availability.py kills a one-node cluster's in make test): make test-long
def test_a_dead_virtual_node_turns_every_node_unknown_until_it_is_back(tenant, meta):
    procs = ProcessSet(plane_dir(meta, cluster_uid(meta, "threenodes")))
    # Every change of the last Node's Ready condition, as a client of the tenant sees it.
    watch = subprocess.Popen(
        [str(meta.bindir / "kubectl"), f"--kubeconfig={tenant.kubeconfig}", "get", "node", "virtual-node-2",
         "--watch", "-o", 'jsonpath={.status.conditions[?(@.type=="Ready")].status}{"\\n"}'],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    lines: list[str] = []
    threading.Thread(target=lambda: [lines.append(ln.strip()) for ln in watch.stdout], daemon=True).start()
    try:
        _wait("the watch to show the Node Ready", lambda: "True" in lines, timeout=30)
        old = procs.pid("virtual-node")
        os.kill(old, signal.SIGKILL)
        _wait("virtual-node-2 to turn Unknown", lambda: "Unknown" in lines, timeout=40)
        _wait("virtual-node-2 Ready again", lambda: "True" in lines[lines.index("Unknown"):], timeout=90)
    finally:
        watch.terminate()
        watch.wait()
    assert procs.pid("virtual-node") != old
    meta.wait_for("serverlesscluster", "threenodes", "default",
                  lambda sc: any(c["type"] == "Ready" and c["status"] == "True"
                                 for c in (sc.get("status") or {}).get("conditions") or []), timeout=60)


def test_deleting_the_cluster_stops_its_scheduler(tenant, meta):
    """Last in the module: the plane goes with its scheduler (planes.STOP_ORDER)."""
    pid = ProcessSet(plane_dir(meta, cluster_uid(meta, "threenodes"))).pid("kube-scheduler")
    assert pid
    meta.kubectl("delete", "serverlesscluster", "threenodes", "--timeout=180s", timeout=200)

    def gone() -> bool:
        try:
            return b"kube-scheduler" not in Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:  # no such process
            return True
    _wait("the scheduler process to end", gone, timeout=30)
