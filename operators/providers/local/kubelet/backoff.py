"""The kubelet's container restart back-off (CrashLoopBackOff), as pure arithmetic.

Upstream (pkg/kubelet/kuberuntime, client-go flowcontrol.Backoff): the first restart of a
container is immediate and arms a 10 s back-off; each later crash waits out the current
back-off, which doubles at every restart up to 5 minutes. A container that ran for
longer than twice the cap (10 minutes) since its last restart starts over at 10 s.
Times are seconds on any monotonic-enough clock (the caller passes them in).
"""
from __future__ import annotations

from dataclasses import dataclass

INITIAL = 10.0
CAP = 300.0


@dataclass
class BackOff:
    """Back-off of one container: `delay` is armed by the last restart, at `last_restart`."""

    delay: float | None = None
    last_restart: float | None = None

    def _expired(self, finished_at: float) -> bool:
        return self.last_restart is None or finished_at - self.last_restart > 2 * CAP

    def wait(self, finished_at: float, now: float) -> float:
        """Seconds still to wait before restarting a container that exited at `finished_at`."""
        if self.delay is None or self._expired(finished_at):
            return 0.0
        return max(0.0, finished_at + self.delay - now)

    def restarted(self, finished_at: float, now: float) -> None:
        """Record a restart: arm 10 s the first time (or after a long run), else double."""
        if self.delay is None or self._expired(finished_at):
            self.delay = INITIAL
        else:
            self.delay = min(self.delay * 2, CAP)
        self.last_restart = now


def format_duration(seconds: float) -> str:
    """Go's time.Duration formatting for whole seconds: 10s, 1m20s, 5m0s."""
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    return f"{s // 60}m{s % 60}s"


def crashloop_message(delay: float, container: str, pod: str) -> str:
    """The waiting message of a container in CrashLoopBackOff; `pod` is name_namespace(uid)."""
    return f"back-off {format_duration(delay)} restarting failed container={container} pod={pod}"
