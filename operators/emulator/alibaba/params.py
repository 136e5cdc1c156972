"""The RPC APIs' flat parameters read back into structures.

A list is spelled with 1-based indices in the key ("Container.1.EnvironmentVar.2.Key"),
a map with dotted names ("DnsConfig.NameServer.1"); some APIs take a JSON array in one
parameter instead ("ContainerGroupIds"). The SDKs send absent optional values of some
request classes as the string "None" and booleans as "True"/"False": readers here accept
what the SDK sends."""
from __future__ import annotations

import json
from typing import Any, Mapping

from .errors import invalid

# Parameters of the gateway, not of the API: removed before an API reads its own.
COMMON = frozenset({
    "Action", "Version", "Format", "RegionId", "Timestamp", "AccessKeyId", "Signature",
    "SignatureMethod", "SignatureVersion", "SignatureType", "SignatureNonce", "SecurityToken",
})
MAX_INDEX = 1000  # far above any API's list limit; bounds what a hostile key can allocate


def business(params: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in params.items() if k not in COMMON}


def _segments(key: str) -> list[str | int]:
    out: list[str | int] = []
    for part in key.split("."):
        if not part:
            raise invalid(key, "An empty name segment.")
        if part.isdigit():
            index = int(part)
            if not 1 <= index <= MAX_INDEX:
                raise invalid(key, f"List indices start at 1 and stop at {MAX_INDEX}.")
            out.append(index)
        else:
            out.append(part)
    return out


def _listify(node: Any, key: str) -> Any:
    """Dicts whose keys are all indices become lists in index order; mixing is refused."""
    if not isinstance(node, dict):
        return node
    kinds = {isinstance(k, int) for k in node}
    if kinds == {True, False}:
        raise invalid(key, "A name is used both as a list and as a structure.")
    if kinds == {True}:
        return [_listify(node[i], f"{key}.{i}") for i in sorted(node)]
    return {k: _listify(v, f"{key}.{k}" if key else k) for k, v in node.items()}


def unflatten(flat: Mapping[str, str]) -> dict[str, Any]:
    """{"Container.1.Name": "a", "Tag.1.Key": "k"} -> {"Container": [{"Name": "a"}], "Tag": [{"Key": "k"}]}."""
    root: dict = {}
    for key in sorted(flat):
        path = _segments(key)
        node = root
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise invalid(key, "A value is also used as a structure.")
            node = child
        if isinstance(node.get(path[-1]), dict):
            raise invalid(key, "A structure is also given a value.")
        node[path[-1]] = flat[key]
    return _listify(root, "")


def json_list(params: Mapping[str, str], name: str, limit: int | None = None) -> list[str] | None:
    """A parameter holding a JSON array of strings, or None when absent."""
    raw = params.get(name)
    if raw in (None, "", "None"):
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        raise invalid(name, "It is not a JSON array.") from None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise invalid(name, "It is not a JSON array of strings.")
    if limit is not None and len(value) > limit:
        raise invalid(name, f"At most {limit} values.")
    return value


def integer(params: Mapping[str, Any], name: str, default: int | None = None,
            low: int | None = None, high: int | None = None) -> int | None:
    raw = params.get(name)
    if raw in (None, "", "None"):
        return default
    try:
        value = int(str(raw))
    except ValueError:
        raise invalid(name, "It is not an integer.") from None
    if (low is not None and value < low) or (high is not None and value > high):
        raise invalid(name, f"It is out of range [{low}, {high}].")
    return value


def number(params: Mapping[str, Any], name: str, default: float | None = None) -> float | None:
    raw = params.get(name)
    if raw in (None, "", "None"):
        return default
    try:
        value = float(str(raw))
    except ValueError:
        raise invalid(name, "It is not a number.") from None
    if value < 0 or value != value or value == float("inf"):
        raise invalid(name, "It is not a non-negative number.")
    return value


def boolean(params: Mapping[str, Any], name: str, default: bool = False) -> bool:
    raw = params.get(name)
    if raw in (None, "", "None"):
        return default
    text = str(raw).lower()
    if text not in ("true", "false"):
        raise invalid(name, "It is not a boolean.")
    return text == "true"


def text(params: Mapping[str, Any], name: str) -> str | None:
    """A string parameter; the SDK's "None" for an unset one is absent."""
    raw = params.get(name)
    return None if raw in (None, "", "None") else str(raw)
