"""Networks of deleted clusters are released; those of live clusters are not."""
from __future__ import annotations

import asyncio

from operators.providers.errors import ProviderError
from operators.serverlesscluster import netgc


class Provider:
    def __init__(self, held, fail=False):
        self.held, self.fail, self.released = list(held), fail, []

    async def cluster_networks(self):
        if self.fail:
            raise ProviderError("Throttling.User: slow down")
        return list(self.held)

    async def release_cluster(self, uid):
        self.released.append(uid)
        self.held.remove(uid)


def test_orphans_are_the_held_networks_of_no_cluster():
    clusters = [{"metadata": {"uid": "a"}}, {"metadata": {"uid": "c"}}]
    assert netgc.orphans(["a", "b", "d"], clusters) == ["b", "d"]
    assert netgc.orphans([], clusters) == []


def test_collect_once_releases_only_what_no_cluster_owns(monkeypatch):
    providers = {"local": Provider([]), "aliyun": Provider(["live", "gone"])}
    monkeypatch.setattr(netgc, "available_providers", lambda: list(providers))
    monkeypatch.setattr(netgc.cluster, "provider", lambda name: providers[name])

    async def list_objects(plural):
        assert plural == "serverlessclusters"
        return [{"metadata": {"uid": "live"}}]
    monkeypatch.setattr(netgc.kube, "list_objects", list_objects)
    assert asyncio.run(netgc.collect_once()) == ["gone"]
    assert providers["aliyun"].released == ["gone"] and providers["aliyun"].held == ["live"]
    # A cloud refusing the listing is logged; the round ends without raising.
    providers["aliyun"] = Provider(["x"], fail=True)
    assert asyncio.run(netgc.collect_once()) == []
