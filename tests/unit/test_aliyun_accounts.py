"""Per-cluster cloud accounts: the store the ServerlessCluster operator writes and every
other process reads, and the routing of each call to its account's objects."""
from __future__ import annotations

import asyncio
import stat

import pytest

from operators.providers import bind_account, bound_accounts, forget_account
from operators.providers.aliyun.accounts import AccountStore
from operators.providers.aliyun.client import Credentials
from operators.providers.aliyun.routed import (Router, RoutedLifecycle, RoutedLoadBalancers, RoutedPrivateZones,
                                               RoutedStreams)
from operators.providers.errors import ProviderError
from operators.providers.lifecycle import SandboxLifecycle
from operators.providers.sandbox import SandboxRef
from operators.providers.services import LBSpec, LBState
from operators.serverlesscluster.credentials import decode

DEFAULT = Credentials("LTAI-default", "default-secret")
B = Credentials("LTAI-b", "b-secret")
B2 = Credentials("LTAI-b2", "b2-secret")
UID_B = "5a1c4c56-0b6f-4d51-9d3f-1b2c3d4e5f60"


def test_an_account_is_written_for_this_user_only_and_read_by_another_store(tmp_path):
    root = tmp_path / "accounts"
    writer, reader = AccountStore(root), AccountStore(root)
    assert reader.accounts() == []
    assert writer.write(UID_B, "sk8s-b-ns", B) is True
    assert writer.write(UID_B, "sk8s-b-ns", B) is False  # unchanged
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    assert stat.S_IMODE((root / UID_B).stat().st_mode) == 0o700
    for f in (root / UID_B).iterdir():
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
    assert reader.get(UID_B).credentials == B and reader.for_namespace("sk8s-b-ns").cluster_uid == UID_B
    assert reader.for_namespace("other") is None
    writer.write(UID_B, "sk8s-b-ns", B2)  # rotated: the other process sees the new key
    assert reader.get(UID_B).credentials == B2
    writer.remove(UID_B)
    writer.remove(UID_B)  # idempotent
    assert reader.accounts() == [] and not (root / UID_B).exists()


def test_a_uid_is_never_a_path(tmp_path):
    store = AccountStore(tmp_path)
    for bad in ("../x", "a/b", "", "A" * 65, "..", "uid with space"):
        with pytest.raises(ValueError):
            store.write(bad, "ns", B)
    assert list(tmp_path.iterdir()) == []


def test_credentials_are_never_printed():
    assert "b-secret" not in repr(B) and "b-secret" not in str(B)


def test_a_secret_is_decoded_and_a_missing_key_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("SK8S_HOME", str(tmp_path))
    data = decode({"data": {"access-key-id": "TFRBSS1i", "access-key-secret": "Yi1zZWNyZXQ="}})
    assert data == {"access-key-id": "LTAI-b", "access-key-secret": "b-secret"}
    with pytest.raises(ProviderError) as err:
        bind_account("aliyun", UID_B, "ns", {"access-key-id": "LTAI-b"})
    assert err.value.reason == "MissingCredentials" and "access-key-secret" in str(err.value)
    with pytest.raises(ProviderError) as err:
        decode({"data": {"access-key-id": "not base64!"}})
    assert "access-key-id" in str(err.value) and "not base64" not in str(err.value)
    with pytest.raises(ProviderError):
        bind_account("local", UID_B, "ns", data)
    assert bind_account("aliyun", UID_B, "ns", data) is True
    assert bound_accounts("aliyun") == [UID_B] and bound_accounts("local") == []
    forget_account("aliyun", UID_B)
    assert bound_accounts("aliyun") == []


class FakeLifecycle(SandboxLifecycle):
    """One account's side, recording what reached it."""

    def __init__(self, creds: Credentials):
        self.creds, self.calls = creds, []
        self.queue: asyncio.Queue[SandboxRef] = asyncio.Queue()

    async def ensure(self, ref, spec, labels):
        self.calls.append(("ensure", ref.name))
        return f"eci-{self.creds.access_key_id}"

    async def inspect(self, ref):
        self.calls.append(("inspect", ref.name))

    async def delete(self, ref, grace_seconds):
        self.calls.append(("delete", ref.name))

    async def list(self):
        return [SandboxRef("ns", f"of-{self.creds.access_key_id}", "u")]

    async def ensure_cluster_network(self, cluster_uid, cidr):
        self.calls.append(("network", cluster_uid))
        return "10.0.0.10"

    async def cluster_networks(self):
        return [f"net-{self.creds.access_key_id}"]

    async def watch(self):
        while True:
            yield await self.queue.get()


def router(tmp_path, build=FakeLifecycle) -> Router:
    return Router(DEFAULT, AccountStore(tmp_path / "accounts"), build)


