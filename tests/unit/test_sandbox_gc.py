"""Orphaned sandboxes are collected, and a sandbox made while the collector runs is not."""
from __future__ import annotations

from operators.providers.sandbox import SandboxRef
from operators.sandboxpod import sandbox

LIVE = SandboxRef("ns", "web", "uid-live")
ORPHAN = SandboxRef("ns", "gone", "uid-gone")
NEW = SandboxRef("ns", "new", "uid-new")


class Provider:
    name = "fake"

    def __init__(self, refs):
        self.refs = list(refs)
        self.deleted = []

    async def list(self):
        return list(self.refs)

    async def delete(self, ref, grace):
        self.deleted.append(ref)


def sbp(ref):
    return {"metadata": {"namespace": ref.namespace, "name": ref.name, "uid": ref.uid}}


async def test_orphans_go_and_a_sandbox_made_meanwhile_stays(monkeypatch):
    provider = Provider([LIVE, ORPHAN])

    async def list_objects(plural):
        # A SandboxPod and its sandbox made after the provider was listed.
        provider.refs.append(NEW)
        return [sbp(LIVE), sbp(NEW)]

    monkeypatch.setattr(sandbox.kube, "list_objects", list_objects)
    assert await sandbox.collect_garbage(provider) == [ORPHAN]
    assert provider.deleted == [ORPHAN]
