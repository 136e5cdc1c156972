"""A tenant's keys in etcd: its user, its prefix, their removal.

Embedded, the meta etcd has no auth: the plane's own certificate reaches its keys through
etcd's JSON gateway, with no client library. With sk8s' datastore (config.etcd_auth) the
plane's certificate CN is an etcd user whose role covers only its prefix
(operators/datastore); the operator grants, revokes and deletes as root."""
from __future__ import annotations

import asyncio
import base64
import json
import ssl

from pathlib import Path

import aiohttp

from .. import config
from ..config import layout
from ..datastore import auth as datastore
from ..datastore.client import EtcdAuthClient
from ..datastore.pki import issue_root
from ..embedded import etcd_pki, pki
from . import controlplane as cp


def etcd_ca_dir() -> Path:
    """Where etcd's CA is: this home's (embedded), or a mounted Secret (SK8S_ETCD_PKI)."""
    return config.etcd_pki() or etcd_pki.etcd_pki_dir(layout().pki)


def ensure_etcd_client(t: cp.Tenant) -> None:
    """The plane's client certificate of the meta etcd (or datastore), signed by etcd's CA."""
    etcd_pki.ensure_client(etcd_ca_dir(), t.pki, t.etcd_cn)


def _ssl(t: cp.Tenant) -> ssl.SSLContext:
    ensure_etcd_client(t)  # a plane whose apiserver never started has none yet
    ctx = ssl.create_default_context(cafile=str(t.etcd.ca))
    ctx.load_cert_chain(str(t.etcd.cert), str(t.etcd.key))
    return ctx


async def _etcd(t: cp.Tenant, op: str, **extra) -> dict:
    """etcd's JSON gateway on the tenant's prefix: no client library needed. The meta etcd
    serves TLS to certificates of its own CA only: the plane's etcd client certificate."""
    prefix = (t.etcd_prefix + "/").encode()
    end = prefix[:-1] + bytes([prefix[-1] + 1])
    body = {"key": base64.b64encode(prefix).decode(), "range_end": base64.b64encode(end).decode(), **extra}
    ctx = await asyncio.to_thread(_ssl, t)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx),
                                     timeout=aiohttp.ClientTimeout(total=10)) as session:
        async with session.post(f"{t.etcd_url}/v3/kv/{op}", json=body) as resp:
            raw = await resp.read()
            if resp.status >= 400:
                why = raw[:300].decode(errors="replace")
                raise RuntimeError(f"etcd {op} on {t.etcd_prefix}/: {resp.status} {why}")
            return json.loads(raw or b"{}")


async def delete_prefix(t: cp.Tenant) -> None:
    if config.etcd_auth():
        async with root_client() as etcd:
            await datastore.delete_prefix(etcd, t.etcd_prefix + "/")
    else:
        await _etcd(t, "deleterange")


ROOT_STEM = "datastore-root"


def _root_certificate() -> Path:
    """The operator's root certificate of the datastore, issued once from its CA."""
    directory = layout().pki
    if not (directory / f"{ROOT_STEM}.key").exists():
        directory.mkdir(parents=True, exist_ok=True)
        pki.write(issue_root(pki.load(etcd_ca_dir(), "ca")), directory, ROOT_STEM)
    return directory


def root_client() -> EtcdAuthClient:
    d = _root_certificate()
    return EtcdAuthClient(config.etcd_url(), etcd_ca_dir() / "ca.crt", d / f"{ROOT_STEM}.crt", d / f"{ROOT_STEM}.key")


async def grant(t: cp.Tenant) -> None:
    """The plane's user and prefix role (auth on), before its apiserver first starts."""
    if config.etcd_auth():
        await asyncio.to_thread(_root_certificate)
        async with root_client() as etcd:
            await datastore.enable_auth(etcd)
            await datastore.grant_tenant(etcd, t.etcd_cn, t.etcd_prefix + "/")


async def revoke(t: cp.Tenant) -> None:
    if config.etcd_auth():
        await asyncio.to_thread(_root_certificate)
        async with root_client() as etcd:
            await datastore.revoke_tenant(etcd, t.etcd_cn)
