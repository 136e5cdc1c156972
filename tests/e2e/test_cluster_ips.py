"""ClusterIPs that route, and the tenant API inside its VPC: the apiserver allocates
ClusterIPs from the VPC's service range, each Service's load balancer answers on its
ClusterIP, DNS answers it, and `kubernetes.default.svc` is the tenant's own apiserver."""
from __future__ import annotations

import base64
import ipaddress
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from .conftest import IMAGE
from .tenant import delete_cluster, make_cluster, plane_dir

pytestmark = pytest.mark.e2e
PAGE = "Welcome to sk8s"
HOLDS = Path("/run/sk8s/vpc-subnets")  # operators/providers/local/vpc.py


@pytest.fixture(scope="module")
def cips(meta):
    t = make_cluster(meta, "cips", quotas={"maxPods": 10})
    yield t
    delete_cluster(meta, "cips")


def network(meta, name: str) -> dict:
    return meta.get("serverlesscluster", name, "default")["status"]["network"]


def wait(predicate, timeout: float = 30, what: str = "condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except Exception as exc:  # not there yet
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


def run_client(tenant, name: str, script: str, timeout: float = 90) -> str:
    tenant.kubectl("run", name, f"--image={IMAGE}", "--image-pull-policy=IfNotPresent", "--restart=Never",
                   "--", "sh", "-c", script)
    pod = tenant.wait_pod(name, lambda p: p["status"].get("phase") in ("Succeeded", "Failed"), timeout=timeout)
    out = tenant.kubectl("logs", name).stdout
    tenant.kubectl("delete", "pod", name, "--wait=false")
    assert pod["status"]["phase"] == "Succeeded", out
    return out


def cluster_ip(tenant, name: str, ns: str = "default") -> str:
    return tenant.kubectl("get", "svc", name, "-n", ns, "-o", "jsonpath={.spec.clusterIP}").stdout.strip()


def test_the_cluster_has_an_address_plan_and_allocates_from_its_vpc(meta, cips):
    plan = network(meta, "cips")
    vpc, pods, services = (ipaddress.ip_network(plan[k]) for k in ("vpcCIDR", "podCIDR", "serviceCIDR"))
    assert pods.subnet_of(vpc) and services.subnet_of(vpc) and not pods.overlaps(services)
    assert cluster_ip(cips, "kubernetes") == str(services[1])
    # The VPC resolver holds kube-system/kube-dns's ClusterIP, so no Service can take it.
    assert cluster_ip(cips, "kube-dns", "kube-system") == str(vpc.broadcast_address - 1)
    uid = meta.get("serverlesscluster", "cips", "default")["metadata"]["uid"]
    nets = json.loads(meta.podman("network", "ls", "--format=json", f"--filter=label=sk8s.io/vpc={uid}").stdout)
    assert [s["subnet"] for n in nets for s in n["subnets"]] == [str(vpc)]


def test_a_cluster_ip_is_what_dns_answers_and_reaches_the_backend(meta, cips):
    cips.kubectl("create", "deployment", "web", f"--image={IMAGE}")
    cips.kubectl("expose", "deployment", "web", "--port=8080", "--target-port=80")
    cips.kubectl("rollout", "status", "deployment/web", "--timeout=120s")
    ip = cluster_ip(cips, "web")
    assert ipaddress.ip_address(ip) in ipaddress.ip_network(network(meta, "cips")["serviceCIDR"])
    out = run_client(cips, "client", f"nslookup web.default.svc.cluster.local; timeout 3 wget -qO- http://{ip}:8080/ "
                                     "&& timeout 3 wget -qO- http://web:8080/")
    answer = out.split("web.default.svc.cluster.local", 1)[1]
    assert f"Address: {ip}" in answer or f"Address 1: {ip}" in answer, out
    assert out.count(PAGE) == 2, out
    ns = meta.get("serverlesscluster", "cips", "default")["status"]["sandboxNamespace"]
    lbs = json.loads(meta.kubectl("get", "servicelbs", "-n", ns, "-l", "sk8s.io/service-name=web",
                                  "-o", "json").stdout)["items"]
    assert [lb["status"]["address"] for lb in lbs] == [ip]


def test_the_kubernetes_endpoints_exist_as_on_any_cluster(meta, cips):
    k8s_ip = cluster_ip(cips, "kubernetes")
    port = int(meta.get("serverlesscluster", "cips", "default")["status"]["endpoint"].rsplit(":", 1)[1])
    eps = wait(lambda: json.loads(cips.kubectl("get", "endpoints", "kubernetes", "-o", "json").stdout),
               what="Endpoints kubernetes")
    assert [a["ip"] for s in eps["subsets"] for a in s["addresses"]] == [k8s_ip]
    assert [p["port"] for s in eps["subsets"] for p in s["ports"]] == [port]
    slices = json.loads(cips.kubectl("get", "endpointslices", "-l", "kubernetes.io/service-name=kubernetes",
                                     "-o", "json").stdout)["items"]
    assert [a for s in slices for e in s["endpoints"] for a in e["addresses"]] == [k8s_ip]


def pod_netns(meta, cluster: str, pod: str) -> str:
    """The network namespace of a tenant pod's sandbox."""
    uid = meta.get("serverlesscluster", cluster, "default")["metadata"]["uid"]
    ids = meta.podman("ps", "-q", f"--filter=label=sk8s.io/cluster-uid={uid}",
                      f"--filter=label=sk8s.io/name=default.{pod}").stdout.split()
    assert ids, f"no sandbox for pod {pod}"
    return meta.podman("inspect", ids[0], "--format={{.NetworkSettings.SandboxKey}}").stdout.strip()


VERIFY = """
import socket, ssl, sys
ctx = ssl.create_default_context(cadata=sys.argv[2])
with socket.create_connection((sys.argv[1], int(sys.argv[3])), timeout=5) as raw, \
        ctx.wrap_socket(raw, server_hostname="kubernetes.default.svc") as tls:
    tls.sendall(b"GET /version HTTP/1.0\\r\\nHost: kubernetes.default.svc\\r\\n\\r\\n")
    reply = b""
    while chunk := tls.recv(4096):
        reply += chunk
print(reply.decode())
"""


def test_a_pod_reaches_its_own_api_server(meta, cips):
    k8s_ip = cluster_ip(cips, "kubernetes")
    port = int(meta.get("serverlesscluster", "cips", "default")["status"]["endpoint"].rsplit(":", 1)[1])
    # Inside a pod: the name resolves to the ClusterIP, which is the tenant's apiserver (Go's
    # TLS server answers a plain HTTP request with its 400), at 443 and at the address and port
    # the Endpoints advertise. busybox's own TLS (no openssl in the image) fails Go's handshake.
    cips.kubectl("run", "api-client", f"--image={IMAGE}", "--image-pull-policy=IfNotPresent", "--", "sleep", "3600")
    cips.wait_pod("api-client", lambda p: p["status"].get("phase") == "Running")
    probe = "printf 'GET /version HTTP/1.0\\r\\n\\r\\n' | timeout 3 nc {} {}; echo"
    out = cips.kubectl("exec", "api-client", "--", "sh", "-c",
                       "nslookup kubernetes.default.svc.cluster.local; " + probe.format("kubernetes.default.svc", 443)
                       + "; " + probe.format(k8s_ip, port)).stdout
    answer = out.split("kubernetes.default.svc.cluster.local", 1)[1]
    assert f"Address: {k8s_ip}" in answer or f"Address 1: {k8s_ip}" in answer, out
    assert out.count("Client sent an HTTP request to an HTTPS server") == 2, out
    # From the pod's network namespace, with TLS verified by the CA of the tenant's kubeconfig
    # under the name pods use: the apiserver's /version.
    config = yaml.safe_load(cips.kubeconfig.read_text())
    ca = base64.b64decode(config["clusters"][0]["cluster"]["certificate-authority-data"]).decode()
    ns = pod_netns(meta, "cips", "api-client")
    for p in (443, port):
        got = subprocess.run(["nsenter", f"--net={ns}", sys.executable, "-c", VERIFY, k8s_ip, ca, str(p)],
                             capture_output=True, text=True, timeout=30)
        assert got.returncode == 0 and "200 OK" in got.stdout.splitlines()[0], (got.stdout[:300], got.stderr)
        assert json.loads(got.stdout.split("\n\n", 1)[1])["gitVersion"].startswith("v1.")  # text mode: \n
    cips.kubectl("delete", "pod", "api-client", "--wait=false")


def test_another_tenant_cannot_reach_this_tenants_api_server(meta, cips):
    k8s_ip = cluster_ip(cips, "kubernetes")
    other = make_cluster(meta, "cips-other", quotas={"maxPods": 2})
    other_ip = cluster_ip(other, "kubernetes")
    other_plane = plane_dir(meta, meta.get("serverlesscluster", "cips-other", "default")["metadata"]["uid"])
    hold = HOLDS / network(meta, "cips-other")["vpcCIDR"].replace("/", "-")
    assert hold.read_text() == str(other_plane)  # the range is held for its plane
    try:
        assert other_ip != k8s_ip
        probe = "printf 'GET /version HTTP/1.0\\r\\n\\r\\n' | timeout 3 nc {} 443; echo"
        out = run_client(other, "probe", "echo OTHER:; " + probe.format(k8s_ip) + "; echo OWN:; "
                         + probe.format("kubernetes.default.svc"))
        other_part, own_part = out.split("OWN:", 1)
        assert "HTTP" not in other_part, out  # nothing answers: the VPCs are isolated
        assert "Client sent an HTTP request to an HTTPS server" in own_part, out  # its own API server
    finally:
        meta.kubectl("delete", "serverlesscluster", "cips-other", "--timeout=180s", check=False)
    # Deleted: the hold is released (or already another plane's), its ClusterIPs route
    # nowhere, and no packet for them leaves this machine.
    assert not hold.exists() or hold.read_text() != str(other_plane)
    got = subprocess.run(["ip", "-4", "route", "get", other_ip], capture_output=True, text=True)
    assert got.returncode != 0 and "dev" not in got.stdout, (got.stdout, got.stderr)
    assert subprocess.run(["ip", "-4", "route", "show", "10.96.0.0/16"], capture_output=True,
                          text=True).stdout.startswith("prohibit")
