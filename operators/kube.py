"""A small Kubernetes client for what kopf does not do for us (status from watchers, GC)."""
from __future__ import annotations

import asyncio
import os
from functools import lru_cache

from kubernetes import client, config
from kubernetes.client.rest import ApiException

from . import GROUP, VERSION


@lru_cache(maxsize=1)
def api_client() -> client.ApiClient:
    if os.environ.get("KUBERNETES_SERVICE_HOST") and not os.environ.get("KUBECONFIG"):
        config.load_incluster_config()
    else:
        config.load_kube_config()
    return client.ApiClient()


def custom() -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api_client())


async def wait_until_served(plural: str, timeout: float = 120.0) -> None:
    """Until the apiserver's discovery lists `plural` of sk8s.io.

    kopf looks the operator's resources up once, after the startup handlers, and looks
    again only when a CRD changes. An operator restarted while the meta apiserver is
    restarting too (CRDs are served a moment after it answers) would find none and
    never watch them. So every startup handler waits here first."""
    deadline = asyncio.get_running_loop().time() + timeout
    last: object = None
    while True:
        try:
            found = await asyncio.to_thread(custom().get_api_resources, GROUP, VERSION)
            if any(r.name == plural for r in found.resources or []):
                return
            last = f"{plural} not in the discovery of {GROUP}/{VERSION}"
        except Exception as exc:  # down, starting, or the group not served yet
            last = exc
        if asyncio.get_running_loop().time() > deadline:
            raise RuntimeError(f"{GROUP}/{VERSION} {plural} not served after {timeout:.0f}s: {last}")
        await asyncio.sleep(0.5)


async def get_object(plural: str, namespace: str, name: str) -> dict | None:
    return await asyncio.to_thread(get_object_sync, plural, namespace, name)


async def patch_status(plural: str, namespace: str, name: str, status: dict) -> None:
    def _patch():
        try:
            custom().patch_namespaced_custom_object_status(GROUP, VERSION, namespace, plural, name,
                                                           {"status": status})
        except ApiException as exc:
            if exc.status != 404:  # deleted meanwhile: nothing to report on
                raise
    await asyncio.to_thread(_patch)


async def list_objects(plural: str) -> list[dict]:
    def _list():
        return custom().list_cluster_custom_object(GROUP, VERSION, plural).get("items", [])
    return await asyncio.to_thread(_list)


def get_object_sync(plural: str, namespace: str, name: str) -> dict | None:
    try:
        return custom().get_namespaced_custom_object(GROUP, VERSION, namespace, plural, name)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def core() -> client.CoreV1Api:
    return client.CoreV1Api(api_client())


async def ensure_namespace(name: str, labels: dict[str, str]) -> None:
    def _create():
        try:
            core().create_namespace({"metadata": {"name": name, "labels": labels}})
        except ApiException as exc:
            if exc.status != 409:
                raise
    await asyncio.to_thread(_create)


async def namespace_phase(name: str) -> str | None:
    """Active, Terminating, or None once it is gone."""
    def _get():
        try:
            return core().read_namespace(name).status.phase
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
    return await asyncio.to_thread(_get)


async def delete_namespace(name: str) -> None:
    def _delete():
        try:
            core().delete_namespace(name)
        except ApiException as exc:
            if exc.status != 404:
                raise
    await asyncio.to_thread(_delete)


async def apply_secret(namespace: str, secret: dict) -> None:
    def _apply():
        name = secret["metadata"]["name"]
        try:
            core().create_namespaced_secret(namespace, secret)
        except ApiException as exc:
            if exc.status != 409:
                raise
            core().replace_namespaced_secret(name, namespace, secret)
    await asyncio.to_thread(_apply)


async def delete_secret(namespace: str, name: str) -> None:
    def _delete():
        try:
            core().delete_namespaced_secret(name, namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise
    await asyncio.to_thread(_delete)


async def list_namespaced(plural: str, namespace: str) -> list[dict]:
    def _list():
        return custom().list_namespaced_custom_object(GROUP, VERSION, namespace, plural).get("items", [])
    return await asyncio.to_thread(_list)


def rbac() -> client.RbacAuthorizationV1Api:
    return client.RbacAuthorizationV1Api(api_client())


def _apply_role(namespace: str, name: str, rules: list[dict]) -> None:
    try:
        rbac().create_namespaced_role(namespace, {"metadata": {"name": name, "namespace": namespace},
                                                  "rules": rules})
    except ApiException as exc:
        if exc.status != 409:
            raise
        # An existing Role takes today's rules: a cluster made by an older sk8s gains new rights.
        rbac().patch_namespaced_role(name, namespace, {"rules": rules})


async def apply_role(namespace: str, name: str, rules: list[dict]) -> None:
    await asyncio.to_thread(_apply_role, namespace, name, rules)


async def scoped_token(namespace: str, name: str, rules: list[dict], seconds: int) -> str:
    """A ServiceAccount limited to `rules` in one namespace, and a token for it."""
    def _make() -> str:
        meta = {"name": name, "namespace": namespace}
        for create in (lambda: core().create_namespaced_service_account(namespace, {"metadata": meta}),
                       lambda: _apply_role(namespace, name, rules),
                       lambda: rbac().create_namespaced_role_binding(namespace, {
                           "metadata": meta,
                           "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
                           "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}]})):
            try:
                create()
            except ApiException as exc:
                if exc.status != 409:
                    raise
        req = core().create_namespaced_service_account_token(
            name, namespace, {"spec": {"expirationSeconds": seconds}})
        return req.status.token
    return await asyncio.to_thread(_make)


def server_and_ca() -> tuple[str, bytes]:
    cfg = api_client().configuration
    with open(cfg.ssl_ca_cert, "rb") as f:
        return cfg.host, f.read()
