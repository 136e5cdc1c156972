"""sk8s on a real 3-node Kubernetes v1.37.2 cluster (kind with podman, built offline by
hack/kind.sh; the session fixture is in conftest.py): the CRDs establish and reject an
invalid SandboxPod naming the field, the deploy kustomization passes a server-side dry run,
and the bed itself is what it claims: 3 nodes Ready, pods on the two workers reach each other
without NAT, a ClusterIP Service answers across nodes and its name resolves (CoreDNS), and
the sk8s images load and run.
"""
from __future__ import annotations

import json
import subprocess

import pytest
import yaml

from tests.kind.conftest import REPO, KindCluster

pytestmark = pytest.mark.kind

CRD_NAMES = ("sandboxpods.sk8s.io", "serverlessclusters.sk8s.io", "servicelbs.sk8s.io")

INVALID_SANDBOXPOD = """\
apiVersion: sk8s.io/v1alpha1
kind: SandboxPod
metadata:
  name: missing-image
  namespace: default
spec:
  containers:
  - name: web
"""


@pytest.fixture(scope="module")
def kctl(kind_cluster: KindCluster):
    return kind_cluster.kubectl


@pytest.fixture(scope="module")
def crds_loaded(kctl):
    proc = kctl("apply", "-f", "crds/sk8s.io_sandboxpods.yaml",
                "-f", "crds/sk8s.io_serverlessclusters.yaml", "-f", "crds/sk8s.io_servicelbs.yaml")
    assert proc.returncode == 0, proc.stderr
    proc = kctl("wait", "--for=condition=Established", "--timeout=60s",
                *(f"crd/{n}" for n in CRD_NAMES))
    assert proc.returncode == 0, proc.stderr


def test_crds_establish(kctl, crds_loaded):
    proc = kctl("get", "crd", *CRD_NAMES, "-o", "name")
    assert proc.returncode == 0, proc.stderr
    for name in CRD_NAMES:
        assert name in proc.stdout


def test_sandboxpod_missing_field_is_rejected_naming_it(kctl, crds_loaded):
    proc = kctl("apply", "-f", "-", stdin=INVALID_SANDBOXPOD)
    assert proc.returncode != 0, f"invalid SandboxPod was accepted:\n{proc.stdout}"
    assert "spec.containers[0].image" in proc.stderr, proc.stderr
    assert "Required value" in proc.stderr, proc.stderr


def test_kustomization_applies_in_server_dry_run(kctl, crds_loaded):
    # A server-side dry run needs the namespaces to exist (kubernetes/kubernetes#83562): the
    # ones the kustomization declares are created for real (the bed is a test cluster).
    rendered = kctl("kustomize", "manifests")
    assert rendered.returncode == 0, rendered.stderr
    namespaces = [d["metadata"]["name"] for d in yaml.safe_load_all(rendered.stdout)
                  if d and d.get("kind") == "Namespace"]
    assert "sk8s-system" in namespaces
    for name in namespaces:
        ns = kctl("create", "namespace", name)
        assert ns.returncode == 0 or "AlreadyExists" in ns.stderr, ns.stderr
    proc = kctl("apply", "-k", "manifests", "--dry-run=server")
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert "deployment.apps/sandboxpod-operator" in proc.stdout
    assert "clusterrole.rbac.authorization.k8s.io/sk8s-sandboxpod-operator" in proc.stdout


# --- the bed itself -------------------------------------------------------------------------

NET_NS = "sk8s-kind-net"
HTTP_GET = "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 {host} {port}"   # busybox wget needs NSS


def test_three_nodes_ready_one_control_plane(kctl):
    proc = kctl("get", "nodes", "-o", "json")
    assert proc.returncode == 0, proc.stderr
    nodes = json.loads(proc.stdout)["items"]
    assert len(nodes) == 3, [n["metadata"]["name"] for n in nodes]
    for node in nodes:
        ready = {c["type"]: c["status"] for c in node["status"]["conditions"]}["Ready"]
        assert ready == "True", node["metadata"]["name"]
        assert node["status"]["nodeInfo"]["kubeletVersion"] == "v1.37.2"
    planes = [n for n in nodes if "node-role.kubernetes.io/control-plane" in n["metadata"]["labels"]]
    assert len(planes) == 1
    assert planes[0]["spec"].get("taints"), "the control plane takes no ordinary pods"


@pytest.fixture(scope="module")
def workers(kctl) -> tuple[str, str]:
    proc = kctl("get", "nodes", "-l", "!node-role.kubernetes.io/control-plane", "-o", "name")
    assert proc.returncode == 0, proc.stderr
    names = sorted(line.removeprefix("node/") for line in proc.stdout.split())
    assert len(names) == 2, names
    return names[0], names[1]


def pod_manifest(name: str, node: str, image: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": NET_NS, "labels": {"app": name}},
            "spec": {"nodeSelector": {"kubernetes.io/hostname": node},
                     "containers": [{"name": "web", "image": image, "imagePullPolicy": "Never"}]}}


