"""The virtual node's kubelet API served over real mutual TLS, for unit tests."""
from __future__ import annotations

import asyncio
import contextlib
import ssl
from pathlib import Path

import aiohttp

from operators.config import free_port
from operators.embedded import pki
from operators.virtualnode.kubelet.server import KubeletServer, server_ssl_context


@contextlib.asynccontextmanager
async def serve_kubelet(tmp_path: Path, *, lookup, streams):
    """Yields `client(user)`: an aiohttp session authenticated as "apis" (the apiserver's
    kubelet client identity) or "someone" (any other certificate of the same CA)."""
    ca = pki.make_ca("test-ca")
    pki.write(ca, tmp_path, "ca")
    pki.write(pki.issue(ca, "virtual-node", server=True, ips=["127.0.0.1"]), tmp_path, "serving")
    pki.write(pki.issue(ca, "kube-apiserver-kubelet-client", orgs=["system:masters"], client=True), tmp_path, "apis")
    pki.write(pki.issue(ca, "someone", client=True), tmp_path, "someone")
    server = KubeletServer(lookup=lookup, streams=lambda: streams, meta_namespace="tenant-a")
    port = free_port()
    await server.start("127.0.0.1", port, server_ssl_context(str(tmp_path / "serving.crt"),
                                                             str(tmp_path / "serving.key"), str(tmp_path / "ca.crt")))

    def tls(user: str = "apis") -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(tmp_path / "ca.crt"))
        ctx.load_cert_chain(str(tmp_path / f"{user}.crt"), str(tmp_path / f"{user}.key"))
        return ctx

    def client(user: str = "apis") -> aiohttp.ClientSession:
        return aiohttp.ClientSession(base_url=f"https://127.0.0.1:{port}", connector=aiohttp.TCPConnector(ssl=tls(user)))

    async def raw(user: str = "apis"):
        """A plain TLS connection, for protocols aiohttp's client does not speak (SPDY)."""
        return await asyncio.open_connection("127.0.0.1", port, ssl=tls(user))

    client.raw = raw  # type: ignore[attr-defined]
    try:
        yield client
    finally:
        await server.stop()
