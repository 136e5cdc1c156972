"""The Kubernetes PodSpec shape, as far as sandboxes run it.

Field names and meanings follow core/v1 so that a tenant Pod's spec maps onto a
SandboxPod without translation. Fields that sk8s cannot honour are not modelled; the
compatibility checks at admission say so instead of silently dropping them.
"""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from .base import C_IDENTIFIER_ENV, DNS1123_LABEL, DNS1123_SUBDOMAIN, QUANTITY_PATTERN, K8sModel, cel, quantity
from .contracts import MAX_SERVICE_ENV
from .imageref import IMAGE_REFERENCE, MAX_IMAGE_LENGTH
from .volumes import MAX_VOLUMES, VOLUME_SCHEMA, Volume, VolumeMount
from .securitycontext import SECURITY_CONTEXT_SCHEMA, PodSecurityContext, SecurityContext


class KeySelector(K8sModel):
    name: str = Field(description="Name of the Secret or ConfigMap.", min_length=1)
    key: str = Field(description="Key to select.", min_length=1)
    optional: bool | None = None


class ObjectFieldSelector(K8sModel):
    fieldPath: str = Field(description="Path of the field to select, e.g. metadata.name.", min_length=1)
    apiVersion: str | None = None


class ResourceFieldSelector(K8sModel):
    resource: str = Field(description="limits.cpu, limits.memory, requests.cpu or requests.memory.",
                          min_length=1)
    containerName: str | None = None
    divisor: str | int | None = quantity("Output format of the exposed resources; unset or 0 means 1, as for the kubelet.")


class EnvVarSource(K8sModel):
    secretKeyRef: KeySelector | None = None
    configMapKeyRef: KeySelector | None = None
    fieldRef: ObjectFieldSelector | None = None
    resourceFieldRef: ResourceFieldSelector | None = None


class EnvVar(K8sModel):
    name: str = Field(description="Environment variable name.", min_length=1, pattern=C_IDENTIFIER_ENV)
    value: str | None = None
    valueFrom: EnvVarSource | None = None


