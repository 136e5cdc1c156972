"""A tenant's own admission webhook, served by one of its pods, works; a webhook pointed at
another tenant's pod or at this host's loopback services is never reached: the tenant
apiserver's egress proxy refuses it (403) and the request fails as its failurePolicy says."""
from __future__ import annotations

import base64
import json
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
import yaml

from operators.embedded.pki import issue, make_ca

from .conftest import until
from .tenant import Tenant, make_cluster

WEBHOOK_IMAGE = "localhost/sk8s-e2e-webhook:latest"
BUILD = Path(__file__).resolve().parent / "webhook" / "build.sh"
DENY = {"sk8s-e2e-deny": "yes"}


def webhook_objects(crt: bytes, key: bytes, service: bool, front_proxy_ca: str) -> str:
    """The webhook's serving certificate (and the front-proxy CA it trusts as an aggregated
    API server), its pod and its Service (port 443 -> 8443)."""
    data = {"tls.crt": crt, "tls.key": key, "requestheader-ca.crt": front_proxy_ca.encode()}
    docs = [
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "webhook-tls"}, "type": "kubernetes.io/tls",
         "data": {k: base64.b64encode(v).decode() for k, v in data.items()}},
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "webhook", "labels": {"app": "webhook"}},
         "spec": {"terminationGracePeriodSeconds": 1,
                  "containers": [{"name": "webhook", "image": WEBHOOK_IMAGE, "imagePullPolicy": "IfNotPresent",
                                  "ports": [{"containerPort": 8443}],
                                  "volumeMounts": [{"name": "tls", "mountPath": "/tls", "readOnly": True}]}],
                  "volumes": [{"name": "tls", "secret": {"secretName": "webhook-tls"}}]}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "webhook"},
         "spec": {"selector": {"app": "webhook"}, "ports": [{"port": 443, "targetPort": 8443}]}},
    ]
    return yaml.safe_dump_all(docs if service else docs[:2])


def validating_webhook(name: str, client_config: dict, ca: bytes, *, selector: dict,
                       failure_policy: str = "Fail") -> str:
    return yaml.safe_dump({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": [{"name": f"{name}.e2e.sk8s.io", "admissionReviewVersions": ["v1"], "sideEffects": "None",
                      "failurePolicy": failure_policy, "timeoutSeconds": 5,
                      "clientConfig": {**client_config, "caBundle": base64.b64encode(ca).decode()},
                      "objectSelector": {"matchLabels": selector},
                      "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"],
                                 "resources": ["configmaps"]}]}]})


def configmap(name: str, labels: dict) -> str:
    return yaml.safe_dump({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": labels},
                           "data": {"k": "v"}})


def _running(pod: dict) -> bool:
    statuses = pod.get("status", {}).get("containerStatuses") or []
    return bool(statuses) and all("running" in (s.get("state") or {}) for s in statuses)


def front_proxy_ca(t: Tenant) -> str:
    """Whom aggregated API servers are to trust, where the apiserver publishes it."""
    cm = json.loads(t.kubectl("get", "configmap", "extension-apiserver-authentication", "-n", "kube-system",
                              "-o", "json").stdout)
    return cm["data"]["requestheader-client-ca-file"]


def serve_webhook(t: Tenant, ca, service: bool = True) -> dict:
    pair = issue(ca, "webhook.default.svc", server=True, dns=["webhook.default.svc"])
    t.kubectl("apply", "-f", "-", input=webhook_objects(pair.cert_pem, pair.key_pem, service, front_proxy_ca(t)))
    return t.wait_pod("webhook", lambda p: _running(p) and p["status"].get("podIP"), timeout=90)


def webhook_log(t: Tenant) -> str:
    return t.kubectl("logs", "webhook").stdout


@pytest.fixture(scope="module")
def clusters(meta):
    subprocess.run(["bash", str(BUILD), WEBHOOK_IMAGE], env=meta.env, check=True, capture_output=True, timeout=300)
    a, b = make_cluster(meta, "hooks-a"), make_cluster(meta, "hooks-b")
    ca = make_ca("sk8s-e2e-webhook-ca")
    # The target in the other tenant is reached by its pod address only (no Service).
    pods = {a.name: serve_webhook(a, ca), b.name: serve_webhook(b, ca, service=False)}
    yield a, b, ca, pods
    for name in ("hooks-a", "hooks-b"):
        meta.kubectl("delete", "serverlesscluster", name, "--wait=false", check=False)


