"""Service-account tokens end to end, as the kubelet provides them: the kube-api-access volume
every pod gets (token, ca.crt, namespace), tokens the tenant apiserver accepts and that name
the pod, projected tokens with their own audience, automountServiceAccountToken: false, a
token rotated in a running pod, and a refused TokenRequest as a FailedMount event."""
from __future__ import annotations

import base64
import json
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from .conftest import IMAGE, REPO
from .tenant import delete_cluster, make_cluster

pytestmark = pytest.mark.e2e
SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
PYTHON_IMAGE = "localhost/sk8s-python:latest"

# What an operator or controller does in any cluster: the official client, configured from
# the pod's own environment (KUBERNETES_SERVICE_HOST/PORT, the token and ca.crt).
IN_CLUSTER_CLIENT = """
from kubernetes import client, config
from kubernetes.client.rest import ApiException
config.load_incluster_config()
v1 = client.CoreV1Api()
print("OWN", sorted(p.metadata.name for p in v1.list_namespaced_pod("default").items))
for what, call in (("PODS-KUBE-SYSTEM", lambda: v1.list_namespaced_pod("kube-system")),
                   ("SECRETS", lambda: v1.list_namespaced_secret("default"))):
    try:
        call()
        print(what, "allowed")
    except ApiException as exc:
        print(what, exc.status)
"""


@pytest.fixture(scope="module")
def sat(meta):
    t = make_cluster(meta, "sat", quotas={"maxPods": 20, "cpu": "8", "memory": "8Gi"})
    yield t
    delete_cluster(meta, "sat")


@pytest.fixture(scope="module")
def python_image(meta) -> str:
    subprocess.run(["bash", str(REPO / "hack/build-python-image.sh"), PYTHON_IMAGE], env=meta.env, check=True,
                   capture_output=True)
    return PYTHON_IMAGE


@pytest.fixture(autouse=True)
def _clean_pods(request):
    yield
    if "sat" in request.fixturenames:
        request.getfixturevalue("sat").kubectl("delete", "pods", "--all", "--wait=false", check=False)


def pod(name: str, volumes: list[dict] | None = None, mounts: list[dict] | None = None, **spec) -> dict:
    c = {"name": "app", "image": IMAGE, "imagePullPolicy": "IfNotPresent", "command": ["sleep", "3600"]}
    if mounts:
        c["volumeMounts"] = mounts
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [c], "terminationGracePeriodSeconds": 1,
                     **({"volumes": volumes} if volumes else {}), **spec}}


def apply(t, obj: dict) -> None:
    t.kubectl("apply", "-f", "-", input=yaml.safe_dump(obj))


def running(p: dict) -> bool:
    return p["status"].get("phase") == "Running"


def sh(t, name: str, script: str, check: bool = True):
    return t.kubectl("exec", name, "--", "sh", "-c", script, check=check)


def review(t, token: str, audiences: list[str] | None = None) -> dict:
    """The tenant apiserver's verdict on a token (TokenReview)."""
    obj = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
           "spec": {"token": token, **({"audiences": audiences} if audiences else {})}}
    out = t.kubectl("create", "-o", "json", "-f", "-", input=json.dumps(obj))
    return json.loads(out.stdout)["status"]


def claims(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def assert_never_logged(t, token: str) -> None:
    """No log of the installation (operators, virtual nodes, apiservers) holds the token."""
    logs = [p for p in t.meta.home.rglob("*.log") if p.is_file()]
    assert logs and not [str(p) for p in logs if token in p.read_text(errors="replace")]


def test_a_pod_gets_a_bound_token_the_ca_and_its_namespace(sat):
    apply(sat, pod("reader"))
    p = sat.wait_pod("reader", running, timeout=120)  # the first pod of a new tenant
    assert any(v["name"].startswith("kube-api-access-") for v in p["spec"]["volumes"])
    token = sh(sat, "reader", f"cat {SA_DIR}/token").stdout
    assert sh(sat, "reader", f"cat {SA_DIR}/namespace").stdout == "default"
    ca = sh(sat, "reader", f"cat {SA_DIR}/ca.crt").stdout
    root_ca = json.loads(sat.kubectl("get", "configmap", "kube-root-ca.crt", "-o", "json").stdout)
    assert ca == root_ca["data"]["ca.crt"] and ca.startswith("-----BEGIN CERTIFICATE-----")
    assert sh(sat, "reader", f"stat -L -c %a {SA_DIR}/token").stdout.strip() == "644"

    st = review(sat, token)
    assert st["authenticated"] is True, st
    assert st["user"]["username"] == "system:serviceaccount:default:default"
    extra = st["user"]["extra"]
    assert extra["authentication.kubernetes.io/pod-name"] == ["reader"]
    assert extra["authentication.kubernetes.io/pod-uid"] == [p["metadata"]["uid"]]

    # The same token, used directly against the tenant's apiserver (from the host, with the
    # pod's ca.crt): it is the pod's service account.
    kubeconfig = yaml.safe_load(sat.kubeconfig.read_text())
    server = kubeconfig["clusters"][0]["cluster"]["server"]
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "ca.crt").write_text(ca)
        (Path(d) / "empty").write_text("")
        proc = sat.kubectl("auth", "whoami", "-o", "json", f"--kubeconfig={d}/empty", f"--server={server}",
                           f"--certificate-authority={d}/ca.crt", f"--token={token}")
    assert json.loads(proc.stdout)["status"]["userInfo"]["username"] == "system:serviceaccount:default:default"
    assert_never_logged(sat, token)


