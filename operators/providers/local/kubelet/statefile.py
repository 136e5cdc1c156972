"""What podman does not keep about a pod's containers (restart counts, the previous
termination, the back-off, the run whose postStart hook has run) and the pod's eviction, in a small JSON file per sandbox, so
that an operator restart resumes the kubelet where it was."""
from __future__ import annotations

import json
import logging
from pathlib import Path

from .backoff import BackOff
from .runs import ContainerRun, terminated_info

log = logging.getLogger(__name__)


def load(path: Path | None, runs: dict[str, ContainerRun]) -> str | None:
    """Restores `runs` from the file; returns the eviction message it holds, if any."""
    if not path or not path.exists():
        return None
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    for name, s in saved.get("containers", {}).items():
        cs = runs.get(name)
        if cs is None:
            continue
        cs.restarts = int(s.get("restarts", 0))
        cs.backoff = BackOff(s.get("delay"), s.get("last_restart"))
        cs.hooked_run = s.get("hooked_run")  # a resumed kubelet does not run postStart again
        if s.get("last_terminated"):
            cs.last_terminated = terminated_info(name, s["last_terminated"])
    return saved.get("evicted")


def save(path: Path | None, runs: dict[str, ContainerRun], evicted: str | None) -> None:
    if not path:
        return
    out = {}
    for cs in runs.values():
        lt = cs.last_terminated
        out[cs.name] = {"restarts": cs.restarts, "delay": cs.backoff.delay, "last_restart": cs.backoff.last_restart,
                        "hooked_run": cs.hooked_run,
                        "last_terminated": lt and {"exit_code": lt.exit_code, "reason": lt.reason,
                                                   "message": lt.message, "started_at": lt.started_at,
                                                   "finished_at": lt.finished_at}}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"containers": out, "evicted": evicted}))
        tmp.replace(path)
    except OSError as exc:
        log.warning("saving kubelet state to %s: %s", path, exc)
