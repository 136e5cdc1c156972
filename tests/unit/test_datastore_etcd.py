"""The datastore's auth against a real etcd (v3.7, TLS, client certificates required):
after enable_auth and grant_tenant, a tenant certificate reaches its own prefix and
nothing else; grants are idempotent and repair tampering; revoke cuts access; hostile
names reach no RPC. One etcd for the module (~1 s to start), a fresh user per test."""
from __future__ import annotations

import asyncio
import ssl

import pytest
import pytest_asyncio

from operators.config import free_port
from operators.datastore import auth, backup, names, proto
from operators.datastore.client import EtcdAuthClient
from operators.embedded import pki
from operators.datastore.rpc import GrpcError
from tests.unit.etcdkit import cached_etcd, running_etcd

pytestmark = pytest.mark.asyncio(loop_scope="module")

A, B = "/sk8s/tenants/aaaa/", "/sk8s/tenants/bbbb/"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def etcd(tmp_path_factory):
    binary = cached_etcd()
    if binary is None:
        pytest.skip("no etcd cached by hack/build-components.sh")
    with running_etcd(binary, tmp_path_factory.mktemp("datastore")) as store:
        async with store.client("root") as root:
            await auth.enable_auth(root)
            await auth.enable_auth(root)  # idempotent
            assert await root.auth_enabled()
            await auth.grant_tenant(root, "tenant-a", A)
            await auth.grant_tenant(root, "tenant-b", B)
        yield store


async def denied(call) -> None:
    with pytest.raises(GrpcError) as err:
        await call
    assert err.value.code == 7 and err.value.message == "etcdserver: permission denied", err.value


async def test_a_tenant_reads_and_writes_its_own_prefix(etcd):
    async with etcd.client("tenant-a") as a:
        await a.put(A.encode() + b"pods/x", b"one")
        assert await a.get_range(A.encode() + b"pods/x") == [(A.encode() + b"pods/x", b"one")]
        end = names.range_end(A.encode())
        assert (A.encode() + b"pods/x", b"one") in await a.get_range(A.encode(), end)


async def test_a_tenant_cannot_touch_another_prefix_or_the_whole_keyspace(etcd):
    async with etcd.client("tenant-b") as b:
        await b.put(B.encode() + b"secrets/s", b"b's secret")
    async with etcd.client("tenant-a") as a:
        await denied(a.get_range(B.encode() + b"secrets/s"))
        await denied(a.get_range(B.encode(), names.range_end(B.encode())))
        await denied(a.put(B.encode() + b"secrets/s", b"overwritten"))
        await denied(a.delete_range(B.encode(), names.range_end(B.encode())))
        await denied(a.get_range(b"\0", b"\0"))            # every key
        await denied(a.get_range(b"/sk8s/", b"/sk8s0"))     # every tenant
        await denied(a.get_range(A.encode()[:-1], names.range_end(A.encode()[:-1])))  # /sk8s/tenants/aaaa*, wider
        await denied(a.put(b"/sk8s/tenants/aaaa0", b"x"))   # just past its range
        await denied(a.put(auth.COMPACT_REV_KEY, b"1"))     # an apiserver compactor's key: etcd compacts
        await denied(a.get_range(auth.COMPACT_REV_KEY))
        await denied(a.user_add("tenant-a2"))               # no auth administration
        await denied(a.role_grant("tenant-tenant-a", proto.Permission(proto.READWRITE, b"\0", b"\0")))
    async with etcd.client("root") as root:
        assert await root.get_range(B.encode() + b"secrets/s") == [(B.encode() + b"secrets/s", b"b's secret")]


async def test_a_certificate_of_the_ca_with_no_grant_reaches_nothing(etcd):
    async with etcd.client("stranger") as s:
        await denied(s.get_range(A.encode(), names.range_end(A.encode())))
        await denied(s.put(b"/anything", b"x"))


async def test_grant_is_idempotent_and_repairs_a_tampered_user_and_role(etcd):
    prefix = "/sk8s/tenants/cccc/"
    async with etcd.client("root") as root:
        await auth.grant_tenant(root, "tenant-c", prefix)
        await auth.grant_tenant(root, "tenant-c", prefix)
        assert await root.user_roles("tenant-c") == ["tenant-tenant-c"]
        assert await root.role_permissions("tenant-tenant-c") == [auth.tenant_permission(prefix)]
        # Widened by hand or by a bug: the whole keyspace, and the root role.
        await root.role_grant("tenant-tenant-c", proto.Permission(proto.READWRITE, b"\0", b"\0"))
        await root.user_grant_role("tenant-c", "root")
        async with etcd.client("tenant-c") as c:
            assert await c.get_range(B.encode(), names.range_end(B.encode()))  # the tampering works...
            await auth.grant_tenant(root, "tenant-c", prefix)
            await denied(c.get_range(B.encode(), names.range_end(B.encode())))  # ...until the next grant
            await c.put(prefix.encode() + b"k", b"v")
        assert await root.user_roles("tenant-c") == ["tenant-tenant-c"]
        assert await root.role_permissions("tenant-tenant-c") == [auth.tenant_permission(prefix)]


