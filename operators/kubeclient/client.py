"""A small asynchronous Kubernetes API client on aiohttp: sk8s's one client stack.

It serves the meta-cluster (the operators through operators/kube.py, the CLI, the virtual
node) and the tenant apiservers (the ServerlessCluster operator, the virtual node). The
virtual node runs once per tenant, so the client avoids the `kubernetes` package (tens of
MiB of generated models, blocking I/O in threads) and speaks the REST API directly: JSON
in, JSON out, watches as streamed JSON lines. Credentials (kubeconfig, in-cluster service
account, a PKI directory) are resolved up front by credentials.py.

An aiohttp session belongs to the event loop that made it: a client is used on one loop.
"""
from __future__ import annotations

import asyncio
import json
import logging
import socket
import ssl
from pathlib import Path
from typing import AsyncIterator

import aiohttp

from .credentials import Credentials, KubeconfigError, default_credentials, from_pki, load_kubeconfig

log = logging.getLogger(__name__)

REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=30, sock_connect=10)
# client-go's rule: a 429 or 5xx that carries Retry-After was not acted on, and is sent
# again after that many seconds, up to 10 tries in all. A restarting apiserver answers
# "429 storage is (re)initializing" for a moment after it serves discovery: without this,
# an operator starting then failed its startup and kopf tried again only a minute later.
RETRY_AFTER_ATTEMPTS = 10
RETRY_AFTER_MAX = 10.0
MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
APPLY = "application/apply-patch+yaml"
__all__ = ["APPLY", "MERGE", "STRATEGIC", "ApiError", "Credentials", "KubeClient", "KubeconfigError",
           "load_kubeconfig"]


class ApiError(Exception):
    """An API call answered with a non-2xx status (or did not answer: status 0)."""

    def __init__(self, status: int, reason: str, message: str):
        super().__init__(f"{status} {reason}: {message}" if status else message)
        self.status = status
        self.reason = reason
        self.message = message


