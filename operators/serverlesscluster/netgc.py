"""Networks of clusters that are gone: a cluster deleted while its provider could not
release its network (a cloud out of reach, an operator killed between the steps) leaves a
VPC, VSwitches and a security group that no deletion will ever visit again. At start and
then periodically, each provider's cluster networks whose ServerlessCluster no longer
exists are released, and then the cluster's own account (if it had one) is forgotten. A
network made for a cluster being created is safe: its cluster object exists before its
network does, and before its account is recorded."""
from __future__ import annotations

import asyncio
import logging

from .. import kube
from ..providers import available_providers, bound_accounts, forget_account
from ..providers.errors import ProviderError
from . import cluster

log = logging.getLogger(__name__)
PERIOD = 600.0


def orphans(held: list[str], clusters: list[dict]) -> list[str]:
    """The held networks' cluster uids that no ServerlessCluster has (pure)."""
    alive = {c["metadata"]["uid"] for c in clusters}
    return sorted(set(held) - alive)


async def collect_once() -> list[str]:
    released = []
    for name in available_providers():
        provider = cluster.provider(name)
        try:
            held = await provider.cluster_networks()
            accounts = bound_accounts(name)
            if not held and not accounts:
                continue
            # Listed after the networks: a cluster made in between is in this list.
            clusters = await kube.list_objects("serverlessclusters")
            for uid in orphans(held, clusters):
                log.warning("releasing the %s network of cluster %s, which no longer exists", name, uid)
                await provider.release_cluster(uid)  # through the cluster's account, still recorded
                released.append(uid)
            for uid in orphans(accounts, clusters):
                if uid not in held or uid in released:
                    forget_account(name, uid)
        except ProviderError as exc:  # the next round tries again
            log.error("collecting %s networks of deleted clusters: %s", name, exc)
    return released


async def collect_periodically(period: float = PERIOD) -> None:
    while True:
        try:
            await collect_once()
        except Exception:  # never let the loop die: the next round tries again
            log.exception("collecting networks of deleted clusters")
        await asyncio.sleep(period)
