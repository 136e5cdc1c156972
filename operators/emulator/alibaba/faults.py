"""Fault injection: the failures a client of the real cloud has to survive, on demand.

- `throttle_rate`: the share of calls refused before they are applied, HTTP 400 with
  `throttle_code` ("Throttling.User" as the gateway's per-user flow control says it,
  "Throttling", or PrivateZone's "System.Busy");
- `error_rate`: the share of calls failing before they are applied with a server error,
  HTTP 503 ServiceUnavailable or 500 InternalError (half each);
- `latency`: seconds added to every call;
- `drop_rate`: the share of calls applied, then answered by closing the connection: the
  client cannot know that its create happened (what ClientToken is for).

Settable at start and at run time (`POST /_emulator/faults` with a JSON object of these
keys). Draws come from one RNG seeded by `seed`, so a run is reproducible."""
from __future__ import annotations

import random
from dataclasses import asdict, dataclass, fields
from typing import Any

from .errors import ApiError

THROTTLE_CODES = {
    "Throttling.User": "Request was denied due to user flow control.",
    "Throttling": "Request was denied due to request throttling.",
    "System.Busy": "System is busy, please try again later.",  # PrivateZone's way of saying it
}
SERVER_ERRORS = (
    (503, "ServiceUnavailable", "The request has failed due to a temporary failure of the server."),
    (500, "InternalError", "The request processing has failed due to some unknown error, exception or failure."),
)


@dataclass
class FaultConfig:
    throttle_rate: float = 0.0
    throttle_code: str = "Throttling.User"
    error_rate: float = 0.0
    latency: float = 0.0
    drop_rate: float = 0.0
    seed: int | None = None


@dataclass(frozen=True)
class Decision:
    """What happens to one call: wait `latency`, then fail with `error` unapplied, or
    apply and then `drop` the connection, or apply and answer."""

    latency: float = 0.0
    error: ApiError | None = None
    drop: bool = False


def validated(changes: dict[str, Any], base: FaultConfig) -> FaultConfig:
    """base with changes applied; ValueError naming a key that is unknown or out of range."""
    known = {f.name for f in fields(FaultConfig)}
    unknown = set(changes) - known
    if unknown:
        raise ValueError(f"unknown fault settings {sorted(unknown)}; known: {sorted(known)}")
    merged = {**asdict(base), **changes}
    for key in ("throttle_rate", "error_rate", "drop_rate"):
        value = merged[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
            raise ValueError(f"{key} must be a number in [0, 1], not {value!r}")
    latency = merged["latency"]
    if isinstance(latency, bool) or not isinstance(latency, (int, float)) or not 0 <= latency <= 600:
        raise ValueError(f"latency must be seconds in [0, 600], not {latency!r}")
    if merged["throttle_code"] not in THROTTLE_CODES:
        raise ValueError(f"throttle_code must be one of {sorted(THROTTLE_CODES)}")
    if merged["seed"] is not None and (isinstance(merged["seed"], bool) or not isinstance(merged["seed"], int)):
        raise ValueError("seed must be an integer or null")
    return FaultConfig(**merged)


class Faults:
    def __init__(self, config: FaultConfig | None = None):
        self.config = config or FaultConfig()
        self.rng = random.Random(self.config.seed)
        self.injected: dict[str, int] = {}

    def update(self, changes: dict[str, Any]) -> FaultConfig:
        new = validated(changes, self.config)
        if "seed" in changes:
            self.rng = random.Random(new.seed)
        self.config = new
        return new

    def decide(self) -> Decision:
        c = self.config
        # One draw per kind and call whatever the rates, so that a seed gives the same
        # sequence of outcomes when only a rate changes between runs.
        throttle, error, which, drop = (self.rng.random() for _ in range(4))
        if throttle < c.throttle_rate:
            return self._count(Decision(c.latency, ApiError(400, c.throttle_code, THROTTLE_CODES[c.throttle_code])))
        if error < c.error_rate:
            status, code, message = SERVER_ERRORS[0 if which < 0.5 else 1]
            return self._count(Decision(c.latency, ApiError(status, code, message)))
        return self._count(Decision(c.latency, drop=drop < c.drop_rate))

    def _count(self, decision: Decision) -> Decision:
        kind = decision.error.code if decision.error else "Dropped" if decision.drop else None
        if kind:
            self.injected[kind] = self.injected.get(kind, 0) + 1
        return decision

    def describe(self) -> dict[str, Any]:
        return {**asdict(self.config), "injected": dict(self.injected)}
