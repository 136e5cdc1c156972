"""operators/kube.py over a real HTTP server: the requests each call makes (method, path,
content type, body) and the `kubernetes` package's semantics it kept (404 on delete and
status patch is "gone", 409 on create is "there"); credentials as kube.py chooses them."""
from __future__ import annotations

import asyncio
import json
import ssl

import pytest
from aiohttp import web

from operators import kube
from operators.kubeclient import credentials
from operators.kubeclient.client import ApiError, Credentials, KubeClient


class Apiserver:
    """Answers `answers[(method, path)]` (status, body), 404 otherwise; records every request."""

    def __init__(self, answers: dict[tuple[str, str], tuple[int, dict]]):
        self.answers = answers
        self.seen: list[tuple[str, str, str, dict | None]] = []

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        body = json.loads(raw) if raw else None
        self.seen.append((request.method, request.path_qs, request.content_type if raw else "", body))
        status, answer = self.answers.get((request.method, request.path), (404, {"reason": "NotFound"}))
        return web.json_response(answer, status=status)


def serve(handle, calls):
    """Run `calls(client)` (a coroutine function) with kube.client() pointing at a server
    whose every request `handle` answers."""
    async def main():
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        client = KubeClient(Credentials(f"http://127.0.0.1:{port}", False, {}), "meta")
        try:
            kube._clients[asyncio.get_running_loop()] = client
            return await calls(client)
        finally:
            await kube.close()
            await runner.cleanup()
    return asyncio.run(main())


def run_against(answers: dict, calls):
    """Run `calls()` against a fake apiserver answering `answers`."""
    server = Apiserver(answers)
    return serve(server.handle, lambda _client: calls()), server.seen


NS = "/api/v1/namespaces"


def test_not_found_and_conflict_keep_their_meaning():
    async def calls():
        assert await kube.get_object("sandboxpods", "a", "gone") is None
        assert await kube.read_namespace("gone") is None
        assert await kube.namespace_phase("gone") is None
        await kube.delete_namespace("gone")                       # 404: already gone
        await kube.delete_secret("a", "gone")
        await kube.patch_status("sandboxpods", "a", "gone", {"phase": "Running"})  # deleted meanwhile
        await kube.ensure_namespace("there", {"sk8s.io/cluster": "c"})  # 409: already there
    _, seen = run_against({("POST", NS): (409, {"reason": "AlreadyExists"})}, calls)
    assert ("PATCH", "/apis/sk8s.io/v1alpha1/namespaces/a/sandboxpods/gone/status",
            "application/merge-patch+json", {"status": {"phase": "Running"}}) in seen
    assert ("POST", NS, "application/json", {"metadata": {"name": "there", "labels": {"sk8s.io/cluster": "c"}}}) in seen


def test_other_errors_are_raised():
    async def calls():
        with pytest.raises(ApiError, match="403"):
            await kube.delete_namespace("x")
        with pytest.raises(ApiError, match="500"):
            await kube.patch_status("sandboxpods", "a", "b", {})
        with pytest.raises(ApiError, match="403"):
            await kube.ensure_namespace("x", {})
    run_against({("DELETE", f"{NS}/x"): (403, {"reason": "Forbidden", "message": "no"}),
                 ("POST", NS): (403, {"reason": "Forbidden", "message": "no"}),
                 ("PATCH", "/apis/sk8s.io/v1alpha1/namespaces/a/sandboxpods/b/status"): (500, {})}, calls)


def test_an_existing_secret_is_replaced_and_an_existing_role_takes_todays_rules():
    secret = {"metadata": {"name": "s"}, "data": {"k": "dg=="}}
    rules = [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]
    roles = "/apis/rbac.authorization.k8s.io/v1/namespaces/t/roles"

    async def calls():
        await kube.apply_secret("t", secret)
        await kube.apply_role("t", "vn", rules)
    _, seen = run_against({("POST", f"{NS}/t/secrets"): (409, {}), ("PUT", f"{NS}/t/secrets/s"): (200, secret),
                           ("POST", roles): (409, {}), ("PATCH", f"{roles}/vn"): (200, {})}, calls)
    assert ("PUT", f"{NS}/t/secrets/s", "application/json", secret) in seen
    assert ("PATCH", f"{roles}/vn", "application/merge-patch+json", {"rules": rules}) in seen


def test_scoped_token_makes_account_role_binding_then_asks_for_a_token():
    async def calls():
        return await kube.scoped_token("t", "vn", [], 3600)
    token, seen = run_against({
        ("POST", f"{NS}/t/serviceaccounts"): (409, {}),  # there from an earlier attempt
        ("POST", "/apis/rbac.authorization.k8s.io/v1/namespaces/t/roles"): (201, {}),
        ("POST", "/apis/rbac.authorization.k8s.io/v1/namespaces/t/rolebindings"): (201, {}),
        ("POST", f"{NS}/t/serviceaccounts/vn/token"): (201, {"status": {"token": "tok"}})}, calls)
    assert token == "tok"
    assert [s[1] for s in seen] == [f"{NS}/t/serviceaccounts", "/apis/rbac.authorization.k8s.io/v1/namespaces/t/roles",
                                    "/apis/rbac.authorization.k8s.io/v1/namespaces/t/rolebindings",
                                    f"{NS}/t/serviceaccounts/vn/token"]
    assert seen[-1][3]["spec"] == {"expirationSeconds": 3600}


