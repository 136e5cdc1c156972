"""Pure builders: a PodSpec container -> the `podman run` arguments that start it.

Tenant values are data, never options: every option that carries one is a single
`--option=value` argument, the image and what follows it come after `--`, and a value
that podman would split (its list options cut at commas) or that execve cannot carry is
refused with the field named (execlimits.py).
"""
from __future__ import annotations

import json
from pathlib import Path

# The local provider's short names for its podman labels (keys in models/contracts.py).
from ...models.contracts import (LABEL_CONTAINER, LABEL_CONTAINER_IMAGE as LABEL_IMAGE,
                                 LABEL_EPHEMERAL_CONTAINER as LABEL_EPHEMERAL, LABEL_INIT_CONTAINER as LABEL_INIT, LABEL_SANDBOX_NAME as LABEL_NAME,
                                 LABEL_SANDBOX_NAMESPACE as LABEL_NAMESPACE, LABEL_SANDBOX_UID as LABEL_UID,
                                 REASON_CONFIG_ERROR)
from ...models.podspec import Container, PodSpec
from ...quantity import cpu_cores, memory_bytes
from ..errors import InvalidSpecError
from ..podrules import kernel_hostname, pull_policy
from ..sandbox import SandboxRef
from . import execlimits, termlog
from .security import security_args
from .volumes import default_root, mount_args

# kubelet semantics: Always re-checks the registry, IfNotPresent uses local storage first.
PULL = {"Always": "newer", "IfNotPresent": "missing", "Never": "never"}


def container_name(ref: SandboxRef, container: str) -> str:
    return f"{ref.instance_name}-{container}"


def previous_container_name(ref: SandboxRef, container: str) -> str:
    """The container's previous run, kept after a restart for `kubectl logs --previous`."""
    return f"{container_name(ref, container)}--previous"




def resource_args(c: Container) -> list[str]:
    args: list[str] = []
    res = c.resources
    if not res:
        return args
    limits, requests = res.limits or {}, res.requests or {}
    try:
        if "memory" in limits:
            args.append(f"--memory={memory_bytes(limits['memory'])}")
        if "cpu" in limits:
            args.append(f"--cpus={cpu_cores(limits['cpu']):.3f}")
        if "cpu" in requests:
            args.append(f"--cpu-shares={max(2, int(cpu_cores(requests['cpu']) * 1024))}")
    except ValueError as exc:
        raise InvalidSpecError(f"container {c.name}: {exc}") from exc
    return args


def env_args(c: Container, ref: SandboxRef, late: dict[str, str] | None = None,
             service_env: list | None = None) -> list[str]:
    """`late`: values of status.podIP and the like, once the pod has its network (podenv.py);
    `service_env`: the pod's service variables, first, for the names the container leaves free."""
    field_values = {"metadata.name": ref.name, "metadata.namespace": ref.namespace, "metadata.uid": ref.uid,
                    **(late or {})}
    own = {e.name for e in c.env or []}
    args = [f"--env={e.name}={e.value}" for e in service_env or [] if e.name not in own]
    for e in c.env or []:
        if e.valueFrom is None:
            args.append(f"--env={e.name}={e.value or ''}")
        elif e.valueFrom.fieldRef and e.valueFrom.fieldRef.fieldPath in field_values:
            args.append(f"--env={e.name}={field_values[e.valueFrom.fieldRef.fieldPath]}")
        else:
            raise InvalidSpecError(
                f"container {c.name}: env {e.name}: this valueFrom source is not supported on a SandboxPod",
                reason=REASON_CONFIG_ERROR)
    return args


def dns_args(spec: PodSpec, vpc_resolver: str | None) -> list[str]:
    """The pod's resolv.conf, as the kubelet writes it: ClusterFirst puts the cluster's
    resolver (here the VPC's, serving the private zone) before dnsConfig's entries."""
    policy = spec.dnsPolicy or "ClusterFirst"
    cfg = spec.dnsConfig
    servers = list(cfg.nameservers or []) if cfg else []
    if policy == "ClusterFirst" and vpc_resolver:
        servers = [vpc_resolver] + servers
    args = [f"--dns={_list_item(s, 'dnsConfig.nameservers')}" for s in servers[:3]]
    args += [f"--dns-search={_list_item(d, 'dnsConfig.searches')}" for d in (cfg.searches or [] if cfg else [])][:32]
    for o in (cfg.options or []) if cfg else []:
        option = o.name if o.value is None else f"{o.name}:{o.value}"
        args.append(f"--dns-option={_list_item(option, 'dnsConfig.options')}")
    return args


def _list_item(value: str, field: str) -> str:
    """A value for one of podman's list options, which split their value at commas (and
    read quotes): one that would split, or add a line to the pod's resolv.conf, is refused."""
    if not value or any(ch in value for ch in ',"') or any(ch.isspace() or not ch.isprintable() for ch in value):
        raise InvalidSpecError(f"spec.{field}: Invalid value: {value!r}: empty, or a comma, quote or white space",
                               reason=REASON_CONFIG_ERROR)
    return value


