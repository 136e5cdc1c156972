"""Probe result accounting, as the kubelet's prober worker does it (pure).

A probe's result only changes after `failureThreshold` failures or `successThreshold`
successes in a row. Readiness starts as failed, liveness as passed, startup as unknown
(not started). After a liveness or startup failure the probe holds until the container
restarts, so one failure kills the container once.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ....models.podspec import Probe

DEFAULT_PERIOD = 10
DEFAULT_TIMEOUT = 1
DEFAULT_FAILURES = 3
DEFAULT_SUCCESSES = 1

LIVENESS, READINESS, STARTUP = "Liveness", "Readiness", "Startup"


@dataclass(frozen=True)
class ProbeTiming:
    initial_delay: float
    period: float
    timeout: float
    success_threshold: int
    failure_threshold: int


def timing(probe: Probe, kind: str) -> ProbeTiming:
    # Liveness and startup probes pass on one success, whatever the spec says (upstream validates it).
    successes = 1 if kind != READINESS else (probe.successThreshold or DEFAULT_SUCCESSES)
    return ProbeTiming(probe.initialDelaySeconds or 0, probe.periodSeconds or DEFAULT_PERIOD,
                       probe.timeoutSeconds or DEFAULT_TIMEOUT, successes,
                       probe.failureThreshold or DEFAULT_FAILURES)


@dataclass
class ProbeState:
    kind: str
    timing: ProbeTiming
    result: bool | None = field(default=None)
    last: bool | None = None
    run: int = 0
    on_hold: bool = False

    def __post_init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """A new container: start from the probe's initial result."""
        self.result = {READINESS: False, LIVENESS: True, STARTUP: None}[self.kind]
        self.last, self.run, self.on_hold = None, 0, False

    def due(self, running_for: float) -> bool:
        """Whether to probe now (initialDelaySeconds counts from the container's start)."""
        return not self.on_hold and running_for >= self.timing.initial_delay

    def record(self, ok: bool) -> bool:
        """Account one probe outcome; True when the probe's result changes."""
        if ok == self.last:
            self.run += 1
        else:
            self.last, self.run = ok, 1
        needed = self.timing.success_threshold if ok else self.timing.failure_threshold
        if self.run < needed or self.result == ok:
            return False
        self.result = ok
        if not ok and self.kind in (LIVENESS, STARTUP):
            self.on_hold, self.run = True, 0
        return True