def test_a_webhook_served_by_a_tenant_pod_denies_with_its_message(clusters):
    a, _, ca, pods = clusters
    a.kubectl("apply", "-f", "-", input=validating_webhook(
        "deny-labelled", {"service": {"namespace": "default", "name": "webhook", "path": "/validate", "port": 443}},
        ca.cert_pem, selector=DENY))

    def refused():
        # The webhook configuration reaches the apiserver's informer a moment after it is created.
        proc = a.kubectl("apply", "-f", "-", input=configmap("denied", DENY), check=False)
        if proc.returncode == 0:
            a.kubectl("delete", "configmap", "denied", "--wait=false")
            return None
        return proc.stderr
    stderr = until(refused, 30, "the webhook to deny a labelled ConfigMap")
    assert "denied by the sk8s e2e webhook in pod webhook: denied is labelled sk8s-e2e-deny=yes" in stderr, stderr
    assert 'admission webhook "deny-labelled.e2e.sk8s.io" denied the request' in stderr, stderr
    # Reached at the pod's own address (endpoint routing), through the egress proxy.
    assert "review " in webhook_log(a) and "allowed=false" in webhook_log(a)
    assert a.kubectl("apply", "-f", "-", input=configmap("allowed", {"sk8s-e2e-deny": "no"})).returncode == 0
    a.kubectl("delete", "validatingwebhookconfiguration", "deny-labelled")


def test_a_webhook_url_at_another_tenants_pod_is_refused_and_never_reached(clusters):
    a, b, ca, pods = clusters
    target = pods["hooks-b"]["status"]["podIP"]
    before = webhook_log(b).count("client hello from")
    selector = {"sk8s-e2e-ssrf": "other-tenant"}
    a.kubectl("apply", "-f", "-", input=validating_webhook(
        "other-tenant", {"url": f"https://{target}:8443/validate"}, ca.cert_pem, selector=selector))

    def refused():
        proc = a.kubectl("apply", "-f", "-", input=configmap("ssrf-other", selector), check=False)
        if proc.returncode == 0:
            a.kubectl("delete", "configmap", "ssrf-other", "--wait=false")
            return None
        return proc.stderr
    stderr = until(refused, 30, "the webhook call to fail")
    assert 'failed calling webhook "other-tenant.e2e.sk8s.io"' in stderr, stderr
    assert "code 403" in stderr and f"{target} is outside this cluster's VPC" in stderr, stderr
    time.sleep(1)
    assert webhook_log(b).count("client hello from") == before, webhook_log(b)
    a.kubectl("delete", "validatingwebhookconfiguration", "other-tenant")


@pytest.fixture
def listener():
    """A TCP listener on this host's loopback that counts who connects."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    seen: list = []

    def accept():
        while True:
            try:
                conn, peer = srv.accept()
            except OSError:
                return
            seen.append(peer)
            conn.close()
    threading.Thread(target=accept, daemon=True).start()
    yield srv.getsockname()[1], seen
    srv.close()


def meta_apiserver_port(meta) -> int:
    server = yaml.safe_load(Path(meta.kubeconfig).read_text())["clusters"][0]["cluster"]["server"]
    return int(server.rsplit(":", 1)[1])


def test_webhook_urls_at_this_hosts_loopback_are_refused(clusters, meta, listener):
    a, _, ca, _ = clusters
    port, seen = listener
    meta_port = meta_apiserver_port(meta)
    hooks = {"meta-apiserver": (f"https://127.0.0.1:{meta_port}/", "Fail"),
             "loopback-listener": (f"https://localhost:{port}/", "Ignore")}
    for name, (url, policy) in hooks.items():
        a.kubectl("apply", "-f", "-", input=validating_webhook(
            name, {"url": url}, ca.cert_pem, selector={"sk8s-e2e-ssrf": name}, failure_policy=policy))

    def refused():
        proc = a.kubectl("apply", "-f", "-", input=configmap("ssrf-meta", {"sk8s-e2e-ssrf": "meta-apiserver"}),
                         check=False)
        if proc.returncode == 0:
            a.kubectl("delete", "configmap", "ssrf-meta", "--wait=false")
            return None
        return proc.stderr
    stderr = until(refused, 30, "the webhook call to the meta apiserver to fail")
    assert "code 403" in stderr and "127.0.0.1 is this host (loopback" in stderr, stderr
    # failurePolicy Ignore: the ConfigMap is created, and the listener saw nobody.
    time.sleep(2)  # the configuration's informer
    out = a.kubectl("apply", "-f", "-", input=configmap("ssrf-ignored", {"sk8s-e2e-ssrf": "loopback-listener"}))
    assert "created" in out.stdout
    assert seen == []
    for name in hooks:
        a.kubectl("delete", "validatingwebhookconfiguration", name)


def gadget_crd(ca: bytes) -> str:
    """Gadgets in two versions that differ by a field's spelling, converted by the webhook pod."""
    def version(name: str, field: str, storage: bool) -> dict:
        return {"name": name, "served": True, "storage": storage, "schema": {"openAPIV3Schema": {
            "type": "object", "properties": {"spec": {"type": "object", "properties": {field: {"type": "string"}}}}}}}
    return yaml.safe_dump({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "gadgets.e2e.sk8s.io"},
        "spec": {"group": "e2e.sk8s.io", "scope": "Namespaced",
                 "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget", "listKind": "GadgetList"},
                 "versions": [version("v1", "colour", True), version("v2", "color", False)],
                 "conversion": {"strategy": "Webhook", "webhook": {
                     "conversionReviewVersions": ["v1"],
                     "clientConfig": {"service": {"namespace": "default", "name": "webhook", "path": "/convert",
                                                  "port": 443},
                                      "caBundle": base64.b64encode(ca).decode()}}}}})


