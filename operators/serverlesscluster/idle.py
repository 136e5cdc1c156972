"""When a tenant is idle: its apiserver's audit log records activity, and nothing else.

A tenant is idle when, for `spec.sleepAfterIdleSeconds`, nobody but its own control plane
made an API request and no pod changed. The audit policy below logs exactly those requests:
it drops the plane's own traffic (the operator's health checks, the controllers' and the
virtual node's reads, Node heartbeats and Leases, health and discovery URLs), while writes
by the controllers and the virtual node (a pod's status, an Endpoints change) stay, as they
are pod changes. So the log file's modification time is the last activity: the operator
reads one stat() per tick, never the log itself.

A sleeping plane's directory holds ASLEEP (what was running, whose it is); WOKEN is touched
at every wake, so that a tenant just woken is not idle from before its sleep.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import yaml

from .tenant_pki import OPERATOR_USER, VNODE_USER

AUDIT_LOG = "audit.log"
AUDIT_POLICY = "audit-policy.yaml"
ASLEEP = "asleep"
WOKEN = "woken"
DEFAULT_IDLE_SECONDS = 900

READS = ["get", "list", "watch"]


def audit_policy() -> dict:
    """Metadata level (no bodies: the log never holds a Secret) for activity only."""
    return {
        "apiVersion": "audit.k8s.io/v1", "kind": "Policy",
        "omitStages": ["RequestReceived"],
        "rules": [
            # The plane itself: the apiserver's loopback client, the operator's health checks,
            # the controller-manager's and scheduler's own identities.
            {"level": "None", "users": ["system:apiserver", OPERATOR_USER, "system:kube-controller-manager",
                                        "system:kube-scheduler"]},
            {"level": "None", "nonResourceURLs": ["*"]},
            # Heartbeats: the virtual node's Lease and Node status, and anyone's Events.
            {"level": "None", "resources": [{"group": "coordination.k8s.io", "resources": ["leases"]},
                                            {"group": "", "resources": ["events"]},
                                            {"group": "events.k8s.io", "resources": ["events"]}]},
            {"level": "None", "users": [VNODE_USER], "resources": [{"group": "", "resources": ["nodes",
                                                                                            "nodes/status"]}]},
            # Informers' reads: the virtual node's and the controllers' (service accounts of kube-system).
            {"level": "None", "users": [VNODE_USER], "verbs": READS},
            {"level": "None", "userGroups": ["system:serviceaccounts:kube-system"], "verbs": READS},
            {"level": "Metadata"},
        ],
    }


def audit_flags(directory: Path) -> list[str]:
    """The apiserver's audit log: small, rotated once (only its modification time matters)."""
    return [f"--audit-policy-file={directory / AUDIT_POLICY}", f"--audit-log-path={directory / AUDIT_LOG}",
            "--audit-log-maxsize=1", "--audit-log-maxbackup=1", "--audit-log-format=json"]


def write_policy(directory: Path) -> None:
    path = directory / AUDIT_POLICY
    text = yaml.safe_dump(audit_policy(), sort_keys=False)
    if not path.exists() or path.read_text() != text:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(path)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def last_activity(directory: Path) -> float:
    """When the tenant was last active (epoch seconds): its last audited request, its last
    wake, or its plane's claim, whichever is latest."""
    return max(_mtime(directory / AUDIT_LOG), _mtime(directory / WOKEN), _mtime(directory / "claimed-by"))


def idle_for(directory: Path, now: float | None = None) -> float:
    return max(0.0, (now if now is not None else time.time()) - last_activity(directory))


def sleep_blocker(cronjobs: list[dict], hpas: list[dict]) -> str | None:
    """Why this tenant must stay awake though idle: controllers that act on a clock or on
    metrics cannot while the controller-manager sleeps, and no request would wake it."""
    active = [c for c in cronjobs if not (c.get("spec") or {}).get("suspend")]
    if active:
        names = ", ".join(f"{c['metadata']['namespace']}/{c['metadata']['name']}" for c in active[:3])
        return f"it has CronJobs that must fire on time ({names})"
    if hpas:
        names = ", ".join(f"{h['metadata']['namespace']}/{h['metadata']['name']}" for h in hpas[:3])
        return f"it has HorizontalPodAutoscalers that must act on metrics ({names})"
    return None


def should_sleep(enabled: bool, idle_seconds: float, threshold: float, serving: bool) -> bool:
    """A Ready tenant that asked for it, idle for long enough."""
    return enabled and serving and idle_seconds >= threshold


def mark_asleep(directory: Path, components: list[str], namespace: str, name: str) -> None:
    tmp = directory / f"{ASLEEP}.tmp"
    tmp.write_text(json.dumps({"components": components, "namespace": namespace, "name": name,
                               "since": time.time()}))
    tmp.replace(directory / ASLEEP)


def asleep(directory: Path) -> dict | None:
    """What a sleeping plane ran and whose it is; None if it is awake."""
    try:
        return json.loads((directory / ASLEEP).read_text())
    except (FileNotFoundError, ValueError):
        return None


def mark_awake(directory: Path) -> None:
    (directory / WOKEN).touch()  # an existing file's mtime moves too
    (directory / ASLEEP).unlink(missing_ok=True)
