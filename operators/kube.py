"""The meta-cluster calls the operators make besides kopf's own (status from watchers,
namespaces, secrets, RBAC, GC), as coroutines on one shared KubeClient per event loop.

kopf runs every handler on its own loop, so an operator process holds one client and
one connection pool; the CLI, which is synchronous, runs its calls with `run()` (one
loop per command, its client closed at the end). Nothing here blocks a loop: there are
no threads, the client is aiohttp (operators/kubeclient/client.py).

The functions keep the `kubernetes` package's semantics they replaced: a 404 on
delete or status patch is "already gone", a 409 on create is "already there".
"""
from __future__ import annotations

import asyncio
import weakref
from typing import Awaitable, TypeVar

from . import GROUP, VERSION
from .kubeclient.client import ApiError, KubeClient

__all__ = ["ApiError", "client", "run"]
T = TypeVar("T")
_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, KubeClient]" = weakref.WeakKeyDictionary()


def client() -> KubeClient:
    """The meta-cluster client of the running loop (made on first use from the default
    kubeconfig, or the service account in-cluster)."""
    loop = asyncio.get_running_loop()
    found = _clients.get(loop)
    if found is None:
        found = _clients[loop] = KubeClient.from_default("meta", "sk8s-operator")
    return found


async def close() -> None:
    found = _clients.pop(asyncio.get_running_loop(), None)
    if found is not None:
        await found.close()


def run(main: Awaitable[T]) -> T:
    """Run a coroutine from synchronous code (the CLI), closing its client afterwards."""
    async def _run() -> T:
        try:
            return await main
        finally:
            await close()
    return asyncio.run(_run())


def _custom(plural: str, namespace: str | None = None, name: str | None = None) -> str:
    scope = f"/namespaces/{namespace}" if namespace else ""
    return f"/apis/{GROUP}/{VERSION}{scope}/{plural}" + (f"/{name}" if name else "")


def _core(resource: str, namespace: str | None = None, name: str | None = None) -> str:
    scope = f"/namespaces/{namespace}" if namespace else ""
    return f"/api/v1{scope}/{resource}" + (f"/{name}" if name else "")


def _rbac(resource: str, namespace: str, name: str | None = None) -> str:
    return f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/{resource}" + (f"/{name}" if name else "")


async def _ignore(status: int, call: Awaitable) -> None:
    try:
        await call
    except ApiError as exc:
        if exc.status != status:
            raise


async def wait_until_served(plural: str, timeout: float = 120.0) -> None:
    """Until the apiserver's discovery lists `plural` of sk8s.io.

    kopf looks the operator's resources up once, after the startup handlers, and looks
    again only when a CRD changes. An operator restarted while the meta apiserver is
    restarting too (CRDs are served a moment after it answers) would find none and
    never watch them. So every startup handler waits here first; and until a list of them
    is answered, since the apiserver refuses lists ("429 storage is (re)initializing") for a
    moment after discovery lists them, and kopf retries a failed startup only after a minute."""
    deadline = asyncio.get_running_loop().time() + timeout
    last: object = None
    while True:
        try:
            found = await client().api_resources(f"{GROUP}/{VERSION}")
            if any(r.get("name") == plural for r in found):
                await client().get(_custom(plural), limit="1")
                return
            last = f"{plural} not in the discovery of {GROUP}/{VERSION}"
        except Exception as exc:  # down, starting, or the group not served yet
            last = exc
        if asyncio.get_running_loop().time() > deadline:
            raise RuntimeError(f"{GROUP}/{VERSION} {plural} not served after {timeout:.0f}s: {last}")
        await asyncio.sleep(0.5)


async def get_object(plural: str, namespace: str, name: str) -> dict | None:
    return await client().get_or_none(_custom(plural, namespace, name))


async def patch_status(plural: str, namespace: str, name: str, status: dict) -> None:
    # 404: deleted meanwhile, nothing to report on.
    await _ignore(404, client().patch_status(_custom(plural, namespace, name), status))


async def list_objects(plural: str) -> list[dict]:
    return (await client().get(_custom(plural))).get("items") or []


async def list_namespaced(plural: str, namespace: str) -> list[dict]:
    return (await client().get(_custom(plural, namespace))).get("items") or []


async def read_namespace(name: str) -> dict | None:
    return await client().get_or_none(_core("namespaces", name=name))


async def ensure_namespace(name: str, labels: dict[str, str]) -> None:
    await _ignore(409, client().create(_core("namespaces"), {"metadata": {"name": name, "labels": labels}}))


async def namespace_phase(name: str) -> str | None:
    """Active, Terminating, or None once it is gone."""
    ns = await read_namespace(name)
    return None if ns is None else (ns.get("status") or {}).get("phase")


async def delete_namespace(name: str) -> None:
    await _ignore(404, client().delete(_core("namespaces", name=name)))


async def read_secret(namespace: str, name: str) -> dict | None:
    return await client().get_or_none(_core("secrets", namespace, name))


async def apply_secret(namespace: str, secret: dict) -> None:
    """Create, or replace an existing Secret of that name."""
    try:
        await client().create(_core("secrets", namespace), secret)
    except ApiError as exc:
        if exc.status != 409:
            raise
        await client().request("PUT", _core("secrets", namespace, secret["metadata"]["name"]), body=secret)


async def delete_secret(namespace: str, name: str) -> None:
    await _ignore(404, client().delete(_core("secrets", namespace, name)))


async def create_event(namespace: str, event: dict) -> dict:
    return await client().create(_core("events", namespace), event)


async def patch_event(namespace: str, name: str, patch: dict) -> dict:
    return await client().patch(_core("events", namespace, name), patch)


async def apply_role(namespace: str, name: str, rules: list[dict]) -> None:
    try:
        await client().create(_rbac("roles", namespace), {"metadata": {"name": name, "namespace": namespace},
                                                          "rules": rules})
    except ApiError as exc:
        if exc.status != 409:
            raise
        # An existing Role takes today's rules: a cluster made by an older sk8s gains new rights.
        await client().patch(_rbac("roles", namespace, name), {"rules": rules})


async def scoped_token(namespace: str, name: str, rules: list[dict], seconds: int) -> str:
    """A ServiceAccount limited to `rules` in one namespace, and a token for it."""
    meta = {"name": name, "namespace": namespace}
    await _ignore(409, client().create(_core("serviceaccounts", namespace), {"metadata": meta}))
    await apply_role(namespace, name, rules)
    await _ignore(409, client().create(_rbac("rolebindings", namespace), {
        "metadata": meta,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}]}))
    req = await client().create(_core("serviceaccounts", namespace, name) + "/token", {
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
        "spec": {"expirationSeconds": seconds}})
    return req["status"]["token"]


def server_and_ca() -> tuple[str, bytes]:
    """The meta apiserver's address and CA (PEM), for kubeconfigs written for others."""
    creds = client().creds
    if creds.ca is None:
        raise RuntimeError(f"the meta-cluster's credentials name no CA for {creds.server}")
    return creds.server, creds.ca
