"""Service-account tokens as the kubelet provides them: the TokenRequest of each projected
source, the files of a kube-api-access volume, refresh timing, the token manager's cache
and failures, and the virtual node's pod sync writing tokens into a pod's volume content."""
from __future__ import annotations

import asyncio
import base64
import json
import logging

import pytest

from operators.kubeclient.client import ApiError
from operators.virtualnode.controllers.tokens import TokenManager
from operators.virtualnode.mapping.satokens import (MAX_TTL, Token, cache_key, parse_answer, refresh_at,
                                                    token_mode, token_request, token_sources)
from operators.virtualnode.mapping.volumes import (VolumeError, sandbox_volumes, unsupported_volumes, volume_content,
                                                   volume_type)

from .fakekube import FakeKube, Tasks, until
from .test_podsync import META_NS, PODS, Node

# What the apiserver's ServiceAccount admission adds to every pod.
KUBE_API_ACCESS = {"name": "kube-api-access-abcde", "projected": {"defaultMode": 420, "sources": [
    {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
    {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
    {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1",
                                                                  "fieldPath": "metadata.namespace"}}]}}]}}
VAULT = {"name": "vault", "projected": {"sources": [
    {"serviceAccountToken": {"audience": "vault", "expirationSeconds": 600, "path": "vault/token"}}]}}
ROOT_CA = {"metadata": {"name": "kube-root-ca.crt"}, "data": {"ca.crt": "-----BEGIN CERTIFICATE-----\n"}}


def a_pod(volumes, sa=None, **spec):
    return {"metadata": {"name": "web", "namespace": "team", "uid": "u1"},
            "spec": {"containers": [{"name": "c", "image": "i"}], "volumes": volumes,
                     **({"serviceAccountName": sa} if sa else {}), **spec}}


def files(content, vol):
    return {p: (base64.b64decode(f["data"]).decode(), oct(f["mode"])) for p, f in content[vol].items()}


# --- pure parts ----------------------------------------------------------------------------
def test_each_source_is_one_token_request_bound_to_the_pod():
    p = a_pod([KUBE_API_ACCESS, VAULT, {"name": "d", "emptyDir": {}}], sa="builder")
    srcs = token_sources(p)
    assert [(s.volume, s.index) for s in srcs] == [("kube-api-access-abcde", 0), ("vault", 0)]
    path, body = token_request(p, srcs[0].source)
    assert path == "/api/v1/namespaces/team/serviceaccounts/builder/token"
    # No audience: the apiserver's own (issuer) audiences.
    assert body == {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {
        "expirationSeconds": 3607, "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": "web", "uid": "u1"}}}
    _, body = token_request(p, srcs[1].source)
    assert body["spec"]["audiences"] == ["vault"] and body["spec"]["expirationSeconds"] == 600
    # Without expirationSeconds, the API's default; without serviceAccountName, "default".
    path, body = token_request(a_pod([]), {"path": "t"})
    assert path.endswith("/serviceaccounts/default/token") and body["spec"]["expirationSeconds"] == 3600


def test_a_hostile_service_account_name_stays_one_path_segment():
    path, _ = token_request(a_pod([], sa="../../secrets/x?y"), {"path": "t"})
    assert path == "/api/v1/namespaces/team/serviceaccounts/..%2F..%2Fsecrets%2Fx%3Fy/token"


def test_the_cache_key_is_the_request_and_the_pod():
    p = a_pod([KUBE_API_ACCESS, VAULT])
    k1, k2 = (cache_key(p, s.source) for s in token_sources(p))
    assert k1 != k2 and k1 == cache_key(p, {"expirationSeconds": 3607, "path": "elsewhere"})
    other = a_pod([KUBE_API_ACCESS])
    other["metadata"]["uid"] = "u2"  # a pod of the same name, later: never the old pod's token
    assert cache_key(other, token_sources(other)[0].source) != k1


def test_refresh_when_older_than_the_fraction_of_its_life_or_a_day():
    t = Token("x", expires_at=10_000.0, ttl=1000)  # issued at 9000
    assert refresh_at(t, fraction=0.8) == 9800.0
    assert refresh_at(t, fraction=0.8, jitter=7) == 9793.0
    assert refresh_at(t, fraction=0.05) == 9050.0
    year = Token("x", expires_at=365 * 86400.0, ttl=365 * 86400)
    assert refresh_at(year, fraction=0.8) == MAX_TTL


def test_the_answer_gives_the_token_and_its_expiry():
    t = parse_answer({"spec": {"expirationSeconds": 3607},
                      "status": {"token": "abc", "expirationTimestamp": "2026-11-30T01:00:00Z"}}, 600)
    assert t == Token("abc", 1796000400.0, 3607)
    with pytest.raises(ValueError):
        parse_answer({"status": {}}, 600)


