"""The kubelet's image events, in its 1.37 wording (pkg/kubelet/images/image_manager.go,
with KubeletEnsureSecretPulledImages on, its default since 1.35)."""
from __future__ import annotations


def go_duration(seconds: float) -> str:
    """A duration as Go prints a time.Duration truncated to milliseconds: 850ms, 1.5s, 2m3.25s."""
    ms = max(int(seconds * 1000), 0)
    if ms < 1000:
        return f"{ms}ms"
    minutes, ms = divmod(ms, 60_000)
    secs = f"{ms // 1000}.{ms % 1000:03d}".rstrip("0").rstrip(".")
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


def present_message(image: str) -> str:
    return f'Container image "{image}" already present on machine and can be accessed by the pod'


def pulling_message(image: str) -> str:
    return f'Pulling image "{image}"'


def pulled_message(image: str, pull_seconds: float, total_seconds: float, size: str) -> str:
    return (f'Successfully pulled image "{image}" in {go_duration(pull_seconds)} ({go_duration(total_seconds)} '
            f"including waiting). Image size: {size or 0} bytes.")
