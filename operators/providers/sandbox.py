"""What providers and operators say about sandboxes, in provider-neutral terms: the
identity of one sandbox (`SandboxRef`), its reported state (`SandboxInstance` with
`ContainerInfo`s) and the sink through which a provider's kubelet reports events."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable


@dataclass(frozen=True)
class SandboxRef:
    """Identity of one sandbox: the SandboxPod's uid is the idempotency key."""

    namespace: str
    name: str
    uid: str

    @property
    def instance_name(self) -> str:
        return f"sk8s-{self.uid}"


@dataclass
class ContainerInfo:
    name: str
    state: str  # "waiting" | "running" | "terminated"
    reason: str | None = None
    message: str | None = None
    exit_code: int | None = None
    started_at: str | None = None
    finished_at: str | None = None
    restart_count: int = 0
    image: str | None = None
    image_id: str | None = None
    container_id: str | None = None
    # Set where the provider runs probes itself (the local kubelet); None: follow the state.
    ready: bool | None = None
    started: bool | None = None
    last_state: "ContainerInfo | None" = None  # the previous run's termination, after a restart


@dataclass
class SandboxInstance:
    """What the provider reports about one sandbox, in provider-neutral terms."""

    ref: SandboxRef
    instance_id: str
    state: str  # "creating" | "running" | "exited" | "failed" | "unknown"
    ip: str | None = None
    host_ip: str | None = None
    started_at: str | None = None
    containers: list[ContainerInfo] = field(default_factory=list)
    init_containers: list[ContainerInfo] = field(default_factory=list)
    ephemeral_containers: list[ContainerInfo] = field(default_factory=list)  # added by `kubectl debug`
    reason: str | None = None
    message: str | None = None


# (sandbox, type, reason, message[, field_path=...]): how a provider's kubelet part reports
# events (Unhealthy, BackOff, Killing, Pulled, Created, Started...); `field_path` names the
# container, as the kubelet's container events do (`spec.containers{app}`), so that the
# same message of two containers stays two events. Given to the provider when it is made.
EventSink = Callable[..., None]