def gadget(name: str, version: str, spec: dict) -> str:
    return yaml.safe_dump({"apiVersion": f"e2e.sk8s.io/{version}", "kind": "Gadget", "metadata": {"name": name},
                           "spec": spec})


def test_a_crd_conversion_webhook_served_by_a_tenant_pod_converts_both_ways(clusters):
    a, _, ca, _ = clusters
    a.kubectl("apply", "-f", "-", input=gadget_crd(ca.cert_pem))
    a.kubectl("wait", "--for=condition=Established", "crd/gadgets.e2e.sk8s.io", "--timeout=60s", timeout=70)
    try:
        a.kubectl("apply", "-f", "-", input=gadget("old", "v1", {"colour": "blue"}))

        def read(name: str, version: str):
            proc = a.kubectl("get", f"gadgets.{version}.e2e.sk8s.io", name, "-o", "json", check=False)
            return json.loads(proc.stdout) if proc.returncode == 0 else None
        as_v2 = until(lambda: read("old", "v2"), 30, "a v1 gadget read as v2")
        assert as_v2["apiVersion"] == "e2e.sk8s.io/v2" and as_v2["spec"] == {"color": "blue"}, as_v2
        assert as_v2["metadata"]["annotations"]["e2e.sk8s.io/converted-by"] == "webhook"
        # Written as v2, stored as v1 (the storage version): converted on the way in too.
        a.kubectl("apply", "-f", "-", input=gadget("new", "v2", {"color": "red"}))
        assert read("new", "v1")["spec"] == {"colour": "red"}
        assert "convert " in webhook_log(a)
    finally:
        a.kubectl("delete", "crd", "gadgets.e2e.sk8s.io", "--wait=false", check=False)


def apiservice(group: str, service: str, ca: bytes) -> str:
    return yaml.safe_dump({
        "apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService", "metadata": {"name": f"v1alpha1.{group}"},
        "spec": {"group": group, "version": "v1alpha1", "groupPriorityMinimum": 1000, "versionPriority": 15,
                 "service": {"namespace": "default", "name": service, "port": 443},
                 "caBundle": base64.b64encode(ca).decode()}})


def test_an_aggregated_api_served_by_a_tenant_pod_is_told_the_caller_by_the_front_proxy(clusters):
    a, _, ca, _ = clusters
    group = "aggregated.e2e.sk8s.io"
    a.kubectl("apply", "-f", "-", input=apiservice(group, "webhook", ca.cert_pem))
    try:
        a.kubectl("wait", "--for=condition=Available", f"apiservice/v1alpha1.{group}", "--timeout=60s", timeout=70)
        me = json.loads(a.kubectl("auth", "whoami", "-o", "json").stdout)["status"]["userInfo"]
        got = json.loads(a.kubectl("get", "--raw", f"/apis/{group}/v1alpha1/whoami").stdout)
        # The pod believed the aggregator's headers because its certificate verified against
        # the front-proxy CA the apiserver published, and learned who asked.
        assert got["proxiedBy"] == "front-proxy-client", got
        assert got["user"] == me["username"] and "system:authenticated" in got["groups"], (got, me)
        assert "whoami" in a.kubectl("api-resources", f"--api-group={group}").stdout
    finally:
        a.kubectl("delete", "apiservice", f"v1alpha1.{group}", "--wait=false", check=False)