def test_token_file_mode_as_the_projected_plugin():
    assert token_mode(a_pod([]), {"defaultMode": 0o440}) == 0o440
    assert token_mode(a_pod([]), {}) == 0o644
    assert token_mode(a_pod([], securityContext={"fsGroup": 2000}), {"defaultMode": 0o644}) == 0o600


def test_kube_api_access_files_token_ca_and_namespace():
    p = a_pod([KUBE_API_ACCESS, VAULT])
    c = volume_content(p, secrets={}, configmaps={"kube-root-ca.crt": ROOT_CA}, node_name="n",
                       tokens={("kube-api-access-abcde", 0): "tok-1", ("vault", 0): "tok-2"})
    assert files(c, "kube-api-access-abcde") == {"token": ("tok-1", "0o644"),
                                                 "ca.crt": ("-----BEGIN CERTIFICATE-----\n", "0o644"),
                                                 "namespace": ("team", "0o644")}
    assert files(c, "vault") == {"vault/token": ("tok-2", "0o644")}
    with pytest.raises(VolumeError, match='volume "vault" : failed to fetch token'):
        volume_content(p, secrets={}, configmaps={"kube-root-ca.crt": ROOT_CA}, node_name="n",
                       tokens={("kube-api-access-abcde", 0): "tok-1"})


def test_token_projections_are_supported_other_projections_not():
    p = a_pod([KUBE_API_ACCESS, VAULT, {"name": "cert", "projected": {"sources": [
        {"podCertificate": {"signerName": "example.com/s", "keyType": "ED25519",
                            "credentialBundlePath": "creds.pem"}}]}}])
    assert volume_type(KUBE_API_ACCESS) == "projected" and unsupported_volumes(p) == ["cert"]
    vols = sandbox_volumes(p)
    assert [v["name"] for v in vols] == ["kube-api-access-abcde", "vault"]
    assert not any("serviceAccountToken" in s for v in vols for s in v["projected"]["sources"])


# --- the token manager --------------------------------------------------------------------
class Clock:
    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


def _manager(tenant, clock):
    return TokenManager(tenant, fraction=0.8, clock=clock, jitter=lambda: 0.0)


async def test_a_refused_request_names_the_volume_and_the_cause(caplog):
    tenant = FakeKube("tenant")
    tokens = _manager(tenant, Clock(0))
    with pytest.raises(VolumeError) as err:
        await tokens.tokens(a_pod([KUBE_API_ACCESS], sa="missing"))
    assert str(err.value) == ('MountVolume.SetUp failed for volume "kube-api-access-abcde" : '
                              'failed to fetch token: serviceaccounts "missing" not found')


class Flaky:
    """A tenant whose TokenRequests succeed until `fail` is set."""

    def __init__(self):
        self.fail = False
        self.n = 0

    async def create(self, path, body):
        if self.fail:
            raise ApiError(503, "ServiceUnavailable", "apiserver is shutting down")
        self.n += 1
        return {"spec": body["spec"], "status": {"token": f"secret-token-{self.n}",
                                                 "expirationTimestamp": "2026-11-30T01:00:00Z"}}


async def test_tokens_are_cached_until_due_then_requested_again():
    exp = 1796000400.0  # what Flaky answers: 2026-11-30T01:00:00Z
    tenant = Flaky()
    tokens = _manager(tenant, clock := Clock(exp - 600))
    p = a_pod([VAULT])
    first, due = await tokens.tokens(p)
    assert first == {("vault", 0): "secret-token-1"} and due == 480  # 80% of 600 s
    clock.now += 479
    assert await tokens.tokens(p) == (first, 1.0) and tenant.n == 1
    clock.now += 2
    again, _ = await tokens.tokens(p)
    assert again == {("vault", 0): "secret-token-2"}
    tokens.forget("u1")
    await tokens.tokens(p)
    assert tenant.n == 3


async def test_a_failed_refresh_keeps_the_valid_token_and_never_logs_it(caplog):
    exp = 1796000400.0  # 2026-11-30T01:00:00Z
    tenant = Flaky()
    tokens = _manager(tenant, clock := Clock(exp - 600))
    p = a_pod([VAULT])
    (got, _) = await tokens.tokens(p)
    assert got == {("vault", 0): "secret-token-1"}
    tenant.fail, clock.now = True, exp - 60
    with caplog.at_level(logging.DEBUG):
        got, due = await tokens.tokens(p)
    assert got == {("vault", 0): "secret-token-1"} and due == 10.0  # tried again soon
    assert "apiserver is shutting down" in caplog.text and "secret-token" not in caplog.text
    clock.now = exp + 1
    with pytest.raises(VolumeError, match="token expired and refresh failed: apiserver is shutting down"):
        await tokens.tokens(p)