@pytest.fixture(scope="module")
def net(kctl, busybox, workers):
    """A busybox httpd pod on each worker (scheduled there by nodeSelector) and a ClusterIP
    Service in front of the second; yields {pod name: pod IP} and the Service's address."""
    kctl("delete", "namespace", NET_NS, "--ignore-not-found", "--wait=true", timeout=300)
    assert kctl("create", "namespace", NET_NS).returncode == 0
    items = [pod_manifest("web-a", workers[0], busybox), pod_manifest("web-b", workers[1], busybox),
             {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web-b", "namespace": NET_NS},
              "spec": {"selector": {"app": "web-b"}, "ports": [{"port": 8080, "targetPort": 80}]}}]
    proc = kctl("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
    assert proc.returncode == 0, proc.stderr
    proc = kctl("-n", NET_NS, "wait", "--for=condition=Ready", "pod/web-a", "pod/web-b", "--timeout=120s")
    assert proc.returncode == 0, proc.stderr + kctl("-n", NET_NS, "describe", "pods").stdout
    pods = json.loads(kctl("-n", NET_NS, "get", "pods", "-o", "json").stdout)["items"]
    ips = {p["metadata"]["name"]: p["status"]["podIP"] for p in pods}
    assert {p["metadata"]["name"]: p["spec"]["nodeName"] for p in pods} == {"web-a": workers[0], "web-b": workers[1]}
    svc = json.loads(kctl("-n", NET_NS, "get", "service", "web-b", "-o", "json").stdout)
    yield ips, svc["spec"]["clusterIP"]
    kctl("delete", "namespace", NET_NS, "--ignore-not-found", "--wait=false")


def http_from(kctl, pod: str, host: str, port: int) -> str:
    proc = kctl("-n", NET_NS, "exec", pod, "--", "sh", "-c", HTTP_GET.format(host=host, port=port), timeout=60)
    assert proc.returncode == 0, f"{pod} -> {host}:{port}: {proc.stderr}"
    return proc.stdout


@pytest.mark.parametrize(("client", "server"), [("web-a", "web-b"), ("web-b", "web-a")])
def test_a_pod_on_one_worker_reaches_a_pod_on_the_other(kctl, net, client, server):
    ips, _ = net
    assert ips[client] != ips[server]
    answer = http_from(kctl, client, ips[server], 80)
    assert answer.startswith("HTTP/1.1 200 OK"), answer
    assert "Welcome to sk8s" in answer
    # The server saw the client's own pod address: routed between nodes, not masqueraded.
    log = kctl("-n", NET_NS, "logs", server).stdout
    assert f"[::ffff:{ips[client]}]:" in log, log


def test_a_cluster_ip_service_answers_from_the_other_worker(kctl, net):
    ips, cluster_ip = net
    assert cluster_ip and cluster_ip != "None" and cluster_ip.startswith("10.96.")
    answer = http_from(kctl, "web-a", cluster_ip, 8080)
    assert answer.startswith("HTTP/1.1 200 OK"), answer
    assert "Welcome to sk8s" in answer
    assert f"[::ffff:{ips['web-a']}]:" in kctl("-n", NET_NS, "logs", "web-b").stdout
    # An address no Service holds does not answer: the answer above came through kube-proxy.
    proc = kctl("-n", NET_NS, "exec", "web-a", "--", "sh", "-c",
                HTTP_GET.format(host=cluster_ip, port=8081), timeout=60)
    assert "200 OK" not in proc.stdout


def test_a_service_name_resolves_through_coredns(kctl, net):
    _, cluster_ip = net
    name = f"web-b.{NET_NS}.svc.cluster.local"
    # busybox's nslookup speaks DNS itself (no NSS): it asks the pod's nameserver, kube-dns.
    proc = kctl("-n", NET_NS, "exec", "web-a", "--", "nslookup", name, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"Address: {cluster_ip}" in proc.stdout, proc.stdout
    missing = kctl("-n", NET_NS, "exec", "web-a", "--", "nslookup", f"nothing.{NET_NS}.svc.cluster.local",
                   timeout=60)
    assert "NXDOMAIN" in missing.stdout + missing.stderr


def run_pod_to_completion(kctl, name: str, image: str, command: list[str]) -> str:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NET_NS},
           "spec": {"restartPolicy": "Never",
                    "containers": [{"name": "main", "image": image, "imagePullPolicy": "Never",
                                    "command": command}]}}
    kctl("-n", NET_NS, "delete", "pod", name, "--ignore-not-found", "--wait=true")
    assert kctl("apply", "-f", "-", stdin=json.dumps(pod)).returncode == 0
    proc = kctl("-n", NET_NS, "wait", "--for=jsonpath={.status.phase}=Succeeded", f"pod/{name}", "--timeout=120s")
    assert proc.returncode == 0, proc.stderr + kctl("-n", NET_NS, "describe", "pod", name).stdout
    return kctl("-n", NET_NS, "logs", name).stdout


def test_sk8s_images_load_and_run_on_the_nodes(kind_cluster, kctl, net):
    """`make images`' operator and control-plane images (built when missing) load into every
    node and run there from the node's own containerd (imagePullPolicy Never)."""
    images = {"localhost/sk8s-operator:latest": "build-operator-image.sh",
              "localhost/sk8s-controlplane:latest": "build-controlplane-image.sh"}
    for image, script in images.items():
        if subprocess.run(["podman", "image", "exists", image]).returncode != 0:
            subprocess.run(["bash", str(REPO / "hack" / script)], check=True, capture_output=True, timeout=1800)
    kind_cluster.load(*images)
    out = run_pod_to_completion(kctl, "controlplane-version", "localhost/sk8s-controlplane:latest",
                                ["kube-apiserver", "--version"])
    assert out.strip() == "Kubernetes v1.37.2"
    out = run_pod_to_completion(kctl, "operator-kopf", "localhost/sk8s-operator:latest", ["kopf", "--version"])
    assert out.startswith("kopf, version "), out