def test_a_projected_token_has_its_own_audience_and_expiry(sat):
    vault = {"name": "vault", "projected": {"defaultMode": 0o440, "sources": [
        {"serviceAccountToken": {"audience": "vault.example", "expirationSeconds": 600, "path": "dir/token"}},
        {"downwardAPI": {"items": [{"path": "dir/name", "fieldRef": {"fieldPath": "metadata.name"}}]}}]}}
    apply(sat, pod("vaulted", volumes=[vault], mounts=[{"name": "vault", "mountPath": "/vault"}]))
    p = sat.wait_pod("vaulted", running)
    token = sh(sat, "vaulted", "cat /vault/dir/token").stdout
    assert sh(sat, "vaulted", "cat /vault/dir/name").stdout == "vaulted"
    assert sh(sat, "vaulted", "stat -L -c %a /vault/dir/token").stdout.strip() == "440"
    c = claims(token)
    assert c["aud"] == ["vault.example"] and c["exp"] - c["iat"] == 600
    assert c["kubernetes.io"]["pod"] == {"name": "vaulted", "uid": p["metadata"]["uid"]}
    # Accepted for its audience only.
    assert review(sat, token, ["vault.example"])["authenticated"] is True
    assert review(sat, token).get("authenticated") is not True


def test_automount_false_gives_no_token(sat):
    apply(sat, pod("quiet", automountServiceAccountToken=False))
    sat.kubectl("create", "serviceaccount", "mute")
    sat.kubectl("patch", "serviceaccount", "mute", "-p", '{"automountServiceAccountToken": false}')
    apply(sat, pod("muted", serviceAccountName="mute"))
    for name in ("quiet", "muted"):
        p = sat.wait_pod(name, running)
        assert not any(v["name"].startswith("kube-api-access-") for v in p["spec"].get("volumes") or [])
        proc = sh(sat, name, f"ls {SA_DIR}", check=False)
        assert proc.returncode != 0 and "No such file" in proc.stderr + proc.stdout


def test_a_token_is_rotated_in_a_running_pod(sat):
    # SK8S_TOKEN_REFRESH_FRACTION=0.05 (conftest.py): a 600 s token is due again after 30 s.
    tok = {"name": "tok", "projected": {"sources": [{"serviceAccountToken": {"expirationSeconds": 600,
                                                                              "path": "token"}}]}}
    apply(sat, pod("rotating", volumes=[tok], mounts=[{"name": "tok", "mountPath": "/tok"}]))
    sat.wait_pod("rotating", running)
    first = sh(sat, "rotating", "cat /tok/token").stdout
    assert review(sat, first)["authenticated"] is True
    deadline = time.monotonic() + 90
    current = first
    while current == first and time.monotonic() < deadline:
        time.sleep(2)
        current = sh(sat, "rotating", "cat /tok/token").stdout
    assert current != first, "the token was not rotated within 90 s"
    st = review(sat, current)
    assert st["authenticated"] is True and st["user"]["extra"]["authentication.kubernetes.io/pod-name"] == \
        ["rotating"]
    assert claims(current)["iat"] > claims(first)["iat"]
    assert_never_logged(sat, first)
    assert_never_logged(sat, current)


def test_a_refused_token_request_is_a_failed_mount_and_the_pod_waits(sat):
    sat.kubectl("create", "serviceaccount", "fleeting")
    gated = pod("orphan", serviceAccountName="fleeting", schedulingGates=[{"name": "example.com/hold"}])
    apply(sat, gated)
    # The ServiceAccount goes before the pod reaches the node.
    sat.kubectl("delete", "serviceaccount", "fleeting")
    sat.kubectl("patch", "pod", "orphan", "--type=json", "-p", '[{"op": "remove", "path": "/spec/schedulingGates"}]')
    deadline = time.monotonic() + 60
    events = []
    while not events and time.monotonic() < deadline:
        out = json.loads(sat.kubectl("get", "events", "--field-selector=involvedObject.name=orphan",
                                     "-o", "json").stdout)
        events = [e for e in out["items"] if e["reason"] == "FailedMount"]
        time.sleep(0.5)
    assert events, "no FailedMount event"
    msg = events[0]["message"]
    assert 'for volume "kube-api-access-' in msg and 'failed to fetch token: serviceaccounts "fleeting" not found' \
        in msg, msg
    p = sat.pod("orphan")
    assert p["status"]["phase"] == "Pending"
    assert p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "ContainerCreating"
    sat.kubectl("create", "serviceaccount", "fleeting")
    sat.wait_pod("orphan", running, timeout=60)
    assert review(sat, sh(sat, "orphan", f"cat {SA_DIR}/token").stdout)["authenticated"] is True


def test_the_official_python_client_in_a_pod_works_with_the_rbac_it_was_given(sat, python_image):
    apply(sat, {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "lister"}})
    apply(sat, {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "pod-reader"},
                "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]})
    apply(sat, {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                "metadata": {"name": "lister-reads-pods"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader"},
                "subjects": [{"kind": "ServiceAccount", "name": "lister", "namespace": "default"}]})
    p = pod("py-client", serviceAccountName="lister", restartPolicy="Never")
    p["spec"]["containers"][0].update(image=python_image, command=["python3", "-c", IN_CLUSTER_CLIENT])
    apply(sat, p)
    done = sat.wait_pod("py-client", lambda p: p["status"].get("phase") in ("Succeeded", "Failed"), timeout=120)
    out = sat.kubectl("logs", "py-client").stdout
    assert done["status"]["phase"] == "Succeeded", out
    assert "OWN [" in out and "'py-client'" in out.split("OWN", 1)[1].splitlines()[0], out
    assert "PODS-KUBE-SYSTEM 403" in out and "SECRETS 403" in out, out
