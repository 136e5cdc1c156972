"""When the health timer may restart a dead tenant component: at once the first time,
then with a doubling delay while it keeps dying, forgiven once it stayed up a while.

A component that crashes at start (a bad flag, a port taken) must not be restarted on
every tick, burning CPU that other tenants need; one killed once must come back at once.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class RestartBackoff:
    base: float = 10.0     # the delay after the first restart (the timer ticks every 10 s)
    cap: float = 300.0
    stable: float = 120.0  # up this long before it was found dead: its past crashes are forgiven
    restarts: int = 0
    last_start: float | None = None
    down_since: float | None = None

    def delay(self) -> float:
        return 0.0 if self.restarts == 0 else min(self.base * 2 ** (self.restarts - 1), self.cap)

    def found_down(self, now: float) -> None:
        if self.down_since is None:
            self.down_since = now
            if self.last_start is not None and now - self.last_start >= self.stable:
                self.restarts = 0

    def due_in(self, now: float) -> float:
        """Seconds until a restart is allowed (0: now). Call when it is found not running."""
        self.found_down(now)
        if self.restarts == 0 or self.last_start is None:
            return 0.0
        return max(0.0, self.last_start + self.delay() - now)

    def started(self, now: float) -> None:
        self.restarts += 1
        self.last_start = now
        self.down_since = None