class ContainerPort(K8sModel):
    containerPort: int = Field(description="Port the container listens on.", ge=1, le=65535)
    protocol: Literal["TCP", "UDP", "SCTP"] | None = Field(default="TCP", description="Protocol.")
    name: str | None = Field(default=None, max_length=15, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


class ResourceRequirements(K8sModel):
    limits: dict[str, str | int] | None = Field(
        default=None,
        description="Maximum resources (cpu, memory).",
        json_schema_extra={"additionalProperties": {"x-kubernetes-int-or-string": True,
                                                    "pattern": QUANTITY_PATTERN}},
    )
    requests: dict[str, str | int] | None = Field(
        default=None,
        description="Minimum resources (cpu, memory).",
        json_schema_extra={"additionalProperties": {"x-kubernetes-int-or-string": True,
                                                    "pattern": QUANTITY_PATTERN}},
    )


_UNIQUE_NAMES = cel(
    "self.all(c, self.exists_one(d, d.name == c.name))",
    "container names must be unique",
)
_ONE_VALUE_SOURCE = cel(
    "self.all(e, !(has(e.value) && has(e.valueFrom)))",
    "env: value and valueFrom are mutually exclusive",
)


class ExecAction(K8sModel):
    command: list[str] = Field(description="Command run inside the container; exit 0 is healthy.", min_length=1)


# Control characters (all of C0 but HTAB, and DEL) would end a header line or the request
# line and start another; Go's net/http refuses them as well.
NO_CONTROL_CHARS = r"^[^\x00-\x08\x0a-\x1f\x7f]*$"
# A probe connects only to the pod: its IP (host empty) or its own loopback, which is what
# these name inside the pod's network namespace, where probes run. No names: nothing is resolved.
PROBE_HOSTS = ("", "127.0.0.1", "::1", "localhost")
_POD_ONLY = {"x-kubernetes-validations": [cel(
    "self in " + "[" + ", ".join(f"'{h}'" for h in PROBE_HOSTS) + "]",
    "probes connect only to the pod itself: leave host empty (the pod IP) or use 127.0.0.1, ::1 or localhost")]}


class HTTPHeader(K8sModel):
    name: str = Field(description="Header name.", min_length=1, pattern=r"^[-A-Za-z0-9]+$")
    value: str = Field(description="Header value, without control characters.", pattern=NO_CONTROL_CHARS)


def _port(description: str):
    return Field(description=description, json_schema_extra={"x-kubernetes-int-or-string": True})


class HTTPGetAction(K8sModel):
    path: str | None = Field(default=None, description="Path to request; defaults to /.", pattern=NO_CONTROL_CHARS)
    port: int | str = _port("Port number or name of a container port.")
    host: str | None = Field(default=None, description="Empty (the pod IP) or a loopback address of the pod.",
                             max_length=9, pattern=r"^(|127\.0\.0\.1|::1|localhost)$", json_schema_extra=_POD_ONLY)
    scheme: Literal["HTTP", "HTTPS"] | None = Field(default=None, description="HTTP or HTTPS.")
    httpHeaders: list[HTTPHeader] | None = None


class TCPSocketAction(K8sModel):
    port: int | str = _port("Port number or name of a container port.")
    host: str | None = Field(default=None, description="Empty (the pod IP) or a loopback address of the pod.",
                             max_length=9, pattern=r"^(|127\.0\.0\.1|::1|localhost)$", json_schema_extra=_POD_ONLY)


class GRPCAction(K8sModel):
    port: int = Field(ge=1, le=65535, description="Port of the gRPC health service, on the pod's IP.")
    service: str | None = Field(default=None, max_length=1024, pattern=NO_CONTROL_CHARS,
                                description="The service name of the grpc.health.v1 HealthCheckRequest.")
    mode: Literal["Plaintext", "TLS"] | None = Field(
        default=None, description="Plaintext (the default) or TLS, whose certificate is not verified.")


class Probe(K8sModel):
    exec: ExecAction | None = None
    httpGet: HTTPGetAction | None = None
    tcpSocket: TCPSocketAction | None = None
    grpc: GRPCAction | None = None
    initialDelaySeconds: int | None = Field(default=None, ge=0, description="Seconds after start before probing.")
    timeoutSeconds: int | None = Field(default=None, ge=1, description="Seconds before a probe times out; 1.")
    periodSeconds: int | None = Field(default=None, ge=1, description="Seconds between probes; 10.")
    successThreshold: int | None = Field(default=None, ge=1, description="Successes in a row to pass; 1.")
    failureThreshold: int | None = Field(default=None, ge=1, description="Failures in a row to fail; 3.")
    terminationGracePeriodSeconds: int | None = Field(default=None, ge=1)


_ONE_HANDLER = cel(
    "[has(self.exec), has(self.httpGet), has(self.tcpSocket), has(self.grpc)].filter(x, x).size() == 1",
    "a probe needs exactly one of exec, httpGet, tcpSocket and grpc",
)


class SleepAction(K8sModel):
    seconds: int = Field(ge=0, le=3600, description="Seconds to sleep; bounded by the grace period for preStop.")


class LifecycleHandler(K8sModel):
    """A postStart or preStop hook, run by the sandbox's kubelet as upstream's: exec in the
    container, httpGet from inside the pod's network namespace to the pod itself, or sleep."""

    exec: ExecAction | None = None
    httpGet: HTTPGetAction | None = None
    sleep: SleepAction | None = None


_ONE_LIFECYCLE_HANDLER = {"x-kubernetes-validations": [cel(
    "[has(self.exec), has(self.httpGet), has(self.sleep)].filter(x, x).size() == 1",
    "a lifecycle handler needs exactly one of exec, httpGet and sleep")]}


class Lifecycle(K8sModel):
    postStart: LifecycleHandler | None = Field(
        default=None, json_schema_extra=_ONE_LIFECYCLE_HANDLER,
        description="Run right after the container starts; it is not started until this returns, and a failure "
                    "kills it (FailedPostStartHook).")
    preStop: LifecycleHandler | None = Field(
        default=None, json_schema_extra=_ONE_LIFECYCLE_HANDLER,
        description="Run before the container is stopped, within its termination grace period.")


# Where the container writes its termination message: a file the provider bind-mounts, so
# absolute, and without what podman's --volume would split at (":") or a line could carry.
TERMINATION_MESSAGE_PATH = r"^/[^:,\x00-\x1f\x7f]*$"


def _probe(kind: str):
    return Field(default=None, description=f"{kind} probe of the container.",
                 json_schema_extra={"x-kubernetes-validations": [_ONE_HANDLER]})


class Container(K8sModel):
    name: str = Field(description="Container name, a DNS-1123 label.", min_length=1, max_length=63,
                      pattern=DNS1123_LABEL)
    image: str = Field(description="Container image reference: [domain[:port]/]path[:tag][@digest].",
                       min_length=1, max_length=MAX_IMAGE_LENGTH, pattern=IMAGE_REFERENCE)
    command: list[str] | None = Field(default=None, description="Entrypoint array.")
    args: list[str] | None = Field(default=None, description="Arguments to the entrypoint.")
    workingDir: str | None = None
    env: list[EnvVar] | None = Field(default=None, description="Environment variables.", max_length=512,
                                     json_schema_extra={"x-kubernetes-validations": [_ONE_VALUE_SOURCE]})
    ports: list[ContainerPort] | None = Field(default=None, description="Ports to expose.", max_length=128)
    resources: ResourceRequirements | None = None
    imagePullPolicy: Literal["Always", "IfNotPresent", "Never"] | None = Field(
        default=None, description="Always, IfNotPresent or Never.")
    tty: bool | None = None
    stdin: bool | None = None
    restartPolicy: Literal["Always"] | None = Field(
        default=None, description="Always on an init container makes it a sidecar: started in order, then "
                                  "kept running (and restarted) alongside the containers.")
    livenessProbe: Probe | None = _probe("Liveness")
    readinessProbe: Probe | None = _probe("Readiness")
    startupProbe: Probe | None = _probe("Startup")
    volumeMounts: list[VolumeMount] | None = Field(default=None, description="Pod volumes to mount.",
                                                   max_length=MAX_VOLUMES)
    securityContext: SecurityContext | None = Field(default=None, json_schema_extra=SECURITY_CONTEXT_SCHEMA)
    lifecycle: Lifecycle | None = None
    terminationMessagePath: str | None = Field(
        default=None, max_length=4096, pattern=TERMINATION_MESSAGE_PATH,
        description="File the container may write; its content (up to 4096 bytes) becomes the termination "
                    "message. Unset: none (a tenant pod gets the API's /dev/termination-log).")
    terminationMessagePolicy: Literal["File", "FallbackToLogsOnError"] | None = Field(
        default=None, description="FallbackToLogsOnError: an empty message of a failed container is the tail "
                                  "of its log.")


# An IPv4 or IPv6 literal; podman and the pod's resolv.conf get nothing else as an address.
IP_LITERAL = r"^([0-9]{1,3}(\.[0-9]{1,3}){3}|[0-9a-fA-F]{0,4}(:[0-9a-fA-F]{0,4}){2,7}(:[0-9]{1,3}(\.[0-9]{1,3}){3})?)$"
# One word of a resolv.conf options line: podman's --dns-option splits at commas, and
# whitespace would start another option or line.
_DNS_OPTION_WORD = r'^[^\s,"]+$'


class PodDNSConfigOption(K8sModel):
    name: str = Field(min_length=1, max_length=64, pattern=_DNS_OPTION_WORD)
    value: str | None = Field(default=None, max_length=64, pattern=r'^[^\s,"]*$')


class PodDNSConfig(K8sModel):
    nameservers: list[Annotated[str, Field(pattern=IP_LITERAL, max_length=45)]] | None = Field(
        default=None, max_length=3)
    searches: list[Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\.?$",
                                        max_length=253)]] | None = Field(default=None, max_length=32)
    options: list[PodDNSConfigOption] | None = Field(default=None, max_length=16)


