"""sk8s installed on the kind bed the way a platform team installs it: `kubectl apply -k
manifests` with the images `make images` builds loaded into the nodes. Then a tenant
cluster whose control plane is a Deployment of the meta-cluster (SK8S_PLANE_RUNNER=pods)
and whose pods are Pods on the meta-cluster's nodes (metapod); `kubectl logs` and `exec`
through the tenant apiserver; the operator rolled while a cluster is being created; and the
node running a tenant's control plane stopped: the plane comes back on another node with
the tenant's data, which lives in the datastore.

The bed's one adaptation: kind here has no volume provisioner, so the datastore's volume is
a local PersistentVolume on the control-plane node (the node the test never stops), and
the datastore tolerates that node's taint. On a real cluster its PVC binds by itself.
"""
from __future__ import annotations

import base64
import ipaddress
import json
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.kind.conftest import REPO, KindCluster, hack_kind

pytestmark = pytest.mark.kind
IMAGES = ("localhost/sk8s-operator:latest", "localhost/sk8s-controlplane:latest")
OPERATORS = ("serverlesscluster-operator", "sandboxpod-operator", "servicelb-operator", "privatezone-operator")
PLANES = "sk8s-planes"
DATASTORE_PV = """
apiVersion: v1
kind: PersistentVolume
metadata: {name: sk8s-datastore-kind-0}
spec:
  capacity: {storage: 10Gi}
  accessModes: [ReadWriteOnce]
  storageClassName: standard
  persistentVolumeReclaimPolicy: Retain
  local: {path: /var/lib/sk8s-datastore}
  nodeAffinity:
    required:
      nodeSelectorTerms:
      - matchExpressions:
        - {key: kubernetes.io/hostname, operator: In, values: [%s]}
"""
TOLERATE_CONTROL_PLANE = [{"op": "add", "path": "/spec/template/spec/tolerations", "value": [
    {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"}]}]


def ok(proc: subprocess.CompletedProcess, what: str) -> str:
    assert proc.returncode == 0, f"{what}:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def build_images() -> None:
    for script in ("build-operator-image.sh", "build-controlplane-image.sh"):
        proc = subprocess.run(["bash", str(REPO / "hack" / script)], capture_output=True, text=True, timeout=1800)
        assert proc.returncode == 0, f"hack/{script}:\n{proc.stderr[-3000:]}"


def control_plane_node(kind: KindCluster) -> str:
    return ok(kind.kubectl("get", "nodes", "-l", "node-role.kubernetes.io/control-plane", "-o",
                           "jsonpath={.items[0].metadata.name}"), "the control-plane node")


def lb_pool(kind: KindCluster) -> str:
    """Addresses for the metapod LoadBalancers provider: the bottom of the subnet this host
    routes to the bed's control-plane node (hack/kind.sh setup_lb_route)."""
    node_ip = ok(kind.kubectl("get", "nodes", "-l", "node-role.kubernetes.io/control-plane", "-o",
                              'jsonpath={.items[0].status.addresses[?(@.type=="InternalIP")].address}'), "node IP")
    routes = json.loads(subprocess.run(["ip", "-j", "route", "show"], capture_output=True, text=True,
                                       check=True).stdout)
    found = [r["dst"] for r in routes if r.get("gateway") == node_ip and r["dst"].startswith("10.248.")]
    assert found, f"no load-balancer route to {node_ip} on this host: hack/kind.sh up adds it"
    return str(next(ipaddress.ip_network(found[0]).subnets(new_prefix=26)))


def install(kind: KindCluster) -> None:
    """`kubectl apply -k manifests`, the datastore's Secrets (python -m operators.datastore.pki),
    and the bed's datastore volume."""
    node = control_plane_node(kind)
    subprocess.run(["podman", "exec", node, "sh", "-c", "mkdir -p /var/lib/sk8s-datastore && "
                    "chown 10001:10001 /var/lib/sk8s-datastore && chmod 700 /var/lib/sk8s-datastore"], check=True)
    ok(kind.kubectl("apply", "-f", "-", stdin=DATASTORE_PV % node), "the datastore's PersistentVolume")
    apply = kind.kubectl("apply", "-k", "manifests", timeout=300)
    if apply.returncode != 0:  # the CRDs' first apply can race their establishment: once more
        time.sleep(5)
        ok(kind.kubectl("apply", "-k", "manifests", timeout=300), "kubectl apply -k manifests")
    if kind.kubectl("-n", "sk8s-system", "get", "secret", "sk8s-datastore-ca").returncode != 0:
        secrets = subprocess.run([str(REPO / ".venv/bin/python"), "-m", "operators.datastore.pki", "sk8s-system"],
                                 capture_output=True, text=True, check=True, cwd=REPO).stdout
        ok(kind.kubectl("-n", "sk8s-system", "create", "-f", "-", stdin=secrets), "the datastore's Secrets")
    ok(kind.kubectl("-n", "sk8s-system", "patch", "statefulset", "sk8s-datastore", "--type=json",
                    "-p", json.dumps(TOLERATE_CONTROL_PLANE)), "the datastore's toleration")
    # No load-balancer controller on kind: the provider hands out the bed's addresses itself.
    ok(kind.kubectl("-n", "sk8s-system", "set", "env", "deployment/servicelb-operator",
                    f"SK8S_METAPOD_LB_ADDRESSES={lb_pool(kind)}"), "the load-balancer pool")
    # The images may have been rebuilt since the operators started: run this build.
    ok(kind.kubectl("-n", "sk8s-system", "rollout", "restart", *(f"deployment/{d}" for d in OPERATORS)),
       "restarting the operators")
    ok(kind.kubectl("-n", "sk8s-system", "rollout", "status", "statefulset/sk8s-datastore", "--timeout=180s",
                    timeout=200), "the datastore")
    for d in OPERATORS:
        ok(kind.kubectl("-n", "sk8s-system", "rollout", "status", f"deployment/{d}", "--timeout=180s",
                        timeout=200), d)


@pytest.fixture(scope="module")
def sk8s(kind_cluster: KindCluster, busybox: str):
    build_images()
    kind_cluster.load(*IMAGES)
    install(kind_cluster)
    yield kind_cluster
    for name in ("kind-e2e", "kind-roll", "kind-other"):
        kind_cluster.kubectl("delete", "serverlesscluster", name, "--ignore-not-found", "--timeout=120s", timeout=150)
    # Other tests of the bed run operators of their own against it: ours stop here.
    kind_cluster.kubectl("-n", "sk8s-system", "scale", "deployment", *OPERATORS, "--replicas=0")


def create_cluster(kind: KindCluster, name: str) -> None:
    body = {"apiVersion": "sk8s.io/v1alpha1", "kind": "ServerlessCluster",
            "metadata": {"name": name, "namespace": "default"}, "spec": {"provider": "metapod"}}
    ok(kind.kubectl("apply", "-f", "-", stdin=json.dumps(body)), f"creating {name}")


def wait_ready(kind: KindCluster, name: str, timeout: int = 240) -> dict:
    proc = kind.kubectl("wait", "--for=condition=Ready", f"serverlesscluster/{name}", f"--timeout={timeout}s",
                        timeout=timeout + 30)
    if proc.returncode != 0:
        status = kind.kubectl("get", "serverlesscluster", name, "-o", "jsonpath={.status}").stdout
        logs = kind.kubectl("-n", "sk8s-system", "logs", "deployment/serverlesscluster-operator", "--tail=60").stdout
        pytest.fail(f"{name} not Ready: {proc.stderr}\nstatus: {status}\noperator:\n{logs}")
    return json.loads(ok(kind.kubectl("get", "serverlesscluster", name, "-o", "json"), name))


def plane_id(kind: KindCluster, cluster: dict) -> str:
    uid = cluster["metadata"]["uid"]
    out = ok(kind.kubectl("-n", PLANES, "get", "secrets", "-l", f"sk8s.io/claimed-by={uid}", "-o",
                          "jsonpath={.items[0].metadata.labels.sk8s\\.io/plane}"), "the claim Secret")
    assert out, f"no claim Secret names cluster {uid}"
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Tenant:
    """kubectl of the tenant cluster, through a port-forward to its plane's Service (its
    apiserver's certificate names 127.0.0.1)."""

    def __init__(self, kind: KindCluster, name: str, plane: str):
        self.kind, self.plane, self.port = kind, plane, free_port()
        raw = ok(kind.kubectl("get", "secret", f"{name}-kubeconfig", "-o", "jsonpath={.data.kubeconfig}"), "kubeconfig")
        config = yaml.safe_load(base64.b64decode(raw))
        config["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{self.port}"
        self.path = Path(tempfile.mkdtemp(prefix="sk8s-kind-tenant-")) / "kubeconfig"
        self.path.write_text(yaml.safe_dump(config))
        self.forward = None
        self.connect()

    def connect(self, timeout: float = 60) -> None:
        self.close()
        self.forward = subprocess.Popen([self.kind.kubectl_bin, f"--kubeconfig={self.kind.kubeconfig}", "-n", PLANES,
                                         "port-forward", f"svc/sk8s-plane-{self.plane}", f"{self.port}:443"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._run(("get", "--raw", "/readyz"), None, 10).returncode == 0:
                return
            time.sleep(0.5)
        raise AssertionError(f"the tenant apiserver of plane {self.plane} does not answer through a port-forward")

    def kubectl(self, *args: str, stdin: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
        proc = self._run(args, stdin, timeout)
        if proc.returncode != 0 and self.forward is not None and self.forward.poll() is not None:
            # kubectl port-forward ends at the first broken stream: forward again, once.
            self.connect()
            proc = self._run(args, stdin, timeout)
        return proc

    def _run(self, args, stdin, timeout) -> subprocess.CompletedProcess:
        return subprocess.run([self.kind.kubectl_bin, f"--kubeconfig={self.path}", *args], input=stdin,
                              capture_output=True, text=True, timeout=timeout)

    def close(self) -> None:
        if self.forward is not None:
            self.forward.terminate()
            self.forward.wait(timeout=10)
            self.forward = None

    def remove(self) -> None:
        """The port-forward stopped and the kubeconfig's directory gone."""
        self.close()
        shutil.rmtree(self.path.parent, ignore_errors=True)


WEB = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: %s
        imagePullPolicy: IfNotPresent
        command: ["sh", "-c", "mkdir -p /tmp/www && echo hello from $(hostname) > /tmp/www/index.html &&
                  echo web started on $(hostname) && exec httpd -f -p 8080 -h /tmp/www"]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  type: LoadBalancer
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
"""


@pytest.fixture(scope="module")
def tenant(sk8s: KindCluster):
    create_cluster(sk8s, "kind-e2e")
    cluster = wait_ready(sk8s, "kind-e2e")
    t = Tenant(sk8s, "kind-e2e", plane_id(sk8s, cluster))
    yield t
    t.remove()


def test_the_operators_run_non_root_with_probes_and_requests(sk8s: KindCluster):
    deployments = json.loads(ok(sk8s.kubectl("-n", "sk8s-system", "get", "deployments", "-o", "json"), "operators"))
    seen = {d["metadata"]["name"]: d for d in deployments["items"]}
    assert set(OPERATORS) <= set(seen)
    for name in OPERATORS:
        d = seen[name]
        assert d["status"].get("availableReplicas") == 1, f"{name} is not available: {d['status']}"
        pod = d["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        c = pod["containers"][0]
        assert c["readinessProbe"] and c["livenessProbe"] and c["resources"]["requests"]


def test_a_tenant_control_plane_is_a_deployment_and_its_pods_run_on_the_nodes(sk8s: KindCluster, tenant: Tenant,
                                                                                busybox: str):
    plane = json.loads(ok(sk8s.kubectl("-n", PLANES, "get", "deployment", f"sk8s-plane-{tenant.plane}", "-o", "json"),
                          "the plane's Deployment"))
    names = [c["name"] for c in plane["spec"]["template"]["spec"]["containers"]]
    assert names == ["kube-apiserver", "kube-controller-manager", "virtual-node"]
    nodes = json.loads(ok(tenant.kubectl("get", "nodes", "-o", "json"), "tenant nodes"))["items"]
    assert [n["metadata"]["name"] for n in nodes] == ["virtual-node"]
    ok(tenant.kubectl("apply", "-f", "-", stdin=WEB % busybox), "the web Deployment")
    ok(tenant.kubectl("rollout", "status", "deployment/web", "--timeout=180s", timeout=200), "web rollout")
    pods = json.loads(ok(tenant.kubectl("get", "pods", "-l", "app=web", "-o", "json"), "tenant pods"))["items"]
    assert len(pods) == 2
    cluster = json.loads(ok(sk8s.kubectl("get", "serverlesscluster", "kind-e2e", "-o", "json"), "cluster"))
    ns = cluster["status"]["sandboxNamespace"]
    meta = json.loads(ok(sk8s.kubectl("-n", ns, "get", "pods", "-o", "json"), "meta pods"))["items"]
    workers = {m["spec"].get("nodeName") for m in meta}
    assert len(meta) == 2 and all(w and "worker" in w for w in workers), workers
    assert {p["status"]["podIP"] for p in pods} == {m["status"]["podIP"] for m in meta}
    name = pods[0]["metadata"]["name"]
    deadline = time.monotonic() + 30
    while "web started on " + name not in tenant.kubectl("logs", name).stdout:
        assert time.monotonic() < deadline, tenant.kubectl("logs", name)
        time.sleep(1)
    out = ok(tenant.kubectl("exec", name, "--", "sh", "-c", "echo exec in $(hostname)"), "kubectl exec")
    assert out.strip() == f"exec in {name}"
    address, page = load_balancer_answer(tenant, "web")
    assert page.startswith("hello from web-"), page
    print(f"\ntenant LoadBalancer web at {address} answers: {page.strip()}")


def connects(tenant: Tenant, pod: str, address: str, port: int) -> bool:
    """Whether `pod` of the tenant opens a TCP connection to address:port (busybox nc: its
    wget segfaults on the bed)."""
    proc = tenant.kubectl("exec", pod, "--", "sh", "-c", f"echo | nc -w 3 {address} {port}", timeout=60)
    return proc.returncode == 0


def test_tenants_sandboxes_reach_their_own_pods_and_not_another_tenants(sk8s: KindCluster, tenant: Tenant,
                                                                        busybox: str):
    """The NetworkPolicy of each sandbox namespace (providers/metapod/netpol.py), enforced by
    the bed's kube-router: the pods of kind-e2e (the web Deployment above) reach each other;
    a pod of another tenant reaches none of them, nor the meta apiserver, nor a node's
    kubelet; the web's load balancer still answers this host."""
    create_cluster(sk8s, "kind-other")
    other_cluster = wait_ready(sk8s, "kind-other")
    other = Tenant(sk8s, "kind-other", plane_id(sk8s, other_cluster))
    try:
        for cluster in (other_cluster, json.loads(ok(sk8s.kubectl("get", "serverlesscluster", "kind-e2e", "-o",
                                                                  "json"), "kind-e2e"))):
            ns = cluster["status"]["sandboxNamespace"]
            ok(sk8s.kubectl("-n", ns, "get", "networkpolicy", "sk8s-sandboxes"), f"the fence of {ns}")
        ok(other.kubectl("run", "probe", f"--image={busybox}", "--image-pull-policy=IfNotPresent", "--",
                         "sleep", "3600"), "the other tenant's pod")
        ok(other.kubectl("wait", "--for=condition=Ready", "pod/probe", "--timeout=120s", timeout=150), "probe Ready")
        web = json.loads(ok(tenant.kubectl("get", "pods", "-l", "app=web", "-o", "json"), "web pods"))["items"]
        first, target = web[0]["metadata"]["name"], web[1]["status"]["podIP"]
        assert connects(tenant, first, target, 8080), "a tenant's pods no longer reach each other"
        assert not connects(other, "probe", target, 8080), "another tenant's pod reached kind-e2e's pod"
        node_ip = ok(sk8s.kubectl("get", "node", control_plane_node(sk8s), "-o",
                                  "jsonpath={.status.addresses[?(@.type==\"InternalIP\")].address}"), "node IP")
        for address, port in (("10.96.0.1", 443), (node_ip, 6443), (node_ip, 10250)):
            assert not connects(other, "probe", address, port), f"a sandbox reached {address}:{port}"
        assert load_balancer_answer(tenant, "web")[1].startswith("hello from web-")
    finally:
        other.remove()
        sk8s.kubectl("delete", "serverlesscluster", "kind-other", "--wait=false")


def load_balancer_answer(tenant: Tenant, service: str, timeout: float = 120) -> tuple[str, str]:
    """The Service's EXTERNAL-IP, and the first page fetched from this host through it."""
    deadline, address = time.monotonic() + timeout, ""
    while time.monotonic() < deadline:
        address = address or tenant.kubectl("get", "service", service, "-o",
                                            "jsonpath={.status.loadBalancer.ingress[0].ip}").stdout.strip()
        if address:
            try:
                with urllib.request.urlopen(f"http://{address}/", timeout=2) as resp:
                    return address, resp.read().decode()
            except OSError:
                pass
        time.sleep(1)
    svc = tenant.kubectl("get", "service", service, "-o", "yaml").stdout
    pytest.fail(f"the tenant's LoadBalancer {service} did not answer at {address or 'no address'}:\n{svc}")


def plane_pod_uid(kind: KindCluster, plane: str) -> str:
    return ok(kind.kubectl("-n", PLANES, "get", "pods", "-l", f"sk8s.io/plane={plane}", "-o",
                           "jsonpath={.items[*].metadata.uid}"), "the plane's Pod")


def test_rolling_the_operator_loses_no_reconcile(sk8s: KindCluster, tenant: Tenant):
    running = plane_pod_uid(sk8s, tenant.plane)
    ok(sk8s.kubectl("-n", "sk8s-system", "rollout", "restart", "deployment/serverlesscluster-operator"), "roll")
    create_cluster(sk8s, "kind-roll")  # while the old operator stops and the new one starts
    rolled = wait_ready(sk8s, "kind-roll")
    assert rolled["status"]["phase"] == "Ready"
    assert wait_ready(sk8s, "kind-e2e", timeout=60)["status"]["phase"] == "Ready"
    # The new operator found the existing tenant's plane and left its Pod alone.
    assert plane_pod_uid(sk8s, tenant.plane) == running
    assert ok(tenant.kubectl("get", "--raw", "/readyz"), "the tenant after the roll") == "ok"
    plane = plane_id(sk8s, rolled)
    ok(sk8s.kubectl("delete", "serverlesscluster", "kind-roll", "--timeout=120s", timeout=150), "deleting kind-roll")
    left = sk8s.kubectl("-n", PLANES, "get", "deployment,service,secret,configmap", "-l", f"sk8s.io/plane={plane}",
                        "-o", "name").stdout.split()
    assert left == [], f"objects of the deleted cluster's plane are left: {left}"


def test_a_control_plane_survives_the_loss_of_its_node(sk8s: KindCluster, tenant: Tenant):
    ok(tenant.kubectl("create", "configmap", "keep", "--from-literal=data=kept"), "a ConfigMap to keep")
    node = ok(sk8s.kubectl("-n", PLANES, "get", "pods", "-l", f"sk8s.io/plane={tenant.plane}", "-o",
                           "jsonpath={.items[0].spec.nodeName}"), "the plane's node")
    assert node and node != control_plane_node(sk8s)
    subprocess.run(["podman", "stop", "-t", "5", node], check=True, capture_output=True, timeout=120)
    t0 = time.monotonic()
    try:
        deadline = t0 + 300
        while True:
            where = sk8s.kubectl("-n", PLANES, "get", "pods", "-l", f"sk8s.io/plane={tenant.plane}", "-o",
                                 "jsonpath={range .items[?(@.status.phase==\"Running\")]}{.spec.nodeName} "
                                 "{.status.containerStatuses[*].ready}{\"\\n\"}{end}").stdout
            if any(line.split()[0] != node and "false" not in line for line in where.splitlines() if line.strip()):
                break
            assert time.monotonic() < deadline, f"the plane did not come back on another node: {where}"
            time.sleep(2)
        moved = time.monotonic() - t0
        tenant.connect(timeout=120)
        assert ok(tenant.kubectl("get", "configmap", "keep", "-o", "jsonpath={.data.data}"), "kept data") == "kept"
        print(f"\nplane {tenant.plane} back on another node {moved:.0f} s after {node} stopped")
        wait_ready(sk8s, "kind-e2e", timeout=120)
    finally:
        subprocess.run(["podman", "start", node], capture_output=True, timeout=120)
        hack_kind("up", timeout=600)  # the restarted node's pod routes, and every node Ready
