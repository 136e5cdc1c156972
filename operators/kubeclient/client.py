"""A small asynchronous Kubernetes API client on aiohttp.

The virtual node runs once per tenant, so it avoids the `kubernetes` package (tens of
MiB of generated models, blocking I/O in threads) and speaks the REST API directly:
JSON in, JSON out, watches as streamed JSON lines.
"""
from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import ssl
import tempfile
from dataclasses import dataclass
from typing import AsyncIterator
from urllib.parse import urlsplit

import aiohttp
import yaml

log = logging.getLogger(__name__)

REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=30, sock_connect=10)
MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"


class KubeconfigError(Exception):
    pass


class ApiError(Exception):
    """An API call answered with a non-2xx status (or did not answer: status 0)."""

    def __init__(self, status: int, reason: str, message: str):
        super().__init__(f"{status} {reason}: {message}" if status else message)
        self.status = status
        self.reason = reason
        self.message = message


@dataclass
class Credentials:
    server: str
    ssl: ssl.SSLContext | bool
    headers: dict[str, str]


def _material(entry: dict, key: str, base: str) -> bytes | None:
    """kubeconfig fields come as `<key>-data` (base64) or `<key>` (a path relative to the file)."""
    if entry.get(f"{key}-data"):
        return base64.b64decode(entry[f"{key}-data"])
    if entry.get(key):
        path = os.path.join(base, os.path.expanduser(entry[key]))
        with open(path, "rb") as f:
            return f.read()
    return None


def load_kubeconfig(path: str) -> Credentials:
    try:
        with open(path) as f:
            cfg = yaml.safe_load(f) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise KubeconfigError(f"{path}: {exc}") from exc
    base = os.path.dirname(os.path.abspath(path))

    def named(section: str, name: str | None) -> dict:
        for item in cfg.get(section) or []:
            if item.get("name") == name:
                return item.get(section[:-1]) or {}
        raise KubeconfigError(f"{path}: no {section[:-1]} named {name!r}")

    ctx_name = cfg.get("current-context") or ((cfg.get("contexts") or [{}])[0].get("name"))
    ctx = named("contexts", ctx_name)
    cluster = named("clusters", ctx.get("cluster"))
    user = named("users", ctx.get("user")) if ctx.get("user") else {}
    server = (cluster.get("server") or "").rstrip("/")
    if not server:
        raise KubeconfigError(f"{path}: cluster {ctx.get('cluster')!r} has no server")
    headers: dict[str, str] = {}
    sslctx: ssl.SSLContext | bool = False
    if urlsplit(server).scheme == "https":
        try:
            ca = _material(cluster, "certificate-authority", base)
            sslctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cadata=ca.decode() if ca else None)
            if cluster.get("insecure-skip-tls-verify"):
                sslctx.check_hostname = False
                sslctx.verify_mode = ssl.CERT_NONE
            cert, key = _material(user, "client-certificate", base), _material(user, "client-key", base)
            if cert and key:
                _load_chain(sslctx, cert, key)
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise KubeconfigError(f"{path}: {exc}") from exc
    token = user.get("token")
    if not token and user.get("tokenFile"):
        with open(os.path.join(base, user["tokenFile"])) as f:
            token = f.read().strip()
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return Credentials(server, sslctx, headers)


def _load_chain(ctx: ssl.SSLContext, cert: bytes, key: bytes) -> None:
    # ssl only loads key material from files: write it to a private file for the call only.
    with tempfile.TemporaryDirectory(prefix="sk8s-vn-") as d:
        os.chmod(d, 0o700)
        cf, kf = os.path.join(d, "c.pem"), os.path.join(d, "k.pem")
        for p, data in ((cf, cert), (kf, key)):
            fd = os.open(p, os.O_WRONLY | os.O_CREAT, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        ctx.load_cert_chain(cf, kf)


class KubeClient:
    def __init__(self, creds: Credentials, name: str):
        self.creds = creds
        self.name = name
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_kubeconfig(cls, path: str, name: str) -> "KubeClient":
        return cls(load_kubeconfig(path), name)

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                headers={"Accept": "application/json", "User-Agent": "sk8s-virtual-node", **self.creds.headers},
                connector=aiohttp.TCPConnector(ssl=self.creds.ssl, limit=64))
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(self, method: str, path: str, *, params: dict | None = None, body=None,
                      content_type: str = "application/json",
                      timeout: aiohttp.ClientTimeout = REQUEST_TIMEOUT) -> dict:
        data = None if body is None else json.dumps(body, separators=(",", ":"))
        headers = {"Content-Type": content_type} if data is not None else None
        try:
            async with self.session.request(method, self.creds.server + path, params=params, data=data,
                                            headers=headers, timeout=timeout) as resp:
                raw = await resp.read()
                if resp.status >= 400:
                    raise _api_error(resp.status, raw)
                return json.loads(raw) if raw else {}
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            raise ApiError(0, "Unreachable", f"{self.name} API {method} {path}: {_describe(exc)}") from exc

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


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__  # a timeout's str() is empty


def _api_error(status: int, raw: bytes) -> ApiError:
    try:
        st = json.loads(raw)
        return ApiError(status, st.get("reason") or "", st.get("message") or raw.decode(errors="replace"))
    except ValueError:
        return ApiError(status, "", raw.decode(errors="replace")[:500])
