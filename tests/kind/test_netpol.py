"""NetworkPolicy on the kind test bed (kube-router's policy controller, which hack/kind.sh up
runs on every node: README "The kind test bed"), between real Pods of a throwaway
namespace, on the same node and across nodes (the bed's bridge CNI and routes):
  - without a policy every client reaches the server;
  - a default-deny ingress policy cuts every client off;
  - a policy admitting one label lets those clients through and not the others;
  - an egress policy to 0.0.0.0/0 except the server's address blocks the server alone.
Each connection is a real TCP exchange: busybox `nc` in the client Pod sends an HTTP
request to the server's httpd and must read its page back (busybox wget segfaults on the
bed). Prints the time of a new connection (50 in a row, measured in the client Pod by
busybox `time`) without a policy and admitted by one, same run, same pair of Pods. Skips, naming why, where the bed cannot run."""
from __future__ import annotations

import json
import re
import time
import uuid

import pytest

from tests.kind.conftest import KindCluster

pytestmark = pytest.mark.kind
PORT = 8080
HTTPD = f"mkdir -p /www && echo \"served by $HOSTNAME\" > /www/index.html && exec httpd -f -p {PORT} -h /www"
# $1: the server's address; $2: how many connections, one after the other. Prints the page
# each time, then busybox time's "real" line (stderr).
CONNECT = (f"time sh -c 'for _ in $(seq \"$2\"); do printf \"GET / HTTP/1.0\\r\\n\\r\\n\" | "
           f"nc -w 2 \"$1\" {PORT}; done' sh \"$1\" \"$2\"")
# Every Pod runs httpd, so that each is also a destination (the egress case). Name: (node
# index among the workers, role label).
PODS = {"server": (0, "server"), "same-allowed": (0, "allowed"), "same-other": (0, "other"),
        "far-allowed": (1, "allowed"), "far-other": (1, "other")}
CLIENTS = [name for name in PODS if name != "server"]
BURST = 50   # new connections timed in a row
SETTLE = 30   # seconds a policy change may take to reach every node's iptables


def kubectl_ok(kind: KindCluster, *args: str, stdin: str | None = None) -> str:
    proc = kind.kubectl(*args, stdin=stdin)
    assert proc.returncode == 0, f"kubectl {' '.join(args)}: {proc.stderr}"
    return proc.stdout


def workers(kind: KindCluster) -> list[str]:
    names = kubectl_ok(kind, "get", "nodes", "-l", "!node-role.kubernetes.io/control-plane",
                       "-o", "jsonpath={.items[*].metadata.name}").split()
    assert len(names) >= 2, f"the bed has 2 workers (hack/kind.sh, SK8S_KIND_WORKERS): {names}"
    return sorted(names)


@pytest.fixture(scope="module")
def bed(kind_cluster: KindCluster, busybox: str):
    """(namespace, {pod: address}): PODS running httpd on the nodes they name."""
    namespace = f"netpol-{uuid.uuid4().hex[:8]}"
    nodes = workers(kind_cluster)
    kubectl_ok(kind_cluster, "create", "namespace", namespace)
    try:
        for name, (node, role) in PODS.items():
            pod = {"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": name, "namespace": namespace, "labels": {"role": role}},
                   "spec": {"nodeName": nodes[node], "automountServiceAccountToken": False,
                            "terminationGracePeriodSeconds": 1,
                            "containers": [{"name": "app", "image": busybox, "imagePullPolicy": "Never",
                                            "command": ["sh", "-c", HTTPD],
                                            "readinessProbe": {"tcpSocket": {"port": PORT}, "periodSeconds": 1}}]}}
            kubectl_ok(kind_cluster, "create", "-f", "-", stdin=json.dumps(pod))
        kubectl_ok(kind_cluster, "-n", namespace, "wait", "--for=condition=Ready", "pod", "--all", "--timeout=120s")
        pods = json.loads(kubectl_ok(kind_cluster, "-n", namespace, "get", "pods", "-o", "json"))["items"]
        addresses = {p["metadata"]["name"]: p["status"]["podIP"] for p in pods}
        hosts = {p["metadata"]["name"]: p["spec"]["nodeName"] for p in pods}
        assert hosts["server"] == hosts["same-allowed"] != hosts["far-allowed"], hosts
        yield namespace, addresses
    finally:
        kind_cluster.kubectl("delete", "namespace", namespace, "--wait=false")


def connect(kind: KindCluster, namespace: str, client: str, address: str, times: int = 1) -> float | None:
    """Seconds `times` TCP exchanges with address's httpd took from client's Pod, one after
    the other, or None when one failed (no page back within nc's 2 s)."""
    proc = kind.kubectl("-n", namespace, "exec", client, "--", "sh", "-c", CONNECT, "sh", address, str(times),
                        timeout=60 + 3 * times)
    if proc.returncode != 0 or proc.stdout.count("served by") != times:
        return None
    took = re.search(r"real\s+(\d+)m\s*([\d.]+)s", proc.stderr)
    assert took, f"no time from busybox time: {proc.stderr!r}"
    return int(took.group(1)) * 60 + float(took.group(2))


