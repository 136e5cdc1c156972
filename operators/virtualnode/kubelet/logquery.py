"""`GET /containerLogs` query -> the provider's `ContainerLogOpts`, as the kubelet's (and
virtual-kubelet's node/api) log handler parses it: every option the apiserver passes on
(follow, tailLines, previous, timestamps, sinceSeconds, sinceTime, limitBytes) is read,
and a value that is not one of the option's type is refused with the option named,
never ignored. Pure."""
from __future__ import annotations

import datetime as dt
from typing import Mapping

from ...providers.logopts import ContainerLogOpts

# strconv.ParseBool, which the apiserver's query conversion uses.
_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_FALSE = ("0", "f", "F", "FALSE", "false", "False")


class LogQueryError(ValueError):
    """A bad query value; the message names the option (an HTTP 400)."""


def _bool(query: Mapping[str, str], name: str) -> bool:
    raw = query.get(name)
    if raw is None or raw == "" or raw in _FALSE:
        return False
    if raw in _TRUE:
        return True
    raise LogQueryError(f"{name}: invalid boolean {raw!r}")


def _int(query: Mapping[str, str], name: str) -> int | None:
    raw = query.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise LogQueryError(f"{name}: invalid integer {raw!r}") from None


def _time(query: Mapping[str, str], name: str) -> dt.datetime | None:
    raw = query.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = dt.datetime.fromisoformat(raw)
    except ValueError:
        value = None
    if value is None or value.tzinfo is None or "T" not in raw.upper():
        raise LogQueryError(f"{name}: invalid RFC 3339 time {raw!r}")
    return value


def log_options(query: Mapping[str, str]) -> ContainerLogOpts:
    """The options of one log request; LogQueryError names a bad one."""
    try:
        return ContainerLogOpts(
            follow=_bool(query, "follow"), tail=_int(query, "tailLines"), previous=_bool(query, "previous"),
            timestamps=_bool(query, "timestamps"), since_seconds=_int(query, "sinceSeconds"),
            since_time=_time(query, "sinceTime"), limit_bytes=_int(query, "limitBytes"))
    except LogQueryError:
        raise
    except ValueError as exc:  # the options' own checks (ranges, sinceTime with sinceSeconds)
        raise LogQueryError(str(exc)) from None
