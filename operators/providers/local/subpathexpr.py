"""volumeMounts[].subPathExpr, expanded as the kubelet expands it when it makes a
container's mounts (kubecontainer.ExpandContainerVolumeMounts, kubelet_pods.go makeMounts):
`$(VAR)` from the container's own environment (downward API values included), every
variable defined and non-empty, and the result checked as the kubelet checks it, then
mounted exactly as a subPath (subpath.py's safe resolution). A refusal is the kubelet's
CreateContainerConfigError, with its message."""
from __future__ import annotations

from typing import Callable

from ...models.contracts import REASON_CONFIG_ERROR
from ...models.podspec import Container
from ..errors import ProviderError


def expand(text: str, mapping: Callable[[str], str]) -> str:
    """third_party/forked/golang/expansion.Expand: `$$` is `$`, `$(NAME)` is mapping(NAME),
    a `$(` never closed and `$` before anything else stay as written."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        if text[i] == "$" and i + 1 < n:
            nxt = text[i + 1]
            if nxt == "$":
                out.append("$")
                i += 2
            elif nxt == "(":
                end = text.find(")", i + 2)
                if end < 0:
                    out.append("$(")
                    i += 2
                else:
                    out.append(mapping(text[i + 2:end]))
                    i = end + 1
            else:
                out.append("$" + nxt)
                i += 2
            continue
        out.append(text[i])
        i += 1
    return "".join(out)


def expand_subpath(expr: str, env: dict[str, str]) -> str:
    """The subPath that `expr` names in `env`; ValueError with the kubelet's message."""
    missing: set[str] = set()

    def value(name: str) -> str:
        if not env.get(name):
            missing.add(name)
        return env.get(name, "")
    out = expand(expr, value)
    if missing:
        raise ValueError(f"missing value for {', '.join(sorted(missing))}")
    if out.startswith("/"):
        raise ValueError(f"error SubPath `{out}` must not be an absolute path")
    if ".." in out.split("/"):
        raise ValueError(f"unable to provision SubPath `{out}`: must not contain '..'")
    if "\0" in out:
        raise ValueError("subPath contains a NUL character")
    return out


def env_values(env_args: list[str]) -> dict[str, str]:
    """NAME -> value from podman `--env=NAME=value` arguments (the container's final environment)."""
    out = {}
    for a in env_args:
        name, _, value = a.removeprefix("--env=").partition("=")
        out[name] = value
    return out


def expanded(c: Container, env: dict[str, str]) -> Container:
    """The container with each subPathExpr replaced by the subPath it expands to."""
    if not any(m.subPathExpr for m in c.volumeMounts or []):
        return c
    mounts = []
    for m in c.volumeMounts or []:
        if m.subPathExpr:
            try:
                m = m.model_copy(update={"subPath": expand_subpath(m.subPathExpr, env), "subPathExpr": None})
            except ValueError as exc:
                raise ProviderError(str(exc), reason=REASON_CONFIG_ERROR) from exc
        mounts.append(m)
    return c.model_copy(update={"volumeMounts": mounts})
