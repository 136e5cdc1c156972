"""Issue 9, class 3: probes never leave the pod. A tenant chooses a probe's host, headers
and path; none of them may reach the host's loopback services (the meta etcd and
apiservers), another tenant's pods, or add a request of their own. Each variant is refused
at admission naming the field, or runs inside the pod's own network namespace, where it is
harmless; the meta etcd has no key of ours afterwards."""
from __future__ import annotations

import base64
import json
import socket
import ssl
import time
import urllib.error
import urllib.request
import uuid

import pytest

from .conftest import IMAGE, sandboxpod
from .tenant import Tenant, delete_cluster, make_cluster

pytestmark = pytest.mark.e2e

# What a smuggled request would write into the meta etcd; looked for afterwards.
KEY = f"/sk8s-e2e-probe-smuggled-{uuid.uuid4().hex[:8]}"
FORBIDDEN = "Forbidden: probes and lifecycle handlers connect only to the pod itself"


@pytest.fixture(scope="module")
def tenant(meta):
    t = make_cluster(meta, "probesec", quotas={"maxPods": 20})
    yield t
    delete_cluster(meta, "probesec")


@pytest.fixture(scope="module")
def victim(meta) -> tuple[Tenant, dict]:
    """Another tenant's running pod: what a probe must not scan or reach."""
    t = make_cluster(meta, "probevictim", quotas={"maxPods": 5})
    t.kubectl("apply", "-f", "-", input=json.dumps(pod("victim", [{
        "name": "web", "command": ["sh", "-c", "mkdir -p /srv && echo victim > /srv/index.html && "
                                               "exec httpd -f -vv -p 8080 -h /srv"]}])))
    p = t.wait_pod("victim", lambda p: p["status"].get("phase") == "Running" and p["status"].get("podIP"),
                   timeout=90)
    yield t, p
    delete_cluster(meta, "probevictim")


def pod(name: str, containers: list[dict], **spec) -> dict:
    for c in containers + spec.get("initContainers", []):
        c.setdefault("image", IMAGE)
        c.setdefault("imagePullPolicy", "IfNotPresent")
        c.setdefault("command", ["sleep", "3600"])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"terminationGracePeriodSeconds": 1, "containers": containers, **spec}}


def ports(meta) -> dict:
    return json.loads((meta.home / "ports.json").read_text())