def run_args(ref: SandboxRef, spec: PodSpec, c: Container, *, network: str, labels: dict[str, str],
             new_pod: bool, init: bool = False, dns: list[str] | None = None,
             volume_root: Path | None = None, late_env: dict[str, str] | None = None,
             subpaths: dict[int, str] | None = None, image_user: str | None = None,
             termination_log: Path | None = None, pulled: bool = False, ephemeral: bool = False) -> list[str]:
    """`podman run` arguments for one container; the first one creates the pod. `subpaths`:
    the bind mounts of its subPaths, made by volumes.prepare_subpaths just before;
    `termination_log`: the provider's file for its terminationMessagePath (termlog.py);
    `ephemeral`: a container added to the running pod by `kubectl debug` (its
    targetContainerName's processes shared)."""
    args = ["run", "--detach", f"--name={container_name(ref, c.name)}"]
    if new_pod:
        args += [f"--pod=new:{ref.instance_name}", f"--network={network}",
                 f"--hostname={kernel_hostname(ref, spec)}"]
        args += dns or []
    else:
        args.append(f"--pod={ref.instance_name}")
    args += label_args(ref, c, labels, init=init, ephemeral=ephemeral)
    args += pid_args(ref, spec, c, ephemeral=ephemeral)
    args += [
        # The provider's kubelet restarts containers, with the kubelet's back-off: podman's
        # own policy would restart at once, forever, without CrashLoopBackOff.
        "--restart=no",
        f"--stop-timeout={spec.terminationGracePeriodSeconds if spec.terminationGracePeriodSeconds is not None else 30}",
        # With `image_user` or `pulled`, the provider has just pulled per the policy (the
        # kubelet's Pulled event; the image's USER).
        f"--pull={PULL[pull_policy(c)] if image_user is None and not pulled else 'missing'}",
        "--log-driver=k8s-file",
    ]
    args += resource_args(c)
    args += security_args(spec, c, image_user, f"{ref.name}_{ref.namespace}({ref.uid})")  # security.py
    args += env_args(c, ref, late_env, spec.serviceEnv)
    if c.volumeMounts:
        args += mount_args(ref, spec, c, volume_root or default_root(), subpaths)
    args += termlog.mount_args(c, termination_log)
    if c.workingDir:
        args.append(f"--workdir={c.workingDir}")
    if c.tty:
        args.append("--tty")
    if c.stdin:
        args.append("--interactive")
    if c.command:
        # Kubernetes' command replaces the image ENTRYPOINT, and with it the image CMD.
        # Always a JSON array: a plain string that happens to be JSON would be read as one.
        args.append(f"--entrypoint={json.dumps(c.command)}")
    # After `--` nothing is an option: the image is the first positional argument, and
    # podman passes everything after it to the container as it is.
    args += ["--", c.image, *(c.args or [])]
    check_list_options(c, args)
    execlimits.check(c, args)
    return args


def label_args(ref: SandboxRef, c: Container, labels: dict[str, str], *, init: bool, ephemeral: bool) -> list[str]:
    """The container's podman labels: the sandbox, the container's name, image and kind."""
    all_labels = dict(labels)
    # The image as the spec named it (podman's ImageName may be normalized): a running
    # container whose pod now names another is replaced (kubelet/worker.py, change_images).
    all_labels.update({LABEL_NAMESPACE: ref.namespace, LABEL_NAME: ref.name, LABEL_UID: ref.uid,
                       LABEL_CONTAINER: c.name, LABEL_IMAGE: c.image})
    if init:
        all_labels[LABEL_INIT] = "true"
    if ephemeral:  # reported apart (status.py): it makes no phase and is never restarted
        all_labels[LABEL_EPHEMERAL] = "true"
    return [f"--label={k}={v}" for k, v in sorted(all_labels.items())]


def pid_args(ref: SandboxRef, spec: PodSpec, c: Container, *, ephemeral: bool) -> list[str]:
    """catatonit as PID 1: SIGTERM reaches the app even when it is a shell or busybox. With
    shareProcessNamespace the pod's infra process is PID 1 of all its containers instead
    (podman refuses --init there), as the kubelet's pause. A debug container with a target
    (`kubectl debug --target`) joins the target's pid namespace, whose PID 1 is the
    target's own init, as the kubelet's."""
    if spec.shareProcessNamespace:
        return []
    target = getattr(c, "targetContainerName", None) if ephemeral else None
    if target and target not in {t.name for t in spec.containers}:
        raise InvalidSpecError(f"ephemeral container {c.name}: targetContainerName: {target!r} is not a container "
                               "of the pod", reason=REASON_CONFIG_ERROR)
    if target:
        return [f"--pid=container:{container_name(ref, target)}"]
    return ["--init"]


# podman's list options (pflag StringSlice) cut their value at commas and read quotes as
# CSV: one value would become several (a second sysctl, capability, group or host entry).
LIST_OPTIONS = ("--add-host=", "--cap-add=", "--cap-drop=", "--dns=", "--dns-option=", "--dns-search=",
                "--group-add=", "--sysctl=")


def check_list_options(c: Container, args: list[str]) -> None:
    """The last word on every builder's list options (securityContext's too): each value one item."""
    for arg in args[:args.index("--") if "--" in args else len(args)]:
        if arg.startswith(LIST_OPTIONS):
            option, value = arg.split("=", 1)
            # A space is kept by the CSV reading, and sysctl values need it ("1024 65000").
            spaces = " " if option == "--sysctl" else ""
            if any(ch in value for ch in ',"') or any((ch.isspace() and ch not in spaces) or not ch.isprintable()
                                                      for ch in value):
                raise InvalidSpecError(f"container {c.name}: {option[2:]} {value!r}: a comma, quote or white space "
                                       "would make it several values", reason=REASON_CONFIG_ERROR)