class ServiceEnvVar(K8sModel):
    name: str = Field(min_length=1, max_length=253, pattern=C_IDENTIFIER_ENV)
    value: str = Field(max_length=512)


class HostAlias(K8sModel):
    """One line of the pod's /etc/hosts, as core/v1 HostAlias."""

    ip: str = Field(description="IP address of the host file entry.", max_length=45, pattern=IP_LITERAL)
    hostnames: list[Annotated[str, Field(max_length=253, pattern=DNS1123_SUBDOMAIN)]] | None = Field(
        default=None, description="Hostnames for the IP address.", max_length=64)


class PodSpec(K8sModel):
    containers: list[Container] = Field(
        description="Containers of the pod; at least one.",
        min_length=1,
        max_length=32,
        json_schema_extra={"x-kubernetes-validations": [_UNIQUE_NAMES]},
    )
    initContainers: list[Container] | None = Field(
        default=None,
        description="Containers run in order, each to completion, before the containers start.",
        max_length=32,
        json_schema_extra={"x-kubernetes-validations": [_UNIQUE_NAMES]},
    )
    restartPolicy: Literal["Always", "OnFailure", "Never"] | None = Field(
        default="Always", description="Always, OnFailure or Never.")
    terminationGracePeriodSeconds: int | None = Field(
        default=30, ge=0, le=3600, description="Seconds between SIGTERM and SIGKILL on deletion.")
    hostname: str | None = Field(
        default=None, max_length=63, pattern=DNS1123_SUBDOMAIN,
        description="The pod's hostname: a DNS label, or a subdomain from a tenant pod's hostnameOverride.")
    setHostnameAsFQDN: bool | None = Field(
        default=None, description="With hostDomain: the kernel hostname is `<hostname>.<hostDomain>` (64 characters "
                                  "at most), as the kubelet sets it.")
    hostDomain: str | None = Field(
        default=None, max_length=189, pattern=DNS1123_SUBDOMAIN,
        description="The pod's domain (a tenant pod's `<subdomain>.<namespace>.svc.cluster.local`): /etc/hosts maps "
                    "the pod's IP to `<hostname>.<hostDomain>` and `<hostname>`, as the kubelet writes it.")
    serviceEnv: list[ServiceEnvVar] | None = Field(
        default=None, max_length=MAX_SERVICE_ENV,
        description="Service environment variables (`<SVC>_SERVICE_HOST`...), given to every container besides its "
                    "own env; a name the container defines itself keeps the container's value.")
    activeDeadlineSeconds: int | None = Field(default=None, ge=1)
    shareProcessNamespace: bool | None = Field(
        default=None, description="One pid namespace for the pod's containers, as the kubelet's: the pod's infra "
                                  "process is PID 1 and each container sees (and may signal) the others' processes.")
    dnsPolicy: Literal["ClusterFirst", "Default", "None"] | None = Field(
        default=None, description="ClusterFirst: the VPC resolver (private zones) plus dnsConfig; Default: the "
                                   "provider's resolver; None: only dnsConfig.")
    dnsConfig: PodDNSConfig | None = None
    hostAliases: list[HostAlias] | None = Field(
        default=None, description="Entries added to the pod's /etc/hosts after its own name.", max_length=64)
    volumes: list[Volume] | None = Field(default=None, description="Volumes the containers can mount.",
                                         max_length=MAX_VOLUMES, json_schema_extra=VOLUME_SCHEMA)
    securityContext: PodSecurityContext | None = Field(default=None, json_schema_extra=SECURITY_CONTEXT_SCHEMA)
    hostUsers: bool | None = Field(default=None, description="true only: sandboxes have no user namespaces.",
                                   json_schema_extra={"x-kubernetes-validations": [cel(
                                       "self", "hostUsers: false is not supported: sandboxes have no user "
                                       "namespaces")]})
