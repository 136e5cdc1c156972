"""SandboxPod: one pod, run in its own sandbox by a provider."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from .base import KOPF_STATUS_FIELD, Condition, K8sModel, LocalObjectRef, cel
from .imageref import IMAGE_REFERENCE, MAX_IMAGE_LENGTH
from .podspec import DNS1123_LABEL, Container, PodSpec

PHASES = ("Pending", "Running", "Succeeded", "Failed", "Unknown")
PROVIDERS = ("local", "aliyun", "metapod")


class SandboxPodSpec(PodSpec):
    clusterRef: LocalObjectRef | None = Field(
        default=None, description="The ServerlessCluster (same namespace) this pod belongs to.")
    provider: Literal["local", "aliyun", "metapod"] | None = Field(
        default=None, description="Provider that runs the sandbox; defaults to the operator's. metapod: a Pod "
                                  "of the meta-cluster, on its nodes.")


class EphemeralContainer(Container):
    """A container added to a running sandbox (`kubectl debug`): never restarted, no probes."""

    targetContainerName: str | None = Field(
        default=None, max_length=63, pattern=DNS1123_LABEL,
        description="Share the process namespace of this container of the pod (`kubectl debug --target`).")


class ContainerImage(K8sModel):
    """A container's image as the pod says it now (changed in place: the container restarts)."""

    name: str = Field(min_length=1, max_length=63, pattern=DNS1123_LABEL,
                      description="A container or init container of spec.")
    image: str = Field(min_length=1, max_length=MAX_IMAGE_LENGTH, pattern=IMAGE_REFERENCE,
                       description="Its image from now on: [domain[:port]/]path[:tag][@digest].")


# Ephemeral containers are only ever added: an entry, once there, never changes or goes.
_APPEND_ONLY = cel("self.size() >= oldSelf.size() && oldSelf.all(o, self.exists(n, n == o))",
                   "ephemeralContainers may only be added to: existing entries never change")


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
    ephemeralContainerStatuses: list[ContainerStatus] | None = None
    provider: str | None = None
    instanceID: str | None = None
    observedGeneration: int | None = None
    kopf: dict | None = KOPF_STATUS_FIELD


class SandboxPod(K8sModel):
    """A pod that runs in a sandbox of its own on IaaS capacity."""

    spec: SandboxPodSpec = Field(json_schema_extra={"x-kubernetes-validations": [
        cel("self == oldSelf", "spec is immutable: delete and re-create the SandboxPod"),
    ]})
    ephemeralContainers: list[EphemeralContainer] | None = Field(
        default=None, max_length=16, description="Containers added to the running sandbox (`kubectl debug`); "
        "append-only, as a Pod's: the spec stays immutable.",
        json_schema_extra={"x-kubernetes-validations": [_APPEND_ONLY]})
    containerImages: list[ContainerImage] | None = Field(
        default=None, max_length=64, description="Images changed since the SandboxPod was made (the pod's "
        "spec.containers[*].image updated): each such container is restarted with its new image, as a kubelet "
        "does; the spec stays immutable.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]})
    status: SandboxPodStatus | None = None
