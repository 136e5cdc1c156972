"""Whether a container that exited runs again (pure): restartPolicy, as the kubelet applies it."""
from __future__ import annotations


def should_restart(policy: str | None, exit_code: int, *, init: bool = False, sidecar: bool = False) -> bool:
    """Containers: Always restarts, OnFailure only after a failure, Never never.
    Init containers: a succeeded one is done, a failed one is retried unless Never.
    Sidecars (init containers with restartPolicy Always) always restart, whatever the pod's policy."""
    policy = policy or "Always"
    if sidecar:
        return True
    if init:
        return exit_code != 0 and policy != "Never"
    return policy == "Always" or (policy == "OnFailure" and exit_code != 0)