async def test_revoke_cuts_access_and_is_idempotent(etcd):
    prefix = "/sk8s/tenants/dddd/"
    async with etcd.client("root") as root:
        await auth.grant_tenant(root, "tenant-d", prefix)
        async with etcd.client("tenant-d") as d:
            await d.put(prefix.encode() + b"k", b"v")   # the same connection, before and after
            await auth.revoke_tenant(root, "tenant-d")
            await auth.revoke_tenant(root, "tenant-d")
            await denied(d.get_range(prefix.encode() + b"k"))
            await denied(d.put(prefix.encode() + b"k", b"w"))
        assert "tenant-d" not in await root.user_list()
        # The data stays until the operator deletes it.
        assert await auth.count_keys(root, prefix) == 1
        assert await auth.delete_prefix(root, prefix) == 1
        assert await auth.count_keys(root, prefix) == 0


async def test_delete_prefix_deletes_that_tenant_only(etcd):
    async with etcd.client("tenant-b") as b:
        await b.put(B.encode() + b"configmaps/keep", b"1")
    async with etcd.client("root") as root:
        await root.put(b"/sk8s/tenants/eeee/x", b"1")
        await root.put(b"/sk8s/tenants/eeee0", b"past the range")
        assert await auth.delete_prefix(root, "/sk8s/tenants/eeee/") == 1
        assert await root.get_range(b"/sk8s/tenants/eeee0") == [(b"/sk8s/tenants/eeee0", b"past the range")]
        assert await root.get_range(B.encode() + b"configmaps/keep")


@pytest.mark.parametrize("user,prefix", [("root", "/sk8s/tenants/ffff/"), ("tenant-f", "/sk8s/"),
                                         ("tenant-f", "/sk8s/tenants/ffff/../"), ("tenant-f", "/"),
                                         ("tenant f", "/sk8s/tenants/ffff/"), ("", "/sk8s/tenants/ffff/")])
async def test_hostile_names_are_refused_before_any_rpc(etcd, user, prefix):
    async with etcd.client("root") as root:
        before = (await root.user_list(), await root.revision())
        with pytest.raises(names.InvalidName):
            await auth.grant_tenant(root, user, prefix)
        assert (await root.user_list(), await root.revision()) == before
        assert await root.user_roles("root") == ["root"]


async def test_revoke_refuses_root(etcd):
    async with etcd.client("root") as root:
        with pytest.raises(names.InvalidName):
            await auth.revoke_tenant(root, "root")
        assert await root.user_roles("root") == ["root"]


@pytest.mark.parametrize("hostname", ["sk8s-datastore.sk8s-system.svc",
                                      "sk8s-datastore-2.sk8s-datastore-peers.sk8s-system.svc", "localhost"])
async def test_the_member_certificate_serves_the_service_and_peer_names(etcd, hostname):
    ctx = ssl.create_default_context(cafile=str(etcd.directory / "ca.crt"))
    ctx.load_cert_chain(*map(str, etcd.credentials("root")[1:]))
    host, port = etcd.url.removeprefix("https://").split(":")
    _, writer = await asyncio.open_connection(host, int(port), ssl=ctx, server_hostname=hostname)
    writer.close()
    await writer.wait_closed()
    with pytest.raises(ssl.SSLCertVerificationError):
        await asyncio.open_connection(host, int(port), ssl=ctx, server_hostname="sk8s-datastore.other-ns.svc")


async def test_an_etcd_of_another_ca_or_none_at_all_is_a_connection_error(etcd, tmp_path):
    other = pki.make_ca("someone-else")
    pki.write(other, tmp_path, "other-ca")
    _, crt, key = etcd.credentials("root")
    async with EtcdAuthClient(etcd.url, tmp_path / "other-ca.crt", crt, key) as c:
        with pytest.raises(ConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
            await c.user_list()
    async with EtcdAuthClient(f"https://127.0.0.1:{free_port()}", *etcd.credentials("root"), timeout=3) as c:
        with pytest.raises(ConnectionError):
            await c.user_list()
    async with etcd.client("tenant-a") as a:  # a refused call leaves the connection usable
        await denied(a.get_range(B.encode()))
        await a.put(A.encode() + b"after-refusal", b"1")


async def test_a_snapshot_holds_every_tenant_and_is_roots_only(etcd, tmp_path):
    async with etcd.client("tenant-b") as b:
        await b.put(B.encode() + b"snap", b"in-the-backup")
        with pytest.raises(GrpcError) as err:
            await backup.snapshot(b, tmp_path / "by-b.db")
        assert err.value.code == 7
    assert not list(tmp_path.glob("by-b.db*"))
    async with etcd.client("root") as root:
        size = await backup.snapshot(root, tmp_path / "all.db")
    data = (tmp_path / "all.db").read_bytes()
    assert size == len(data) > 4096
    assert int.from_bytes(data[16:20], "little") == 0xED0CDAED  # a bbolt database (its meta page's magic)
    assert b"in-the-backup" in data and A.encode() in data  # both tenants' keys
    backup.verify(tmp_path / "all.db")
    (tmp_path / "bad.db").write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(ValueError):
        backup.verify(tmp_path / "bad.db")