def etcd_count(meta, key: str, range_end: str | None = None) -> int:
    """Keys of the meta etcd in [key, range_end) (just `key` without an end), read with
    etcd's own JSON gateway: with the health-check client certificate when etcd has TLS
    client auth, over plain HTTP when it has none yet."""
    body = {"key": base64.b64encode(key.encode()).decode(), "count_only": True}
    if range_end:
        body["range_end"] = base64.b64encode(range_end.encode()).decode()
    port = ports(meta)["etcd_client"]
    pki = meta.home / "pki" / "etcd"
    attempts: list[tuple[str, ssl.SSLContext | None]] = []
    if (pki / "healthcheck-client.key").exists():
        ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        ctx.load_cert_chain(str(pki / "healthcheck-client.crt"), str(pki / "healthcheck-client.key"))
        attempts.append(("https", ctx))
    attempts.append(("http", None))
    errors = []
    for scheme, ctx in attempts:
        req = urllib.request.Request(f"{scheme}://127.0.0.1:{port}/v3/kv/range", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
                return int(json.load(resp).get("count", 0))
        except (OSError, ValueError) as exc:  # URLError, ssl errors, a TLS port spoken to in plain HTTP
            errors.append(f"{scheme}: {exc}")
    raise AssertionError(f"cannot read the meta etcd: {errors}")


@pytest.fixture(scope="module")
def etcd_untouched(meta):
    """The meta etcd is readable by this test (keys under the meta apiserver's prefix) and
    has no key of ours, before and after the module's tests."""
    assert etcd_count(meta, "/sk8s/meta/", "/sk8s/meta0") > 0  # the check sees real keys
    assert etcd_count(meta, KEY) == 0
    yield
    assert etcd_count(meta, KEY) == 0, f"{KEY} was written into the meta etcd"


def refused(t: Tenant, obj: dict) -> str:
    """The error of a create that must fail; nothing stored."""
    proc = t.kubectl("create", "-f", "-", input=json.dumps(obj), check=False)
    assert proc.returncode != 0, f"{obj['kind']} {obj['metadata']['name']} was accepted: {proc.stdout}"
    kind = obj["kind"].lower()
    assert t.kubectl("get", kind, obj["metadata"]["name"], check=False).returncode != 0
    return proc.stderr


def probe_at(kind: str, action: str, host: str, port: int = 8080) -> dict:
    body = {"port": port, "host": host}
    if action == "httpGet":
        body["path"] = "/"
    return {kind: {action: body, "periodSeconds": 1}}


# --- hosts: refused at admission, naming the field ------------------------------------

HOSTS = [
    # (name, probe kind, action, host); VICTIM/NODE are filled in at run time
    ("host-loopback-other", "livenessProbe", "httpGet", "127.0.0.2"),
    ("host-any", "readinessProbe", "tcpSocket", "0.0.0.0"),
    ("host-mapped-v4", "livenessProbe", "httpGet", "::ffff:127.0.0.1"),
    ("host-decimal", "startupProbe", "httpGet", "2130706433"),
    ("host-short-form", "readinessProbe", "tcpSocket", "127.1"),
    ("hostname-localhost", "startupProbe", "httpGet", "localhost.localdomain"),
    ("hostname-service", "livenessProbe", "tcpSocket", "kubernetes.default.svc"),
    ("hostname-metadata", "readinessProbe", "httpGet", "metadata.google.internal"),
    ("the-node", "livenessProbe", "httpGet", "NODE"),
    ("other-tenant-http", "readinessProbe", "httpGet", "VICTIM"),
    ("other-tenant-scan", "livenessProbe", "tcpSocket", "VICTIM"),
]


@pytest.mark.parametrize("case,kind,action,host", HOSTS, ids=[h[0] for h in HOSTS])
def test_a_probe_host_that_is_not_the_pod_is_refused(tenant, victim, etcd_untouched, case, kind, action, host):
    vpod = victim[1]
    host = host.replace("VICTIM", vpod["status"]["podIP"]).replace("NODE", vpod["status"].get("hostIP") or "10.0.0.1")
    port = ports(tenant.meta)["etcd_client"] if action == "httpGet" else 8080
    err = refused(tenant, pod(case, [{"name": "app", **probe_at(kind, action, host, port)}]))
    assert f"spec.containers[0].{kind}.{action}.host: {FORBIDDEN}" in err, err


def test_every_place_a_handler_can_be_is_checked(tenant, etcd_untouched):
    victim_like = "10.200.0.9"
    sidecar = pod("in-sidecar", [{"name": "app"}], initContainers=[
        {"name": "side", "restartPolicy": "Always", **probe_at("startupProbe", "tcpSocket", victim_like)}])
    err = refused(tenant, sidecar)
    assert f"spec.initContainers[0].startupProbe.tcpSocket.host: {FORBIDDEN}" in err, err

    second = pod("in-second", [{"name": "a"}, {"name": "b", **probe_at("readinessProbe", "httpGet", victim_like)}])
    assert f"spec.containers[1].readinessProbe.httpGet.host: {FORBIDDEN}" in refused(tenant, second)

    hook = pod("in-hook", [{"name": "app", "lifecycle": {"preStop": {"httpGet": {"port": 80, "host": victim_like}}}}])
    assert f"spec.containers[0].lifecycle.preStop.httpGet.host: {FORBIDDEN}" in refused(tenant, hook)

    template = pod("x", [{"name": "app", **probe_at("livenessProbe", "tcpSocket", victim_like)}])
    template["metadata"]["labels"] = {"app": "probe-deploy"}
    deploy = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "probe-deploy"},
              "spec": {"selector": {"matchLabels": {"app": "probe-deploy"}},
                       "template": {"metadata": template["metadata"], "spec": template["spec"]}}}
    err = refused(tenant, deploy)
    assert f"spec.template.spec.containers[0].livenessProbe.tcpSocket.host: {FORBIDDEN}" in err, err


# --- control characters: no request can be smuggled ----------------------------------------

def _smuggle(meta) -> str:
    put = json.dumps({"key": base64.b64encode(KEY.encode()).decode(), "value": base64.b64encode(b"x").decode()})
    return (f"1\r\n\r\nPOST /v3/kv/put HTTP/1.1\r\nHost: 127.0.0.1:{ports(meta)['etcd_client']}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(put)}\r\n\r\n{put}")


CONTROL = [
    ("crlf-request", lambda m: {"httpHeaders": [{"name": "X-A", "value": _smuggle(m)}]},
     "httpGet.httpHeaders[0].value: Invalid value"),
    ("lf-header", lambda m: {"httpHeaders": [{"name": "X-Ok", "value": "1"}, {"name": "X-B", "value": "1\nX-C: 2"}]},
     "httpGet.httpHeaders[1].value: Invalid value"),
    ("nul", lambda m: {"httpHeaders": [{"name": "X-A", "value": "a\u0000b"}]},
     "httpGet.httpHeaders[0].value: Invalid value"),
    ("cr-only", lambda m: {"httpHeaders": [{"name": "X-A", "value": "a\rb"}]},
     "httpGet.httpHeaders[0].value: Invalid value"),
    ("crlf-path", lambda m: {"path": "/healthz HTTP/1.1\r\n\r\nPOST /v3/kv/put"}, "httpGet.path: Invalid value"),
    ("crlf-name", lambda m: {"httpHeaders": [{"name": "X-A: 1\r\nX-B", "value": "2"}]},
     "httpGet.httpHeaders: Invalid value"),  # the apiserver's own header-name check
]


