"""Pod and container securityContext, as far as sandboxes honour it.

Every core/v1 field is modelled, so that none is pruned silently by the SandboxPod schema:
what a sandbox honours is passed on (providers/local/security.py), what it cannot honour
without weakening the sandbox is refused here by a CEL rule naming the field, exactly as the
tenant admission policy (serverlesscluster/compatibility.yaml) refuses it for tenant pods.
The allow-lists below are shared with both.
"""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from .base import K8sModel, cel

# The container runtimes' default capability set (containerd's, which podman's matches and
# the sk8s containers.conf pins): what a container gets without capabilities.add.
DEFAULT_CAPABILITIES = ("AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
                        "NET_BIND_SERVICE", "NET_RAW", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT")
# What capabilities.add may grant: the default set, plus two that act only inside the
# container's own namespaces and memory cgroup. Everything else reaches kernel state shared
# with the host and every other tenant (SYS_ADMIN, NET_ADMIN's netfilter, SYS_MODULE,
# SYS_TIME, DAC_READ_SEARCH's open_by_handle_at, BPF, ...) and is refused.
ADDABLE_CAPABILITIES = DEFAULT_CAPABILITIES + ("IPC_LOCK", "SYS_PTRACE")
# The kubelet's safe sysctls (pkg/kubelet/sysctl/safe_sysctls.go): namespaced per pod and
# without effect on any other pod. Every other sysctl is refused, as a kubelet without
# --allowed-unsafe-sysctls refuses it.
SAFE_SYSCTLS = ("kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.tcp_syncookies",
                "net.ipv4.ping_group_range", "net.ipv4.ip_unprivileged_port_start",
                "net.ipv4.ip_local_reserved_ports", "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout",
                "net.ipv4.tcp_keepalive_intvl", "net.ipv4.tcp_keepalive_probes", "net.ipv4.tcp_rmem",
                "net.ipv4.tcp_wmem", "net.ipv4.tcp_slow_start_after_idle", "net.ipv4.tcp_notsent_lowat")

MAX_ID = 2147483647  # the apiserver's IsValidUserID / IsValidGroupID


def cel_list(values: tuple[str, ...]) -> str:
    return "[" + ", ".join(f"'{v}'" for v in values) + "]"


# A capability name as the runtimes read it: any case, with or without CAP_.
CEL_CAP = "(c.upperAscii().startsWith('CAP_') ? c.upperAscii().substring(4) : c.upperAscii())"


CapabilityName = Annotated[str, Field(min_length=1, max_length=64)]


def _id(description: str):
    return Field(default=None, ge=0, le=MAX_ID, description=description)


class Capabilities(K8sModel):
    add: list[CapabilityName] | None = Field(
        default=None, max_length=64, description="Capabilities added to the default set.",
        json_schema_extra={"x-kubernetes-validations": [cel(
            f"self.all(c, {CEL_CAP} in {cel_list(ADDABLE_CAPABILITIES)})",
            "only these capabilities can be added in a sandbox: " + ", ".join(ADDABLE_CAPABILITIES)
            + "; the others reach kernel state shared with other tenants")]})
    drop: list[CapabilityName] | None = Field(default=None, max_length=64, description="Capabilities removed; ALL for every one.")


class SeccompProfile(K8sModel):
    type: Literal["RuntimeDefault", "Unconfined", "Localhost"] = Field(description="RuntimeDefault only.")
    localhostProfile: str | None = None


class AppArmorProfile(K8sModel):
    type: Literal["RuntimeDefault", "Unconfined", "Localhost"] = Field(description="RuntimeDefault only.")
    localhostProfile: str | None = None


class SELinuxOptions(K8sModel):
    user: str | None = None
    role: str | None = None
    type: str | None = None
    level: str | None = None


class WindowsSecurityContextOptions(K8sModel):
    gmsaCredentialSpecName: str | None = None
    gmsaCredentialSpec: str | None = None
    runAsUserName: str | None = None
    hostProcess: bool | None = None


class Sysctl(K8sModel):
    name: str = Field(min_length=1, max_length=253, description="Name, dots or slashes as separators.")
    # podman reads --sysctl as CSV: a comma or quote would split or garble the value.
    value: str = Field(description="Value to set; no comma, quote or control character.",
                       pattern=r'^[^,"\x00-\x1f\x7f]*$')


_SECCOMP = cel("self.type == 'RuntimeDefault'",
               "only RuntimeDefault: sandboxes share the host kernel, and the runtime's seccomp filter is "
               "part of their confinement (Unconfined would widen it; there are no Localhost profiles)")
_APPARMOR = cel("self.type == 'RuntimeDefault'",
                "only RuntimeDefault: there are no Localhost profiles, and Unconfined would weaken the sandbox")
_NO_SELINUX = cel("!has(self.seLinuxOptions)", "seLinuxOptions: not supported: sandboxes have no SELinux labels "
                  "to give", field_path=".seLinuxOptions")
_NO_WINDOWS = cel("!has(self.windowsOptions)", "windowsOptions: not supported: sandboxes are Linux",
                  field_path=".windowsOptions")


def _profile(kind: str, rule: dict):
    return Field(default=None, description=f"{kind} profile; RuntimeDefault (the default) only.",
                 json_schema_extra={"x-kubernetes-validations": [rule]})


class SecurityContext(K8sModel):
    """A container's securityContext; its fields override the pod's."""

    runAsUser: int | None = _id("UID the container runs as; the image's user if unset.")
    runAsGroup: int | None = _id("Primary GID; the image's if unset.")
    runAsNonRoot: bool | None = Field(default=None, description="Refuse to start as UID 0.")
    readOnlyRootFilesystem: bool | None = None
    allowPrivilegeEscalation: bool | None = Field(default=None, description="false sets no_new_privs.")
    privileged: bool | None = Field(default=None, description="Never true: refused.",
                                    json_schema_extra={"x-kubernetes-validations": [cel(
                                        "!self", "privileged containers are not supported: one could leave "
                                        "its sandbox")]})
    capabilities: Capabilities | None = None
    seccompProfile: SeccompProfile | None = _profile("Seccomp", _SECCOMP)
    appArmorProfile: AppArmorProfile | None = _profile("AppArmor", _APPARMOR)
    seLinuxOptions: SELinuxOptions | None = None
    windowsOptions: WindowsSecurityContextOptions | None = None
    procMount: Literal["Default", "Unmasked"] | None = Field(
        default=None, description="Default only (the runtime's masked and read-only /proc paths).",
        json_schema_extra={"x-kubernetes-validations": [cel(
            "self == 'Default'", "only Default: Unmasked needs a user namespace (hostUsers: false), which "
            "sandboxes do not have")]})


SECURITY_CONTEXT_SCHEMA = {"x-kubernetes-validations": [_NO_SELINUX, _NO_WINDOWS]}


class PodSecurityContext(K8sModel):
    """Pod-wide security attributes; a container's securityContext overrides the shared ones."""

    runAsUser: int | None = _id("UID of every container that does not set its own.")
    runAsGroup: int | None = _id("Primary GID of every container that does not set its own.")
    runAsNonRoot: bool | None = None
    fsGroup: int | None = _id("Group that owns the pod's writable volumes (setgid), added to every container.")
    fsGroupChangePolicy: Literal["OnRootMismatch", "Always"] | None = None
    supplementalGroups: list[Annotated[int, Field(ge=0, le=MAX_ID)]] | None = Field(
        default=None, max_length=64, description="GIDs added to every container's process.")
    supplementalGroupsPolicy: Literal["Merge", "Strict"] | None = Field(
        default=None, description="Merge only (the image's /etc/group memberships are kept).",
        json_schema_extra={"x-kubernetes-validations": [cel(
            "self == 'Merge'", "only Merge: the runtime always adds the image's group memberships")]})
    sysctls: list[Sysctl] | None = Field(
        default=None, max_length=64, description="Namespaced sysctls of the kubelet's safe set.",
        json_schema_extra={"x-kubernetes-validations": [cel(
            f"self.all(s, s.name.replace('/', '.') in {cel_list(SAFE_SYSCTLS)})",
            "only the kubelet's safe sysctls can be set: " + ", ".join(SAFE_SYSCTLS))]})
    seccompProfile: SeccompProfile | None = _profile("Seccomp", _SECCOMP)
    appArmorProfile: AppArmorProfile | None = _profile("AppArmor", _APPARMOR)
    seLinuxOptions: SELinuxOptions | None = None
    seLinuxChangePolicy: Literal["Recursive", "MountOption"] | None = Field(
        default=None, description="Accepted; sandboxes have no SELinux labels to apply.")
    windowsOptions: WindowsSecurityContextOptions | None = None