def test_server_side_apply_names_its_manager_and_forces():
    async def calls():
        async with KubeClient(kube.client().creds, "tenant") as tc:
            await tc.apply("/apis/rbac.authorization.k8s.io/v1/clusterroles/x", {"kind": "ClusterRole"}, "sk8s-x")
    _, seen = run_against({("PATCH", "/apis/rbac.authorization.k8s.io/v1/clusterroles/x"): (200, {})}, calls)
    assert seen == [("PATCH", "/apis/rbac.authorization.k8s.io/v1/clusterroles/x?fieldManager=sk8s-x&force=true",
                     "application/apply-patch+yaml", {"kind": "ClusterRole"})]


def test_a_loop_has_one_client_closed_with_it():
    async def same_twice():
        await kube.get_object("sandboxpods", "a", "b")  # opens the client's session
        return kube.client() is kube.client(), kube.client(), kube.client()._session
    (same, first, session), _ = run_against({}, same_twice)
    assert same and session is not None
    assert session.closed and first._session is None and not kube._clients  # closed with its loop


def _write_kubeconfig(path, server="https://10.0.0.1:6443"):
    path.write_text(json.dumps({
        "clusters": [{"name": "c", "cluster": {"server": server, "insecure-skip-tls-verify": True}}],
        "users": [{"name": "u", "user": {"token": "kt"}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}], "current-context": "x"}))


def test_default_credentials_in_cluster_only_without_kubeconfig(monkeypatch, tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    import datetime as dt
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "ca")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(key, hashes.SHA256()))
    sa = tmp_path / "sa"
    sa.mkdir()
    (sa / "token").write_text("satoken\n")
    (sa / "ca.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    monkeypatch.setattr(credentials.in_cluster, "__defaults__", (sa,))
    kc = tmp_path / "kc"
    _write_kubeconfig(kc)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    monkeypatch.delenv("KUBECONFIG", raising=False)
    inside = credentials.default_credentials()
    assert (inside.server, inside.headers) == ("https://10.96.0.1:443", {"Authorization": "Bearer satoken"})
    assert isinstance(inside.ssl, ssl.SSLContext) and inside.ca.startswith(b"-----BEGIN CERTIFICATE")
    monkeypatch.setenv("KUBECONFIG", f"{kc}:/elsewhere")  # the first entry counts
    outside = credentials.default_credentials()
    assert (outside.server, outside.headers) == ("https://10.0.0.1:6443", {"Authorization": "Bearer kt"})
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST")
    monkeypatch.delenv("KUBECONFIG")
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".kube").mkdir()
    _write_kubeconfig(tmp_path / ".kube" / "config", "https://10.0.0.2:6443")
    assert credentials.default_credentials().server == "https://10.0.0.2:6443"


def serve_script(script: list[tuple[int, dict]], calls):
    """A server answering `script`'s (status, headers) in order, its last entry ever after;
    `calls(client)` runs against it. Returns calls' result and the paths requested."""
    seen: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(request.path_qs)
        status, headers = script[min(len(seen), len(script)) - 1] if script else (200, {})
        body = {"kind": "Status", "code": status, "message": "storage is (re)initializing"} if status >= 400 \
            else {"resources": [{"name": "sandboxpods"}], "items": []}
        return web.json_response(body, status=status, headers=headers)

    return serve(handle, calls), seen


def test_a_429_with_retry_after_is_sent_again_as_client_go_does():
    from operators.kubeclient.client import retry_after
    assert retry_after(429, "1") == 1.0 and retry_after(503, "0") == 0.0 and retry_after(429, "3600") == 10.0
    assert retry_after(429, None) is None and retry_after(409, "1") is None
    assert retry_after(429, "Wed, 21 Oct 2015 07:28:00 GMT") is None

    async def calls(client):
        return await client.get("/apis/sk8s.io/v1alpha1/sandboxpods")
    got, seen = serve_script([(429, {"Retry-After": "0"}), (503, {"Retry-After": "0"}), (200, {})], calls)
    assert got["items"] == [] and len(seen) == 3
    # Without Retry-After it is an error at once; and the tries are bounded.
    with pytest.raises(ApiError, match="429"):
        serve_script([(429, {})], calls)
    with pytest.raises(ApiError, match="429"):
        _, seen = serve_script([(429, {"Retry-After": "0"})], calls)


def test_an_operator_waits_until_its_resources_are_listed_not_only_discovered():
    # discovery answers at once; the list is refused twice without Retry-After (the caches
    # of a restarting apiserver), then answered.
    script = [(200, {}), (429, {}), (200, {}), (429, {}), (200, {}), (200, {})]

    async def calls(client):
        await kube.wait_until_served("sandboxpods", timeout=10)
    _, seen = serve_script(script, calls)
    assert [p.split("?")[0] for p in seen] == ["/apis/sk8s.io/v1alpha1", "/apis/sk8s.io/v1alpha1/sandboxpods"] * 3