@pytest.mark.parametrize("case,extra,message", CONTROL, ids=[c[0] for c in CONTROL])
def test_control_characters_in_a_probe_request_are_refused(tenant, etcd_untouched, case, extra, message):
    probe = {"httpGet": {"port": 8080, "path": "/", **extra(tenant.meta)}, "periodSeconds": 1}
    err = refused(tenant, pod(case, [{"name": "app", "readinessProbe": probe}]))
    assert f"spec.containers[0].readinessProbe.{message}" in err, err


def test_the_sandboxpod_schema_refuses_the_same(meta, namespace, etcd_untouched):
    """Second line: a SandboxPod written straight into the meta-cluster (by a virtual node's
    credentials) cannot carry them either."""
    cases = [
        ({"tcpSocket": {"port": 2379, "host": "10.200.0.9"}}, "spec.containers[0].livenessProbe.tcpSocket.host"),
        ({"httpGet": {"port": 80, "host": "etcd.example"}}, "spec.containers[0].livenessProbe.httpGet.host"),
        ({"httpGet": {"port": 80, "httpHeaders": [{"name": "X-A", "value": _smuggle(meta)}]}},
         "spec.containers[0].livenessProbe.httpGet.httpHeaders[0].value"),
        ({"httpGet": {"port": 80, "path": "/\r\nX: 1"}}, "spec.containers[0].livenessProbe.httpGet.path"),
    ]
    for probe, field in cases:
        obj = sandboxpod("probe-schema", [{"name": "main", "command": ["sleep", "60"], "livenessProbe": probe}])
        proc = meta.apply(obj, namespace, check=False)
        assert proc.returncode != 0 and field in proc.stderr, (probe, proc.stderr)
        assert meta.get("sandboxpod", "probe-schema", namespace) is None


# --- loopback: the pod's own, never the host's ---------------------------------------------

def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_loopback_probes_reach_the_pod_not_the_host(tenant, etcd_untouched):
    """127.0.0.1 and localhost are accepted: inside the pod's network namespace they are the
    pod. A server on the pod's loopback passes; the host's etcd and apiserver on the same
    host loopback ports are not reached (connection refused, never Ready)."""
    meta_ports = ports(tenant.meta)
    etcd, apiserver = meta_ports["etcd_client"], meta_ports["apiserver"]
    assert _listening(etcd) and _listening(apiserver)  # on the host, these ports answer
    tenant.kubectl("create", "-f", "-", input=json.dumps(pod("own-loopback", [{
        "name": "web",
        "command": ["sh", "-c", "mkdir -p /srv && echo ok > /srv/index.html && exec httpd -f -p 127.0.0.1:8080 -h /srv"],
        "readinessProbe": {"httpGet": {"path": "/index.html", "port": 8080, "host": "127.0.0.1"}, "periodSeconds": 1},
        "livenessProbe": {"tcpSocket": {"port": 8080, "host": "localhost"}, "periodSeconds": 1},
    }])))
    tenant.kubectl("create", "-f", "-", input=json.dumps(pod("host-loopback", [
        {"name": "etcd", "readinessProbe": {"tcpSocket": {"port": etcd, "host": "127.0.0.1"}, "periodSeconds": 1}},
        {"name": "api", "readinessProbe": {"httpGet": {"path": "/version", "port": apiserver, "host": "localhost",
                                                       "scheme": "HTTPS"}, "periodSeconds": 1}},
    ])))
    p = tenant.wait_pod("own-loopback", lambda p: any(c["type"] == "Ready" and c["status"] == "True"
                                                      for c in p["status"].get("conditions") or []), timeout=90)
    assert p["status"]["containerStatuses"][0]["restartCount"] == 0
    wanted = {f"Readiness probe failed: dial tcp 127.0.0.1:{etcd}: connect: connection refused",
              f'Readiness probe failed: Get "https://127.0.0.1:{apiserver}/version": '
              f"dial tcp 127.0.0.1:{apiserver}: connect: connection refused"}
    deadline, seen = time.monotonic() + 60, set()
    while time.monotonic() < deadline and not wanted <= seen:
        out = tenant.kubectl("get", "events", "--field-selector=involvedObject.name=host-loopback",
                             "-o", "json").stdout
        seen = {e["message"] for e in json.loads(out)["items"] if e["reason"] == "Unhealthy"}
        time.sleep(1)
    assert wanted <= seen, seen
    p = tenant.pod("host-loopback")
    assert all(not c["ready"] for c in p["status"]["containerStatuses"]), p["status"]
    for name in ("own-loopback", "host-loopback"):
        tenant.kubectl("delete", "pod", name, "--wait=false", check=False)