def test_an_aggregated_api_at_another_tenants_pod_is_refused_and_never_reached(clusters):
    """A Service without a selector and Endpoints written by hand can name any address; the
    aggregator dials it through the egress proxy, which refuses what is outside the VPC."""
    a, b, ca, pods = clusters
    target = pods["hooks-b"]["status"]["podIP"]
    before = webhook_log(b).count("client hello from")
    group = "other.e2e.sk8s.io"
    a.kubectl("apply", "-f", "-", input=yaml.safe_dump_all([
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "other-tenant-api"},
         "spec": {"ports": [{"port": 443, "targetPort": 8443}]}},
        {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "other-tenant-api"},
         "subsets": [{"addresses": [{"ip": target}], "ports": [{"port": 8443}]}]}]))
    a.kubectl("apply", "-f", "-", input=apiservice(group, "other-tenant-api", ca.cert_pem))
    try:
        def unavailable():
            svc = json.loads(a.kubectl("get", "apiservice", f"v1alpha1.{group}", "-o", "json").stdout)
            cond = next((c for c in svc.get("status", {}).get("conditions") or [] if c["type"] == "Available"), {})
            return cond if cond.get("status") == "False" and target in cond.get("message", "") else None
        cond = until(unavailable, 60, "the APIService to say its endpoint is refused")
        assert "403" in cond["message"] or "Forbidden" in cond["message"], cond
        proc = a.kubectl("get", "--raw", f"/apis/{group}/v1alpha1", check=False)
        assert proc.returncode != 0, proc.stdout
        time.sleep(1)
        assert webhook_log(b).count("client hello from") == before, webhook_log(b)
    finally:
        a.kubectl("delete", "apiservice", f"v1alpha1.{group}", "--wait=false", check=False)
        a.kubectl("delete", "service,endpoints", "other-tenant-api", "--wait=false", check=False)


def test_the_node_is_schedulable_and_logs_pass_the_egress_proxy(clusters):
    a, *_ = clusters
    node = json.loads(a.kubectl("get", "node", "virtual-node", "-o", "json").stdout)
    assert not [t for t in node["spec"].get("taints") or [] if t["key"].startswith("node.kubernetes.io/")]
    assert "serving on :8443" in webhook_log(a)  # kubelet traffic through the proxy, allowed


def grpc_pod(name: str, **probes) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": {
        "containers": [{"name": "server", "image": WEBHOOK_IMAGE, "imagePullPolicy": "IfNotPresent",
                        "command": ["/webhook", "grpc-health"], **probes}]}})


def test_grpc_probes_call_the_health_service_as_the_kubelet_does(clusters):
    """gRPC probes (the upstream 'should be restarted with a GRPC liveness probe' test and
    its opposite): grpc.health.v1.Health/Check from inside the pod's network, with the
    kubelet's outcomes and messages."""
    a, *_ = clusters
    fast = {"periodSeconds": 1, "failureThreshold": 1, "timeoutSeconds": 2}
    a.kubectl("apply", "-f", "-", input=grpc_pod(
        "grpc-healthy", livenessProbe={"grpc": {"port": 5000}, **fast},
        readinessProbe={"grpc": {"port": 5000, "service": "sick"}, **fast}))
    a.kubectl("apply", "-f", "-", input=grpc_pod(
        "grpc-wrong-port", livenessProbe={"grpc": {"port": 2333}, "initialDelaySeconds": 2, **fast}))
    try:
        def pod(name):
            return json.loads(a.kubectl("get", "pod", name, "-o", "json").stdout)

        def events(name):
            items = json.loads(a.kubectl("get", "events", "--field-selector", f"involvedObject.name={name}",
                                         "-o", "json").stdout)["items"]
            return [e["message"] for e in items if e["reason"] in ("Unhealthy", "Killing")]

        until(lambda: any("Readiness probe failed: service unhealthy (responded with \"NOT_SERVING\")" in m
                          for m in events("grpc-healthy")), 120, "the readiness probe to fail on NOT_SERVING")
        until(lambda: any("Liveness probe failed: error: failed to connect service at" in m and ":2333" in m
                          for m in events("grpc-wrong-port")), 120, "the liveness probe to fail on a wrong port")
        until(lambda: (pod("grpc-wrong-port")["status"].get("containerStatuses") or [{}])[0].get("restartCount"),
              120, "the container with the failing liveness probe to be restarted")
        healthy = pod("grpc-healthy")["status"]
        assert healthy["phase"] == "Running" and healthy["containerStatuses"][0]["restartCount"] == 0, healthy
        assert not healthy["containerStatuses"][0]["ready"]  # its readiness asks for a sick service
        log = a.kubectl("logs", "grpc-healthy").stdout
        assert 'health check of "" from' in log and "(kube-probe/1.37)" in log, log
    finally:
        a.kubectl("delete", "pod", "grpc-healthy", "grpc-wrong-port", "--wait=false", check=False)
