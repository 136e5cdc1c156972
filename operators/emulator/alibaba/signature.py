"""RPC signature v1 (HMAC-SHA1), as the cloud's gateway checks it.

The client signs every parameter but `Signature` (query and form body alike): sorted by
name, each name and value percent-encoded with only `-_.~` left bare, joined as a query
string; the string to sign is `METHOD&%2F&` + that query string encoded once more; the
signature is base64(HMAC-SHA1(secret + "&", string to sign)).

`Verifier` refuses what the cloud refuses, with the cloud's codes: an unknown AccessKeyId
(404 InvalidAccessKeyId.NotFound), a Timestamp missing or over 15 minutes off
(InvalidTimeStamp.Expired), a signature that does not match (SignatureDoesNotMatch, whose
message carries the server's string to sign after a colon: the SDK compares it with its
own and, when they are equal, reports InvalidAccessKeySecret, i.e. the wrong secret), and
a SignatureNonce seen in the last 15 minutes (SignatureNonceUsed: a replay)."""
from __future__ import annotations

import base64
import calendar
import collections
import hashlib
import hmac
import time
from typing import Callable, Mapping
from urllib.parse import quote

from .errors import ApiError

WINDOW = 15 * 60  # the allowed clock skew, and how long a nonce is remembered
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
METHODS = {"HMAC-SHA1": hashlib.sha1}


def encode(value: str) -> str:
    return quote(str(value), safe="-_.~")


def canonical_query(params: Mapping[str, str]) -> str:
    return "&".join(f"{encode(k)}={encode(v)}" for k, v in sorted(params.items()) if k != "Signature")


def string_to_sign(method: str, params: Mapping[str, str]) -> str:
    return f"{method.upper()}&{encode('/')}&{encode(canonical_query(params))}"


def sign(method: str, params: Mapping[str, str], secret: str) -> str:
    digest = hmac.new(f"{secret}&".encode(), string_to_sign(method, params).encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def parse_time(value: str) -> float | None:
    try:
        return float(calendar.timegm(time.strptime(value, TIME_FORMAT)))
    except (TypeError, ValueError):
        return None


def format_time(epoch: float) -> str:
    return time.strftime(TIME_FORMAT, time.gmtime(epoch))


class NonceCache:
    """Nonces seen within the window, forgotten in arrival order once older than it."""

    def __init__(self, window: float = WINDOW):
        self.window = window
        self._seen: set[str] = set()
        self._order: collections.deque[tuple[float, str]] = collections.deque()

    def add(self, nonce: str, now: float) -> bool:
        """Remember the nonce; False if it was already seen within the window."""
        while self._order and self._order[0][0] < now - self.window:
            self._seen.discard(self._order.popleft()[1])
        if nonce in self._seen:
            return False
        self._seen.add(nonce)
        self._order.append((now, nonce))
        return True


class Verifier:
    """Checks one request's credentials, time, signature and nonce, in the gateway's order."""

    def __init__(self, credentials: Mapping[str, str], clock: Callable[[], float] = time.time):
        self.credentials = dict(credentials)
        self.disabled: set[str] = set()  # keys switched off, as in the RAM console
        self.clock = clock
        self.nonces = NonceCache()

    def verify(self, method: str, params: Mapping[str, str]) -> str:
        """The request's AccessKeyId, or ApiError as the cloud answers."""
        key_id = params.get("AccessKeyId")
        if not key_id:
            raise ApiError(400, "MissingAccessKeyId", "AccessKeyId is mandatory for this action.")
        secret = self.credentials.get(key_id)
        if secret is None:
            raise ApiError(404, "InvalidAccessKeyId.NotFound", "Specified access key is not found.")
        if key_id in self.disabled:
            raise ApiError(400, "InvalidAccessKeyId.Inactive", "Specified access key is disabled.")
        now = self.clock()
        stamp = parse_time(params.get("Timestamp", ""))
        if stamp is None or abs(now - stamp) > WINDOW:
            raise ApiError(400, "InvalidTimeStamp.Expired",
                           "Specified time stamp or date value is expired.")
        if params.get("SignatureMethod", "HMAC-SHA1") not in METHODS:
            raise ApiError(400, "InvalidSignatureMethod", "Specified signature method is not supported.")
        expected = sign(method, params, secret)
        if not hmac.compare_digest(expected.encode(), str(params.get("Signature", "")).encode()):
            raise ApiError(400, "SignatureDoesNotMatch",
                           "Specified signature is not matched with our calculation. server string to sign is:"
                           + string_to_sign(method, params))
        nonce = params.get("SignatureNonce")
        if not nonce:
            raise ApiError(400, "MissingSignatureNonce", "SignatureNonce is mandatory for this action.")
        if not self.nonces.add(nonce, now):
            raise ApiError(400, "SignatureNonceUsed", "Specified signature nonce was used already.")
        return key_id