def until(kind: KindCluster, namespace: str, client: str, address: str, *, reaches: bool) -> float | None:
    """Polls until client reaches address (reaches=True; returns that connection's time) or
    is refused (reaches=False), SETTLE seconds at most."""
    deadline = time.monotonic() + SETTLE
    while True:
        took = connect(kind, namespace, client, address)
        if (took is not None) == reaches:
            return took
        assert time.monotonic() < deadline, (
            f"{client} -> {address}: still {'refused' if reaches else 'reached'} after {SETTLE}s")
        time.sleep(0.5)


def apply_policy(kind: KindCluster, namespace: str, name: str, spec: dict) -> None:
    policy = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
              "metadata": {"name": name, "namespace": namespace}, "spec": spec}
    kubectl_ok(kind, "apply", "-f", "-", stdin=json.dumps(policy))


@pytest.fixture
def open_bed(kind_cluster: KindCluster, bed):
    """The bed with no policy, every client reaching the server (asserted: the baseline of
    each case), and none left behind: every client reaches the server again after it."""
    namespace, addresses = bed

    def all_reach() -> None:
        for client in CLIENTS:
            until(kind_cluster, namespace, client, addresses["server"], reaches=True)

    all_reach()
    yield namespace, addresses
    kubectl_ok(kind_cluster, "-n", namespace, "delete", "networkpolicy", "--all")
    all_reach()


DENY_INGRESS = {"podSelector": {}, "policyTypes": ["Ingress"]}


def test_open_without_policy(kind_cluster: KindCluster, open_bed) -> None:
    namespace, addresses = open_bed
    for client in CLIENTS:
        for target in CLIENTS:
            if target != client:
                assert until(kind_cluster, namespace, client, addresses[target], reaches=True) is not None


def test_default_deny_ingress(kind_cluster: KindCluster, open_bed) -> None:
    namespace, addresses = open_bed
    apply_policy(kind_cluster, namespace, "deny-ingress", DENY_INGRESS)
    for client in CLIENTS:
        until(kind_cluster, namespace, client, addresses["server"], reaches=False)
    # Denied for good, not a lost packet: a second try from each is refused too.
    for client in CLIENTS:
        assert connect(kind_cluster, namespace, client, addresses["server"]) is None, client


def test_allow_labelled_client(kind_cluster: KindCluster, open_bed) -> None:
    namespace, addresses = open_bed
    server = addresses["server"]
    # Same run, same pair: new connections with no policy on the server.
    open_time = connect(kind_cluster, namespace, "far-allowed", server, times=BURST)
    apply_policy(kind_cluster, namespace, "deny-ingress", DENY_INGRESS)
    apply_policy(kind_cluster, namespace, "allow-role-allowed", {
        "podSelector": {"matchLabels": {"role": "server"}}, "policyTypes": ["Ingress"],
        "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "allowed"}}}],
                     "ports": [{"protocol": "TCP", "port": PORT}]}]})
    for client in ("same-other", "far-other"):
        until(kind_cluster, namespace, client, server, reaches=False)
    for client in ("same-allowed", "far-allowed"):
        assert until(kind_cluster, namespace, client, server, reaches=True) is not None
    for client in ("same-other", "far-other"):
        assert connect(kind_cluster, namespace, client, server) is None, client
    policy_time = connect(kind_cluster, namespace, "far-allowed", server, times=BURST)
    assert open_time is not None and policy_time is not None, (open_time, policy_time)
    print(f"\nnew connection far-allowed -> server (other node), mean of {BURST}: no policy "
          f"{open_time / BURST * 1000:.1f} ms, admitted by a policy {policy_time / BURST * 1000:.1f} ms "
          f"(ratio {policy_time / max(open_time, 0.01):.2f})")


def test_egress_ipblock_except(kind_cluster: KindCluster, open_bed) -> None:
    namespace, addresses = open_bed
    server = addresses["server"]
    apply_policy(kind_cluster, namespace, "egress-not-server", {
        "podSelector": {"matchLabels": {"role": "allowed"}}, "policyTypes": ["Egress"],
        "egress": [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": [f"{server}/32"]}}]}]})
    for client in ("same-allowed", "far-allowed"):
        until(kind_cluster, namespace, client, server, reaches=False)
    # Every other destination, on the same node and on the other one, still reached.
    for client in ("same-allowed", "far-allowed"):
        for target in ("same-other", "far-other"):
            assert until(kind_cluster, namespace, client, addresses[target], reaches=True) is not None
    # The policy selects role=allowed only: the others still reach the server.
    for client in ("same-other", "far-other"):
        assert connect(kind_cluster, namespace, client, server) is not None, client
