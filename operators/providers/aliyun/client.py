"""Calls to Alibaba Cloud's RPC APIs through the classic SDK (aliyunsdkcore's AcsClient),
with what the SDK leaves out for anything but ECS: retries with jittered back-off of the
errors the cloud says are transient, and a token bucket per region so that a burst of
pods does not turn into a storm of throttled calls.

The SDK is synchronous (urllib3 under requests); each call runs in a thread. A call that
changes something is retried after a lost connection only when it is idempotent by
construction (a `ClientToken` in its parameters, or a delete that treats "not found" as
done): the request may have been applied before the connection dropped.

Credentials stay in this object: never logged, never part of an error message.
"""
from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from dataclasses import dataclass
from typing import Any

from ..errors import ProviderError

log = logging.getLogger(__name__)
# The SDK logs every error response at ERROR with its host; ours say which call and why.
logging.getLogger("aliyunsdkcore").setLevel(logging.CRITICAL)

# Codes the cloud documents as transient (besides any 5xx). Prefix matches: "Throttling.User",
# "Throttling.Api", "ServiceUnavailable.Busy"...
RETRYABLE_PREFIXES = ("Throttling", "ServiceUnavailable", "InternalError", "OperationFailed.TokenIsProcessing",
                      "ServiceIsConfiguring", "System.Busy", "Degrade.Api", "SDK.HttpError",
                      "IncorrectStatus.Processing")


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    access_key_secret: str

    def __repr__(self) -> str:  # never printed, whatever logs the object
        return f"Credentials(access_key_id={self.access_key_id[:4]}..., access_key_secret=***)"


class AliyunError(ProviderError):
    """An error answer of the cloud: `code` is the cloud's (`QuotaExceeded.Cpu`), the reason
    shown in status and Events."""

    def __init__(self, action: str, code: str, message: str, *, http_status: int | None = None,
                 request_id: str | None = None):
        self.code, self.http_status, self.request_id = code, http_status, request_id
        retryable = is_retryable(code, http_status)
        super().__init__(f"{action}: {code}: {message}" + (f" (RequestId {request_id})" if request_id else ""),
                         reason=code.split(".")[0] if code else "ProviderFailed", retryable=retryable)


def is_retryable(code: str | None, http_status: int | None) -> bool:
    if http_status is not None and http_status >= 500:
        return True
    return bool(code) and code.startswith(RETRYABLE_PREFIXES)


class TokenBucket:
    """At most `rate` calls a second on average, bursts of `burst`."""

    def __init__(self, rate: float, burst: int, clock=time.monotonic):
        self.rate, self.burst, self.clock = rate, burst, clock
        self.tokens = float(burst)
        self.stamp = clock()
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    async def acquire(self) -> None:
        async with self._lock:  # first come, first served
            while True:
                self._refill()
                if self.tokens >= 1:
                    self.tokens -= 1
                    return
                await asyncio.sleep((1 - self.tokens) / self.rate)


def backoff(attempt: int, base: float = 0.2, cap: float = 10.0, rng: random.Random | None = None) -> float:
    """Full jitter (AWS's "exponential back-off and jitter"): spreads the retries of many
    callers throttled at the same moment."""
    return (rng or random).uniform(0, min(cap, base * 2 ** attempt))


class AliyunClient:
    """One account in one region. `endpoint` ("host:port") replaces the SDK's endpoint
    resolution (the local emulator, or a VPC endpoint), spoken over plain HTTP when it is a
    loopback address."""

    def __init__(self, credentials: Credentials, region: str, *, endpoint: str | None = None,
                 rate: float = 20.0, burst: int = 40, attempts: int = 8, timeout: float = 10.0):
        from aliyunsdkcore.client import AcsClient
        self.region, self.endpoint, self.attempts = region, endpoint, attempts
        self.bucket = TokenBucket(rate, burst)
        # auto_retry off: the SDK would retry ECS calls only, without jitter and outside the bucket.
        self._acs = AcsClient(credentials.access_key_id, credentials.access_key_secret, region,
                              auto_retry=False, timeout=int(timeout), connect_timeout=5, pool_size=32,
                              proxy={"http": None, "https": None})
        self.calls: dict[str, int] = {}

    def _request(self, request_cls: type, params: dict[str, Any]):
        req = request_cls()
        for key, value in params.items():
            if value is not None:
                req.add_query_param(key, value if isinstance(value, str) else json.dumps(value)
                                    if isinstance(value, (list, dict)) else str(value))
        if self.endpoint:
            req.set_endpoint(self.endpoint)
            if self.endpoint.startswith(("127.", "localhost", "[::1]")):
                req.set_protocol_type("http")
        return req

    def _send(self, request_cls: type, params: dict[str, Any]) -> dict:
        from aliyunsdkcore.acs_exception.exceptions import ClientException, ServerException
        action = request_cls.__name__.removesuffix("Request")
        self.calls[action] = self.calls.get(action, 0) + 1
        try:
            body = self._acs.do_action_with_exception(self._request(request_cls, params))
        except ServerException as exc:
            raise AliyunError(action, exc.get_error_code(), exc.get_error_msg(), http_status=exc.get_http_status(),
                              request_id=exc.get_request_id()) from None
        except ClientException as exc:  # no answer: a connection refused, reset or timed out
            raise AliyunError(action, exc.get_error_code(), exc.get_error_msg()) from None
        return json.loads(body) if body else {}

    async def call(self, request_cls: type, params: dict[str, Any], *, idempotent: bool = True) -> dict:
        """Send one request, retrying transient errors. `idempotent=False`: a call whose
        effect may have happened without an answer is not sent again (the caller decides)."""
        action = request_cls.__name__.removesuffix("Request")
        for attempt in range(self.attempts):
            await self.bucket.acquire()
            try:
                return await asyncio.to_thread(self._send, request_cls, params)
            except AliyunError as exc:
                no_answer = exc.http_status is None
                last = attempt == self.attempts - 1
                if not exc.retryable or last or (no_answer and not idempotent):
                    raise
                delay = backoff(attempt)
                log.info("%s: %s, retrying in %.2fs (attempt %d)", action, exc.code, delay, attempt + 1)
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")
