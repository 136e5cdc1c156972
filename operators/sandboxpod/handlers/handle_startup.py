"""Operator start-up: kopf settings, the provider, the event watcher, garbage collection."""
from __future__ import annotations

import asyncio
import logging
import socket

import kopf

from ... import kopfresync, kopfsettings, kube
from ...config import provider_name
from ...models.contracts import FINALIZER_SANDBOXPOD
from ...providers import make_provider
from ...providers.errors import ProviderError
from ..events import SandboxEvents
from ..ownership import takes
from ..sandbox import collect_garbage
from ..watcher import StatusPusher

log = logging.getLogger(__name__)
GC_SECONDS = 60.0


def storage_suffix() -> str:
    return kopfsettings.storage_suffix()


def finalizer() -> str:
    return FINALIZER_SANDBOXPOD + storage_suffix()


def configure(settings: kopf.OperatorSettings) -> None:
    # A SandboxPod's spec is immutable and may be large (a Pod's may exceed 256 KiB).
    kopfsettings.configure(settings, finalizer=finalizer(), max_workers=16, digest_diffbase=True,
                           storage_suffix=storage_suffix())
    settings.queueing.worker_limit = 64


async def start(settings: kopf.OperatorSettings, memo: kopf.Memo, **_) -> None:
    configure(settings)
    try:
        await kube.wait_until_served("sandboxpods")
    except RuntimeError as exc:  # exit: the supervisor (or Deployment) restarts us
        raise kopf.PermanentError(str(exc)) from exc
    # Idempotent: kopf runs it again after a failure (say, an apiserver restarting meanwhile).
    if getattr(memo, "provider", None) is None:
        # The provider's kubelet part reports what a kubelet would (probe failures, back-off) as Events.
        memo.events = SandboxEvents(host=socket.gethostname())
        provider = make_provider(provider_name(), events=memo.events)
        try:
            await provider.setup()
        except Exception as exc:
            # Exit instead of idling unready: the supervisor (or Deployment) restarts us with back-off.
            raise kopf.PermanentError(f"provider {provider.name} cannot start: {exc}") from exc
        memo.provider = provider
        memo.pusher = StatusPusher(provider)
        memo.watcher = asyncio.create_task(memo.pusher.run())
    kopfresync.start(memo, "sandboxpods", finalizer(), diffbase=kopfresync.DIFFBASE_ANNOTATION + storage_suffix(),
                     accept=takes)
    provider = memo.provider
    try:
        removed = await collect_garbage(provider)
    except ProviderError as exc:  # a cloud unreachable now: the periodic collection tries again
        log.error("collecting orphaned sandboxes at start-up failed: %s", exc)
        removed = []
    if removed:
        log.warning("removed %d orphaned sandbox(es) at start-up", len(removed))
    if getattr(memo, "gc", None) is None:
        memo.gc = asyncio.create_task(collect_periodically(provider))


async def collect_periodically(provider, period: float = GC_SECONDS) -> None:
    """Orphaned sandboxes are removed while the operator runs too, not only at start-up."""
    while True:
        await asyncio.sleep(period)
        try:
            removed = await collect_garbage(provider)
        except asyncio.CancelledError:
            raise
        except Exception:  # the apiserver restarting, say: the next pass tries again
            log.exception("collecting orphaned sandboxes failed")
            continue
        if removed:
            log.warning("removed %d orphaned sandbox(es)", len(removed))


async def stop(memo: kopf.Memo, **_) -> None:
    for name in ("watcher", "gc", "resync"):
        task = getattr(memo, name, None)
        if task:
            task.cancel()