async def test_calls_go_to_the_account_of_their_cluster_or_namespace(tmp_path):
    r = router(tmp_path)
    r.store.write(UID_B, "sk8s-b", B)
    life = RoutedLifecycle(r)
    assert await life.ensure(SandboxRef("sk8s-b", "p1", "u1"), None, {}) == "eci-LTAI-b"
    assert await life.ensure(SandboxRef("admin-ns", "p2", "u2"), None, {}) == "eci-LTAI-default"
    await life.delete(SandboxRef("sk8s-b", "p1", "u1"), 0)
    await life.ensure_cluster_network(UID_B, "10.0.0.0/22")
    await life.ensure_cluster_network("ffffffff-0000-0000-0000-000000000000", "10.0.4.0/22")
    b, default = r.for_cluster(UID_B), r.for_cluster(None)
    assert b.calls == [("ensure", "p1"), ("delete", "p1"), ("network", UID_B)]
    assert default.calls == [("ensure", "p2"), ("network", "ffffffff-0000-0000-0000-000000000000")]
    # What spans accounts is merged.
    assert await life.cluster_networks() == ["net-LTAI-b", "net-LTAI-default"]
    assert [x.name for x in await life.list()] == ["of-LTAI-b", "of-LTAI-default"]


async def test_a_rotated_key_gets_new_objects_and_the_watch_follows_accounts(tmp_path):
    r = router(tmp_path)
    life = RoutedLifecycle(r)
    watch = life.watch(rescan=0.05)
    first = asyncio.ensure_future(watch.__anext__())
    await asyncio.sleep(0.02)
    r.for_cluster(None).queue.put_nowait(SandboxRef("a", "x", "1"))
    assert (await asyncio.wait_for(first, 2)).name == "x"
    r.store.write(UID_B, "sk8s-b", B)  # a cluster with its own account appears: watched from the next rescan
    nxt = asyncio.ensure_future(watch.__anext__())
    await asyncio.sleep(0.2)
    old_b = r.for_cluster(UID_B)
    old_b.queue.put_nowait(SandboxRef("sk8s-b", "y", "2"))
    assert (await asyncio.wait_for(nxt, 2)).name == "y"
    r.store.write(UID_B, "sk8s-b", B2)  # rotated
    new_b = r.for_cluster(UID_B)
    assert new_b is not old_b and new_b.creds == B2
    nxt = asyncio.ensure_future(watch.__anext__())
    await asyncio.sleep(0.2)
    assert old_b not in r.every()  # the old key's object is dropped, its watch stopped
    new_b.queue.put_nowait(SandboxRef("sk8s-b", "z", "3"))
    assert (await asyncio.wait_for(nxt, 2)).name == "z"
    await watch.aclose()


class FakeLBs:
    on_health_change = None

    def __init__(self, creds):
        self.creds, self.made = creds, {}

    async def ensure(self, spec, address):
        self.made[spec.id] = spec
        return LBState(address=f"addr-{self.creds.access_key_id}")

    def state(self, lb_id):
        return LBState(address="x") if lb_id in self.made else None

    async def delete(self, lb_id, address=None, vpc_id=None):
        self.made.pop(lb_id, None)


async def test_load_balancers_and_zones_follow_their_cluster(tmp_path):
    r = router(tmp_path, FakeLBs)
    r.store.write(UID_B, "sk8s-b", B)
    lbs = RoutedLoadBalancers(r)
    spec = LBSpec(id="lb-1", address_type="internet", vpc_id=UID_B, listeners=[], backends=[])
    assert (await lbs.ensure(spec, None)).address == "addr-LTAI-b"
    assert lbs.state("lb-1") is not None and lbs.state("lb-2") is None
    await lbs.delete("lb-1", None, UID_B)
    assert r.for_cluster(UID_B).made == {}

    class FakeZones:
        def __init__(self, creds):
            self.creds, self.deleted = creds, []

        async def ensure(self, zone_id, name, vpc_ids, records):
            return [self.creds.access_key_id]

        async def delete(self, zone_id):
            self.deleted.append(zone_id)

    zr = router(tmp_path, FakeZones)
    zones = RoutedPrivateZones(zr)
    assert await zones.ensure("z", "cluster.local", [UID_B], []) == ["LTAI-b"]
    with pytest.raises(ProviderError) as err:
        await zones.ensure("z", "cluster.local", [UID_B, "ffffffff-0000-0000-0000-000000000000"], [])
    assert err.value.reason == "InvalidVpcBinding"
    await zones.delete("z")  # asked of every account: a zone is found by its remark
    assert [z.deleted for z in zr.every()] == [["z"], ["z"]]


async def test_streams_follow_the_namespace(tmp_path):
    class FakeStreams:
        def __init__(self, creds):
            self.creds = creds

        async def open_port_stream(self, ref, port):
            return self.creds.access_key_id

    r = router(tmp_path, FakeStreams)
    r.store.write(UID_B, "sk8s-b", B)
    streams = RoutedStreams(r)
    assert await streams.open_port_stream(SandboxRef("sk8s-b", "p", "u"), 80) == "LTAI-b"
    assert await streams.open_port_stream(SandboxRef("other", "p", "u"), 80) == "LTAI-default"
