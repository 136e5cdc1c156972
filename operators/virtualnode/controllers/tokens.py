"""The virtual node's service-account token manager, as the kubelet's (pkg/kubelet/token):
bound tokens from the tenant's own TokenRequest API, cached per pod and request, requested
again before they expire, forgotten with the pod.

Only this tenant's apiserver mints them (the virtual node holds no other tenant's client),
and they go only into this pod's volume content. A token is never logged: messages name
the pod, the service account and the cause only.
"""
from __future__ import annotations

import logging
import random
import time
from typing import Callable

from ...config import token_refresh_fraction
from ...kubeclient.client import ApiError, KubeClient
from ..mapping.satokens import MAX_JITTER, Token, cache_key, parse_answer, refresh_at, token_request, token_sources
from ..mapping.volumes import VolumeError

log = logging.getLogger(__name__)
RETRY_AFTER_FAILED_REFRESH = 10.0  # a refresh that failed while the token is still valid


class TokenManager:
    def __init__(self, tenant: KubeClient, *, fraction: float | None = None, clock: Callable[[], float] = time.time,
                 jitter: Callable[[], float] | None = None):
        self.tenant = tenant
        self.fraction = token_refresh_fraction() if fraction is None else fraction
        self.clock = clock
        self.jitter = jitter or (lambda: random.random() * MAX_JITTER)
        self._cache: dict[tuple, tuple[Token, float]] = {}  # cache_key -> (token, when to ask again)

    async def tokens(self, pod: dict) -> tuple[dict[tuple[str, int], str], float | None]:
        """The token of every serviceAccountToken source of the pod, by (volume, source index),
        and the seconds until the first of them is due again (None without any).
        Raises VolumeError naming the volume when a token cannot be had."""
        out: dict[tuple[str, int], str] = {}
        due: float | None = None
        for ts in token_sources(pod):
            try:
                token, when = await self._get(pod, ts.source)
            except TokenError as err:
                raise VolumeError(ts.volume, str(err)) from err
            out[(ts.volume, ts.index)] = token.token
            due = when if due is None else min(due, when)
        return out, (None if due is None else max(due - self.clock(), 1.0))  # never a busy loop

    async def _get(self, pod: dict, source: dict) -> tuple[Token, float]:
        key = cache_key(pod, source)
        cached = self._cache.get(key)
        now = self.clock()
        if cached and now < cached[1]:
            return cached
        path, body = token_request(pod, source)
        try:
            token = parse_answer(await self.tenant.create(path, body), body["spec"]["expirationSeconds"])
        except (ApiError, ValueError) as exc:
            why = exc.message if isinstance(exc, ApiError) else str(exc)
            if cached is None:
                raise TokenError(f"failed to fetch token: {why}") from exc
            if now >= cached[0].expires_at:
                raise TokenError(f"token expired and refresh failed: {why}") from exc
            meta = pod["metadata"]
            log.warning("pod %s/%s: refreshing a service-account token failed (%s); the current one stays until "
                        "it expires", meta["namespace"], meta["name"], why)
            entry = (cached[0], now + RETRY_AFTER_FAILED_REFRESH)
            self._cache[key] = entry
            return entry
        entry = (token, refresh_at(token, fraction=self.fraction, jitter=self.jitter()))
        self._cache[key] = entry
        return entry

    def forget(self, pod_uid: str) -> None:
        """The pod is gone: its tokens are no longer refreshed (nor kept)."""
        for key in [k for k in self._cache if k[-1] == pod_uid]:
            del self._cache[key]


class TokenError(Exception):
    pass
