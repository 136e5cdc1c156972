"""Status conditions per the Kubernetes API conventions (pure functions)."""
from __future__ import annotations

import datetime as dt


def now_rfc3339() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def condition(type_: str, ok: bool | None, reason: str, message: str = "", *, generation: int | None,
              previous: list[dict] | None = None, now: str | None = None) -> dict:
    """A condition whose lastTransitionTime moves only when its status does."""
    status = "Unknown" if ok is None else ("True" if ok else "False")
    old = next((c for c in previous or [] if c.get("type") == type_), None)
    since = old["lastTransitionTime"] if old and old.get("status") == status and old.get(
        "lastTransitionTime") else (now or now_rfc3339())
    cond = {"type": type_, "status": status, "reason": reason, "message": message,
            "lastTransitionTime": since}
    if generation is not None:
        cond["observedGeneration"] = generation
    return cond
