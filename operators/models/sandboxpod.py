"""SandboxPod: one pod, run in its own sandbox by a provider."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from .base import KOPF_STATUS_FIELD, Condition, K8sModel, LocalObjectRef, cel
from .podspec import PodSpec

PHASES = ("Pending", "Running", "Succeeded", "Failed", "Unknown")
PROVIDERS = ("local", "aliyun")


class SandboxPodSpec(PodSpec):
    clusterRef: LocalObjectRef | None = Field(
        default=None, description="The ServerlessCluster (same namespace) this pod belongs to.")
    provider: Literal["local", "aliyun"] | None = Field(
        default=None, description="Provider that runs the sandbox; defaults to the operator's.")


class ContainerStateWaiting(K8sModel):
    reason: str | None = None
    message: str | None = None


class ContainerStateRunning(K8sModel):
    startedAt: str | None = None


class ContainerStateTerminated(K8sModel):
    exitCode: int
    reason: str | None = None
    message: str | None = None
    startedAt: str | None = None
    finishedAt: str | None = None


class ContainerState(K8sModel):
    waiting: ContainerStateWaiting | None = None
    running: ContainerStateRunning | None = None
    terminated: ContainerStateTerminated | None = None


class ContainerStatus(K8sModel):
    name: str
    image: str | None = None
    imageID: str | None = None
    containerID: str | None = None
    ready: bool = False
    started: bool | None = None
    restartCount: int = 0
    state: ContainerState | None = None
    lastState: ContainerState | None = None


class SandboxPodStatus(K8sModel):
    phase: Literal["Pending", "Running", "Succeeded", "Failed", "Unknown"] | None = None
    reason: str | None = None
    message: str | None = None
    conditions: list[Condition] | None = None
    podIP: str | None = None
    hostIP: str | None = None
    startTime: str | None = None
    initContainerStatuses: list[ContainerStatus] | None = None
    containerStatuses: list[ContainerStatus] | None = None
    provider: str | None = None
    instanceID: str | None = None
    observedGeneration: int | None = None
    kopf: dict | None = KOPF_STATUS_FIELD


class SandboxPod(K8sModel):
    """A pod that runs in a sandbox of its own on IaaS capacity."""

    spec: SandboxPodSpec = Field(json_schema_extra={"x-kubernetes-validations": [
        cel("self == oldSelf", "spec is immutable: delete and re-create the SandboxPod"),
    ]})
    status: SandboxPodStatus | None = None
