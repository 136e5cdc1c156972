"""What a pod's kubelet needs from the container runtime, and nothing more: the narrow
interface between the kubelet loop (worker.py) and podman (local/runtime.py implements
it). The kubelet never imports the provider; the provider makes workers with its runtime.

Containers are named by the pod's `SandboxRef` and the container's name; `inspect_container`
returns the runtime's own inspection (podman's JSON: State, GraphDriver, LogPath).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Protocol

from ....models.podspec import Container, PodSpec
from ...sandbox import SandboxRef


class ContainerRuntime(Protocol):
    async def pull_image(self, c: Container, event: Callable[[str, str, str], None]) -> None:
        """Make the container's image present per its pull policy, as the kubelet's image
        manager: `event(type, reason, message)` records Pulling/Pulled; an ImagePullError says
        why it cannot."""

    async def create_container(self, ref: SandboxRef, spec: PodSpec, c: Container, *, network: str,
                               labels: dict[str, str], dns: list[str], new_pod: bool, init: bool,
                               pulled: bool = False, ephemeral: bool = False) -> None:
        """Create and start one container of the pod (the first one creates the pod).
        Idempotent; a ProviderError (ImagePullError...) names why it cannot. `pulled`: the
        image was just made present by `pull_image`."""

    async def inspect_container(self, ref: SandboxRef, container: str) -> dict | None:
        """The container's current inspection, or None if it does not exist."""

    async def start_container(self, ref: SandboxRef, container: str) -> None:
        """Start an existing container again; a ProviderError says why it cannot."""

    async def stop_container(self, ref: SandboxRef, container: str, grace: int) -> None:
        """SIGTERM, then SIGKILL after `grace` seconds; nothing if it is not running."""

    async def retire_container(self, ref: SandboxRef, container: str) -> bool:
        """Keep the container's last run aside (for `kubectl logs --previous`) so that a new
        one can be created under its name; False if it cannot be moved aside."""

    async def exec_command(self, ref: SandboxRef, container: str, command: list[str],
                           timeout: float) -> tuple[int, str]:
        """Run a command in a container to completion (exec probes): exit code and output."""

    async def pod_ip(self, ref: SandboxRef) -> str | None:
        """The pod's IP address (httpGet and tcpSocket probes' default target)."""

    async def pod_netns(self, ref: SandboxRef) -> str:
        """Path of the pod's network namespace, where probes connect from."""

    async def termination_message(self, ref: SandboxRef, c: Container, inspection: dict) -> str | None:
        """What the exited container left as its termination message (terminationMessagePath,
        FallbackToLogsOnError), read before its next run; None if nothing."""

    def volume_dir(self, ref: SandboxRef, volume: str) -> Path:
        """Where a local volume of the pod lives (its use counts toward ephemeral storage)."""
