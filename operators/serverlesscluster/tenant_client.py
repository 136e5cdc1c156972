"""A minimal async client for a tenant apiserver: readiness, server-side apply, reads."""
from __future__ import annotations

import json
import ssl
from pathlib import Path

import aiohttp


class TenantClient:
    def __init__(self, endpoint: str, pki: Path, user: str = "admin"):
        self.endpoint = endpoint
        self.ssl = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        self.ssl.load_cert_chain(str(pki / f"{user}.crt"), str(pki / f"{user}.key"))
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> "TenantClient":
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10),
                                              connector=aiohttp.TCPConnector(ssl=self.ssl))
        return self

    async def __aexit__(self, *exc) -> None:
        if self._session:
            await self._session.close()

    async def ready(self) -> bool:
        assert self._session
        try:
            async with self._session.get(f"{self.endpoint}/readyz") as resp:
                return resp.status == 200
        except (aiohttp.ClientError, OSError, TimeoutError):
            return False

    async def get(self, path: str) -> dict | None:
        assert self._session
        async with self._session.get(f"{self.endpoint}{path}") as resp:
            if resp.status == 404:
                return None
            resp.raise_for_status()
            return await resp.json()

    async def apply(self, path: str, obj: dict, manager: str = "sk8s-serverlesscluster") -> dict:
        """Server-side apply of one object at its resource path."""
        assert self._session
        async with self._session.patch(
                f"{self.endpoint}{path}?fieldManager={manager}&force=true", data=json.dumps(obj),
                headers={"Content-Type": "application/apply-patch+yaml"}) as resp:
            body = await resp.text()
            if resp.status >= 400:
                raise RuntimeError(f"applying {path}: {resp.status} {body[:300]}")
            return json.loads(body)

    async def patch(self, path: str, obj: dict, content_type: str = "application/strategic-merge-patch+json") -> dict:
        assert self._session
        async with self._session.patch(f"{self.endpoint}{path}", data=json.dumps(obj),
                                       headers={"Content-Type": content_type}) as resp:
            body = await resp.text()
            if resp.status >= 400:
                raise RuntimeError(f"patching {path}: {resp.status} {body[:300]}")
            return json.loads(body)
