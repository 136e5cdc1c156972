"""A real kube-apiserver (v1.37) on the datastore with auth on, as a tenant: its client
certificate's CN is a user whose role covers only its prefix (operators/datastore).

With TENANT_APISERVER_FLAGS it becomes ready, stores its objects under its prefix and
nowhere else, and asks etcd for nothing it is refused (its log stays free of "permission
denied": readwrite on its prefix is all it needs). Without them, its compactor reads
compact_rev_key, outside the prefix, and is refused every second: what the flag is for.
The same apiserver with another tenant's certificate on that prefix gets nothing: it
never becomes ready and writes no key.
Needs only the cached binaries (no meta-cluster, no podman)."""
from __future__ import annotations

import asyncio
import contextlib
import ssl
import subprocess
import time
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio

from operators.config import free_port
from operators.datastore import auth, names
from operators.embedded import pki
from operators.embedded.binaries import ensure_binaries
from operators.embedded.components import EtcdClient, apiserver_argv

from ..unit.etcdkit import running_etcd, stop

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

A, B = "/sk8s/tenants/aaaa/", "/sk8s/tenants/bbbb/"
DENIED = b"permission denied"


@pytest.fixture(scope="module")
def bindir() -> Path:
    return ensure_binaries(quiet=True)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def etcd(bindir, tmp_path_factory):
    with running_etcd(bindir / "etcd", tmp_path_factory.mktemp("datastore")) as store:
        async with store.client("root") as root:
            await auth.enable_auth(root)
            await auth.grant_tenant(root, "tenant-a", A)
            await auth.grant_tenant(root, "tenant-b", B)
        yield store


@contextlib.asynccontextmanager
async def apiserver(bindir: Path, directory: Path, etcd, user: str, prefix: str,
                    flags: tuple[str, ...] = auth.TENANT_APISERVER_FLAGS):
    """A tenant apiserver as podplane/controlplane start one, with `user`'s certificate."""
    plane = directory / "pki"
    pki.ensure_control_plane_pki(plane, name="tenant", sans_dns=["localhost"], sans_ip=["127.0.0.1"])
    port = free_port()
    argv = apiserver_argv(bindir, plane, etcd=EtcdClient(etcd.url, *etcd.credentials(user)),
                          etcd_prefix=prefix.rstrip("/"), port=port) + list(flags)
    log = directory / "kube-apiserver.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=out)
    ctx = ssl.create_default_context(cafile=str(plane / "ca.crt"))
    ctx.load_cert_chain(str(plane / "admin.crt"), str(plane / "admin.key"))
    session = aiohttp.ClientSession(f"https://127.0.0.1:{port}", connector=aiohttp.TCPConnector(ssl=ctx),
                                    timeout=aiohttp.ClientTimeout(total=5))
    try:
        yield session, log, proc
    finally:
        await session.close()
        stop(proc)


async def ready_within(session: aiohttp.ClientSession, proc: subprocess.Popen, seconds: float) -> float | None:
    """Seconds until /readyz answered 200, None if it did not within `seconds`."""
    start = time.monotonic()
    while time.monotonic() - start < seconds and proc.poll() is None:
        try:
            async with session.get("/readyz") as resp:
                if resp.status == 200:
                    return time.monotonic() - start
        except (aiohttp.ClientError, asyncio.TimeoutError):
            pass
        await asyncio.sleep(0.2)
    return None


async def keys(etcd) -> list[bytes]:
    async with etcd.client("root") as root:
        return [k for k, _ in await root.get_range(b"\0", b"\0")]


async def test_a_tenant_apiserver_under_a_prefix_only_role_works_inside_its_prefix(bindir, etcd, tmp_path):
    async with apiserver(bindir, tmp_path, etcd, "tenant-a", A) as (api, log, proc):
        took = await ready_within(api, proc, 90)
        assert took is not None, log.read_text()[-3000:]
        print(f"\ntenant apiserver ready in {took:.1f} s under a prefix-only role")
        body = {"metadata": {"name": "probe"}, "data": {"k": "stored-under-a"}}
        async with api.post("/api/v1/namespaces/default/configmaps", json=body) as resp:
            assert resp.status == 201, await resp.text()
        async with api.get("/api/v1/namespaces/default/configmaps/probe") as resp:
            assert (await resp.json())["data"] == {"k": "stored-under-a"}
        async with etcd.client("root") as root:
            (stored,) = await root.get_range(A.encode() + b"configmaps/default/probe")
            assert b"stored-under-a" in stored[1]
            assert await auth.count_keys(root, A) > 50  # the bootstrap objects: RBAC roles, namespaces, ...
        assert [k for k in await keys(etcd) if not k.startswith(A.encode())] == []
        # A compactor would read compact_rev_key every second; the health check reads <prefix>/health.
        await asyncio.sleep(4)
        async with api.get("/readyz/etcd") as resp:
            assert resp.status == 200
        assert DENIED not in log.read_bytes(), [ln for ln in log.read_text().splitlines() if "denied" in ln][:5]


async def test_an_apiserver_with_another_tenants_certificate_gets_nothing(bindir, etcd, tmp_path):
    before = await keys(etcd)
    async with apiserver(bindir, tmp_path, etcd, "tenant-b", A) as (api, log, proc):
        assert await ready_within(api, proc, 15) is None
        assert DENIED in log.read_bytes()
    assert await keys(etcd) == before
    async with etcd.client("root") as root:
        assert await root.count(B.encode(), names.range_end(B.encode())) == 0


async def test_without_the_flags_its_compactor_is_refused_outside_the_prefix(bindir, etcd, tmp_path):
    async with etcd.client("root") as root:
        await auth.grant_tenant(root, "tenant-c", "/sk8s/tenants/cccc/")
    async with apiserver(bindir, tmp_path, etcd, "tenant-c", "/sk8s/tenants/cccc/", flags=()) as (api, log, proc):
        assert await ready_within(api, proc, 90) is not None, log.read_text()[-3000:]
        await asyncio.sleep(3)
        refused = [ln for ln in log.read_text().splitlines() if "permission denied" in ln and ln[:1] == "E"]
        assert refused and all('get "compact_rev_key" failed' in ln for ln in refused), refused[:5]