# --- the pod sync ---------------------------------------------------------------------------
def content_of(node: Node, name: str = "default.web") -> dict | None:
    secret = node.meta.stored(f"/api/v1/namespaces/{META_NS}/secrets/{name}")
    if secret is None:
        return None
    return {vol: {p: base64.b64decode(f["data"]).decode() for p, f in json.loads(base64.b64decode(blob)).items()}
            for vol, blob in secret["data"].items()}


def sa_pod(sa: str | None = None):
    spec = {"nodeName": "vn-c", "containers": [{"name": "app", "image": "nginx:1.27", "volumeMounts": [
        {"name": "kube-api-access-abcde", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
         "readOnly": True}]}], "volumes": [KUBE_API_ACCESS]}
    if sa:
        spec["serviceAccountName"] = sa
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "default"}, "spec": spec}


async def test_a_pod_gets_a_bound_token_with_ca_and_namespace():
    node = Node()
    node.tenant.put("/api/v1/namespaces/default/serviceaccounts", {"metadata": {"name": "default"}})
    node.tenant.put("/api/v1/namespaces/default/configmaps", ROOT_CA)
    node.tenant.put(PODS, sa_pod())
    async with Tasks() as tasks:
        await node.start(tasks)
        await until(lambda: node.sandbox() is not None and content_of(node) is not None)
        files = content_of(node)["kube-api-access-abcde"]
        assert files == {"token": "token-1", "ca.crt": ROOT_CA["data"]["ca.crt"], "namespace": "default"}
        path, body = node.tenant.token_requests[0]
        assert path == "/api/v1/namespaces/default/serviceaccounts/default/token"
        assert body["spec"]["boundObjectRef"] == {"apiVersion": "v1", "kind": "Pod", "name": "web",
                                                  "uid": node.tenant_pod()["metadata"]["uid"]}
        # The SandboxPod mounts the volume; the token is in its content only.
        (vol,) = node.sandbox()["spec"]["volumes"]
        assert vol["name"] == "kube-api-access-abcde" and "token-1" not in json.dumps(node.sandbox())


async def test_a_missing_service_account_keeps_the_pod_waiting_with_failed_mount():
    node = Node()
    node.tenant.put("/api/v1/namespaces/default/configmaps", ROOT_CA)
    node.tenant.put(PODS, sa_pod("builder"))
    async with Tasks() as tasks:
        await node.start(tasks)
        await until(lambda: node.events("FailedMount"))
        (ev,) = node.events("FailedMount")
        assert ev["message"] == ('MountVolume.SetUp failed for volume "kube-api-access-abcde" : '
                                 'failed to fetch token: serviceaccounts "builder" not found')
        assert node.sandbox() is None
        assert node.tenant_pod()["status"]["phase"] == "Pending"
        node.tenant.put("/api/v1/namespaces/default/serviceaccounts", {"metadata": {"name": "builder"}})
        await until(lambda: node.sandbox() is not None, timeout=15)
        assert content_of(node)["kube-api-access-abcde"]["token"].startswith("token-")


async def test_a_running_pods_token_is_rewritten_when_due_and_no_longer_once_the_pod_is_gone():
    node = Node()
    node.sync.volumes.tokens.fraction = 0.002  # 600 s * 0.002 = 1.2 s, less the jitter (none)
    node.sync.volumes.tokens.jitter = lambda: 0.0
    node.tenant.put("/api/v1/namespaces/default/serviceaccounts", {"metadata": {"name": "default"}})
    p = sa_pod()
    p["spec"]["volumes"] = [VAULT]
    p["spec"]["containers"][0]["volumeMounts"] = [{"name": "vault", "mountPath": "/vault"}]
    node.tenant.put(PODS, p)
    async with Tasks() as tasks:
        await node.start(tasks)
        await until(lambda: content_of(node) is not None)
        assert content_of(node)["vault"] == {"vault/token": "token-1"}
        await until(lambda: content_of(node)["vault"]["vault/token"] != "token-1", timeout=5)
        assert node.tenant.token_requests[-1][1]["spec"]["audiences"] == ["vault"]
        node.tenant.remove(f"{PODS}/web")
        await until(lambda: not node.sync.volumes.tokens._cache)
        n = len(node.tenant.token_requests)
        await asyncio.sleep(2.5)
        assert len(node.tenant.token_requests) == n


async def test_without_a_token_volume_no_token_is_requested():
    # automountServiceAccountToken: false: the apiserver adds no volume, and nothing else mounts one.
    node = Node()
    node.tenant.put("/api/v1/namespaces/default/serviceaccounts", {"metadata": {"name": "default"}})
    p = sa_pod()
    p["spec"].update(volumes=[], automountServiceAccountToken=False)
    p["spec"]["containers"][0].pop("volumeMounts")
    node.tenant.put(PODS, p)
    async with Tasks() as tasks:
        await node.start(tasks)
        await until(lambda: node.sandbox() is not None)
        assert node.tenant.token_requests == [] and content_of(node) is None
        assert "volumes" not in node.sandbox()["spec"]
