"""The options of one container log request, in one object (virtual-kubelet's
ContainerLogOpts): what `kubectl logs` asks for reaches the provider whole, and a
provider honours every field or refuses the request, never drops one silently."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import AsyncIterator


@dataclass(frozen=True)
class ContainerLogOpts:
    follow: bool = False
    tail: int | None = None              # the last N lines; None: all of them
    previous: bool = False               # the run before the last restart
    timestamps: bool = False             # each line prefixed with its RFC 3339 time
    since_seconds: int | None = None     # lines of the last N seconds
    since_time: dt.datetime | None = None  # lines from this time (timezone-aware) on
    limit_bytes: int | None = None       # at most N bytes of output

    def __post_init__(self) -> None:
        # The apiserver's own validation of PodLogOptions, so a provider may rely on it.
        if self.tail is not None and self.tail < 0:
            raise ValueError("tailLines: must be greater than or equal to 0")
        if self.limit_bytes is not None and self.limit_bytes < 1:
            raise ValueError("limitBytes: must be greater than 0")
        if self.since_seconds is not None and self.since_seconds < 1:
            raise ValueError("sinceSeconds: must be greater than 0")
        if self.since_seconds is not None and self.since_time is not None:
            raise ValueError("at most one of sinceTime or sinceSeconds may be specified")
        if self.since_time is not None and self.since_time.tzinfo is None:
            raise ValueError("sinceTime: must carry a time zone (RFC 3339)")


async def truncated(stream: AsyncIterator[bytes], limit: int | None) -> AsyncIterator[bytes]:
    """`stream` cut after `limit` bytes (None: whole); the source is closed either way, so
    a provider's log process ends with the response."""
    sent = 0
    try:
        async for chunk in stream:
            if limit is not None:
                chunk = chunk[:limit - sent]
            if chunk:
                yield chunk
                sent += len(chunk)
            if limit is not None and sent >= limit:
                return
    finally:
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            await aclose()