class KubeClient:
    """One apiserver's REST API. `name` says which in error messages ("meta", "tenant")."""

    def __init__(self, creds: Credentials, name: str, user_agent: str = "sk8s-virtual-node",
                 timeout: aiohttp.ClientTimeout = REQUEST_TIMEOUT, socket_mark: int | None = None):
        """`socket_mark`: SO_MARK of its connections, for firewall rules to tell them apart."""
        self.creds = creds
        self.name = name
        self.user_agent = user_agent
        self.timeout = timeout  # of one request (a watch has its own)
        self.socket_mark = socket_mark
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_kubeconfig(cls, path: str, name: str, user_agent: str = "sk8s-virtual-node") -> "KubeClient":
        return cls(load_kubeconfig(path), name, user_agent)

    @classmethod
    def from_default(cls, name: str = "meta", user_agent: str = "sk8s") -> "KubeClient":
        """In-cluster service account, else $KUBECONFIG or ~/.kube/config."""
        return cls(default_credentials(), name, user_agent)

    @classmethod
    def from_pki(cls, server: str, pki: Path, user: str = "admin", name: str = "tenant",
                 user_agent: str = "sk8s", timeout: aiohttp.ClientTimeout = REQUEST_TIMEOUT,
                 socket_mark: int | None = None) -> "KubeClient":
        """A client certificate of one PKI directory (a tenant plane's `pki/`)."""
        return cls(from_pki(server, pki, user), name, user_agent, timeout, socket_mark)

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                headers={"Accept": "application/json", "User-Agent": self.user_agent, **self.creds.headers},
                connector=aiohttp.TCPConnector(ssl=self.creds.ssl, limit=64, **self._socket_factory()))
        return self._session

    def _socket_factory(self) -> dict:
        if self.socket_mark is None:
            return {}
        mark = self.socket_mark

        def marked(addr_info) -> socket.socket:
            family, type_, proto = addr_info[:3]
            sock = socket.socket(family, type_, proto)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, mark)
            return sock
        return {"socket_factory": marked}

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> "KubeClient":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def ready(self, path: str = "/readyz", timeout: float = 10) -> bool:
        """Whether the server answers `path` with 200 (never raises)."""
        try:
            async with self.session.get(self.creds.server + path,
                                        timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
                await resp.read()
                return resp.status == 200
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
            return False

    async def request(self, method: str, path: str, *, params: dict | None = None, body=None,
                      content_type: str = "application/json",
                      timeout: aiohttp.ClientTimeout | None = None) -> dict:
        data = None if body is None else json.dumps(body, separators=(",", ":"))
        headers = {"Content-Type": content_type} if data is not None else None
        for attempt in range(1, RETRY_AFTER_ATTEMPTS + 1):
            try:
                async with self.session.request(method, self.creds.server + path, params=params, data=data,
                                                headers=headers, timeout=timeout or self.timeout) as resp:
                    raw = await resp.read()
                    wait = retry_after(resp.status, resp.headers.get("Retry-After"))
                    if wait is not None and attempt < RETRY_AFTER_ATTEMPTS:
                        await asyncio.sleep(wait)
                        continue
                    if resp.status >= 400:
                        raise _api_error(resp.status, raw)
                    return json.loads(raw) if raw else {}
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                raise ApiError(0, "Unreachable", f"{self.name} API {method} {path}: {_describe(exc)}") from exc
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def get(self, path: str, **params) -> dict:
        return await self.request("GET", path, params=params or None)

    async def get_or_none(self, path: str) -> dict | None:
        try:
            return await self.get(path)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    async def create(self, path: str, body: dict) -> dict:
        return await self.request("POST", path, body=body)

    async def patch(self, path: str, body: dict, content_type: str = MERGE) -> dict:
        return await self.request("PATCH", path, body=body, content_type=content_type)

    async def apply(self, path: str, obj: dict, manager: str, force: bool = True) -> dict:
        """Server-side apply of one object at its resource path."""
        params = {"fieldManager": manager, **({"force": "true"} if force else {})}
        return await self.request("PATCH", path, params=params, body=obj, content_type=APPLY)

    async def patch_status(self, path: str, status: dict, content_type: str = MERGE) -> dict:
        """Merge `status` into the status subresource of the object at `path`."""
        return await self.patch(f"{path}/status", {"status": status}, content_type)

    async def api_resources(self, group_version: str) -> list[dict]:
        """Discovery: the resources a group/version serves (`v1` is the core group)."""
        prefix = "/api" if "/" not in group_version else "/apis"
        return (await self.get(f"{prefix}/{group_version}")).get("resources") or []

    async def delete(self, path: str, *, grace: int | None = None, uid: str | None = None) -> dict:
        opts: dict = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if grace is not None:
            opts["gracePeriodSeconds"] = grace
        if uid:
            opts["preconditions"] = {"uid": uid}
        return await self.request("DELETE", path, body=opts)

    async def list_all(self, path: str, params: dict) -> tuple[list[dict], str]:
        """Every item, paginated so that a large list never lands in memory as one response."""
        items: list[dict] = []
        cont = None
        while True:
            page = await self.get(path, **params, limit="500", **({"continue": cont} if cont else {}))
            items.extend(page.get("items") or [])
            cont = (page.get("metadata") or {}).get("continue")
            if not cont:
                return items, page["metadata"]["resourceVersion"]

    async def watch(self, path: str, params: dict, resource_version: str,
                    timeout_seconds: int) -> AsyncIterator[dict]:
        """Watch events as dicts, until the server closes the stream."""
        query = {**params, "watch": "1", "allowWatchBookmarks": "true", "resourceVersion": resource_version,
                 "timeoutSeconds": str(timeout_seconds)}
        # The server ends the watch after timeoutSeconds; a read timeout a bit later catches a
        # connection that died silently (no FIN), which would otherwise stall us forever.
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=timeout_seconds + 30)
        try:
            async with self.session.get(self.creds.server + path, params=query, timeout=timeout) as resp:
                if resp.status >= 400:
                    raise _api_error(resp.status, await resp.read())
                buf = b""
                async for chunk in resp.content.iter_any():
                    buf += chunk
                    while (nl := buf.find(b"\n")) >= 0:
                        line, buf = buf[:nl], buf[nl + 1:]
                        if line.strip():
                            yield json.loads(line)
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            raise ApiError(0, "Unreachable", f"{self.name} API watch {path}: {_describe(exc)}") from exc


async def answers(url: str, sslctx: ssl.SSLContext | bool | None, timeout: float = 1.0) -> bool:
    """Whether a health endpoint answers 200 (never raises): for probes outside any client."""
    try:
        connector = aiohttp.TCPConnector(ssl=True if sslctx is None else sslctx)  # None: verify as usual
        async with aiohttp.ClientSession(connector=connector) as s:
            async with s.get(url, timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
                return resp.status == 200
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError):
        return False


def retry_after(status: int, header: str | None) -> float | None:
    """Seconds to wait before sending a request again, or None if it is not to be."""
    if header is None or (status != 429 and status < 500):
        return None
    try:
        return min(max(float(header), 0.0), RETRY_AFTER_MAX)
    except ValueError:
        return None  # an HTTP date: the server's clock, not ours; not worth following


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__  # a timeout's str() is empty


def _api_error(status: int, raw: bytes) -> ApiError:
    try:
        st = json.loads(raw)
        return ApiError(status, st.get("reason") or "", st.get("message") or raw.decode(errors="replace"))
    except ValueError:
        return ApiError(status, "", raw.decode(errors="replace")[:500])
