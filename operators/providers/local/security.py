"""Pure builders: a container's effective securityContext -> the `podman run` options that
enforce it, as the kubelet and a CRI runtime (containerd) do.

- User and groups: runAsUser/runAsGroup (the container's over the pod's, as the kubelet's
  DetermineEffectiveSecurityContext), fsGroup and supplementalGroups as supplementary groups.
- runAsNonRoot is verified against the effective UID, else the image's configured user,
  with the kubelet's own messages (pkg/kubelet/kuberuntime/security_context_others.go);
  the container is not created (CreateContainerConfigError).
- Capabilities as deltas of the runtime's default set (pinned in sk8s' containers.conf):
  podman makes explicitly added capabilities ambient for a non-root user, so listing the
  whole default set would give a non-root process capabilities it never has under a kubelet.
- seccomp: RuntimeDefault always (the kubelet's SeccompDefault); procMount Default (the
  runtime's masked and read-only /proc paths). Everything that would weaken the sandbox is
  refused at admission (models/securitycontext.py, compatibility.yaml); a spec that got past
  admission anyway is refused here too (InvalidSpec: the pod fails), never passed on or dropped.
  Only runAsNonRoot, which depends on the image, waits as the kubelet's
  CreateContainerConfigError does (the image may change under its tag).

Every value is one `--opt=value` argv element, so no user value can be read as an option.
"""
from __future__ import annotations

from ...models.contracts import REASON_CONFIG_ERROR
from ...models.podspec import Container, PodSpec
from ...models.securitycontext import ADDABLE_CAPABILITIES, SAFE_SYSCTLS
from ..errors import InvalidSpecError

CONFIG_ERROR = REASON_CONFIG_ERROR
# Pod-level fields a container's securityContext can override.
_SHARED = ("runAsUser", "runAsGroup", "runAsNonRoot", "seccompProfile", "appArmorProfile", "seLinuxOptions",
           "windowsOptions")


def effective(spec: PodSpec, c: Container) -> dict:
    """The container's securityContext over the pod's shared fields."""
    pod = spec.securityContext.model_dump(exclude_none=True) if spec.securityContext else {}
    out = {k: pod[k] for k in _SHARED if k in pod}
    if c.securityContext:
        out.update(c.securityContext.model_dump(exclude_none=True))
    return out


def capability(name: str) -> str:
    """A capability as the runtimes read it: any case, CAP_ optional."""
    name = name.upper()
    return name[4:] if name.startswith("CAP_") else name


def sysctl_name(name: str) -> str:
    """Kubernetes accepts / as the separator (net/ipv4/tcp_syncookies)."""
    return name.replace("/", ".")


def parse_image_user(user: str | None) -> tuple[int | None, str]:
    """The image's configured user (`USER uid[:gid]` or a name): (uid or None, user part)."""
    part = (user or "").split(":", 1)[0]
    if part == "":
        return 0, ""  # no USER: the image runs as root
    return (int(part), part) if part.isdigit() else (None, part)


def needs_image_user(spec: PodSpec, c: Container) -> bool:
    """Whether `security_args` needs the image's user: to verify runAsNonRoot, or to keep the
    image's user when only the group is overridden."""
    sc = effective(spec, c)
    return sc.get("runAsUser") is None and (bool(sc.get("runAsNonRoot")) or sc.get("runAsGroup") is not None)


def verify_run_as_non_root(spec: PodSpec, c: Container, image_user: str | None, pod: str) -> None:
    """The kubelet's verifyRunAsNonRoot; `pod` is its format.Pod (name_namespace(uid))."""
    sc = effective(spec, c)
    if not sc.get("runAsNonRoot"):
        return
    if sc.get("runAsUser") is not None:
        if sc["runAsUser"] == 0:
            raise InvalidSpecError(f"container's runAsUser breaks non-root policy (pod: \"{pod}\", "
                                   f"container: {c.name})", reason=CONFIG_ERROR, retryable=True)
        return
    uid, name = parse_image_user(image_user)
    if uid is None:
        raise InvalidSpecError(f"container has runAsNonRoot and image has non-numeric user ({name}), cannot "
                               f"verify user is non-root (pod: \"{pod}\", container: {c.name})",
                               reason=CONFIG_ERROR, retryable=True)
    if uid == 0:
        raise InvalidSpecError(f"container has runAsNonRoot and image will run as root (pod: \"{pod}\", "
                               f"container: {c.name})", reason=CONFIG_ERROR, retryable=True)


def _refuse(c: Container, field: str, why: str) -> InvalidSpecError:
    return InvalidSpecError(f"container {c.name}: securityContext.{field}: Forbidden: {why}")


def user_args(spec: PodSpec, c: Container, image_user: str | None) -> list[str]:
    sc = effective(spec, c)
    uid, gid = sc.get("runAsUser"), sc.get("runAsGroup")
    if uid is not None:
        return [f"--user={uid}" + (f":{gid}" if gid is not None else "")]
    if gid is not None:  # the image's user with another primary group, as containerd does
        _, name = parse_image_user(image_user)
        return [f"--user={name or '0'}:{gid}"]
    return []


def group_args(spec: PodSpec) -> list[str]:
    """fsGroup and supplementalGroups, added to every container's process (Merge policy)."""
    psc = spec.securityContext
    if psc is None:
        return []
    groups = ([psc.fsGroup] if psc.fsGroup is not None else []) + list(psc.supplementalGroups or [])
    if psc.supplementalGroupsPolicy not in (None, "Merge"):
        raise InvalidSpecError("securityContext.supplementalGroupsPolicy: Forbidden: only Merge is supported")
    return [f"--group-add={g}" for g in dict.fromkeys(groups)]


def capability_args(c: Container) -> list[str]:
    caps = c.securityContext.capabilities if c.securityContext else None
    if caps is None:
        return []
    drop = [capability(x) for x in caps.drop or []]
    add = [capability(x) for x in caps.add or []]
    bad = [x for x in add if x not in ADDABLE_CAPABILITIES]
    if bad:
        raise _refuse(c, "capabilities.add", f"{bad[0]} cannot be added in a sandbox")
    args = ["--cap-drop=all"] if "ALL" in drop else [f"--cap-drop=CAP_{x}" for x in dict.fromkeys(drop)]
    # As containerd: a capability both added and dropped is dropped (ALL only clears the
    # default set first; what is added explicitly is kept).
    args += [f"--cap-add=CAP_{x}" for x in dict.fromkeys(add) if x not in drop]
    return args


def confinement_args(spec: PodSpec, c: Container) -> list[str]:
    """no_new_privs, and a check that seccomp, AppArmor and /proc stay the runtime's defaults."""
    sc = effective(spec, c)
    for field in ("seccompProfile", "appArmorProfile"):
        kind = (sc.get(field) or {}).get("type", "RuntimeDefault")
        if kind != "RuntimeDefault":
            raise _refuse(c, f"{field}.type", f"{kind}: only RuntimeDefault is supported")
    for field in ("seLinuxOptions", "windowsOptions"):
        if field in sc:
            raise _refuse(c, field, "not supported in a sandbox")
    if sc.get("privileged"):
        raise _refuse(c, "privileged", "a privileged container could leave its sandbox")
    if sc.get("procMount", "Default") != "Default":
        raise _refuse(c, "procMount", "only Default is supported")
    # The kubelet sets no_new_privs only when allowPrivilegeEscalation is false.
    args = ["--security-opt=no-new-privileges"] if sc.get("allowPrivilegeEscalation") is False else []
    if sc.get("readOnlyRootFilesystem"):
        # podman would put writable tmpfs on /tmp, /var/tmp and /run; a kubelet does not.
        args += ["--read-only", "--read-only-tmpfs=false"]
    return args


def sysctl_args(spec: PodSpec) -> list[str]:
    """The pod's sysctls, on every container: they are namespaced, so setting one in the
    pod's shared network or IPC namespace again is the same value."""
    psc = spec.securityContext
    args = []
    for s in (psc.sysctls if psc else None) or []:
        name = sysctl_name(s.name)
        if name not in SAFE_SYSCTLS:
            raise InvalidSpecError(f"securityContext.sysctls[name={s.name}]: Forbidden: not a safe sysctl")
        if any(ch in s.value for ch in ',"') or not s.value.isprintable():
            # podman reads --sysctl as CSV: a comma or quote would split or garble the value.
            raise InvalidSpecError(f"securityContext.sysctls[name={s.name}].value: Invalid value: {s.value!r}: "
                                   "a comma, quote or control character cannot be passed to the runtime")
        args.append(f"--sysctl={name}={s.value}")
    return args


def security_args(spec: PodSpec, c: Container, image_user: str | None, pod: str = "") -> list[str]:
    """`podman run` options enforcing the container's securityContext. `image_user` is the
    image's configured user (needed when `needs_image_user`); `pod` names the pod in the
    kubelet's runAsNonRoot messages."""
    if spec.hostUsers is False:
        raise InvalidSpecError("hostUsers: Forbidden: sandboxes have no user namespaces")
    verify_run_as_non_root(spec, c, image_user, pod)
    return (user_args(spec, c, image_user) + group_args(spec) + capability_args(c) + confinement_args(spec, c)
            + sysctl_args(spec))
