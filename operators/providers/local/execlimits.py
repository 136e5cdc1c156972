"""What fits through execve(2): a container's environment, command and args reach podman,
and then the container's first process, as argv and environ strings.

Linux refuses (E2BIG, "Argument list too long") any single string longer than
MAX_ARG_STRLEN and a total beyond about a quarter of the stack limit. A pod over either
could never start: it is refused before podman is run, with a message that names the
container and the variable, instead of a podman that cannot even be executed.
"""
from __future__ import annotations

from ...models.contracts import REASON_CONFIG_ERROR
from ...models.podspec import Container
from ..errors import InvalidSpecError

MAX_ARG_STRLEN = 32 * 4096  # include/uapi/linux/binfmts.h, with its terminating NUL
# Of ARG_MAX (2 MiB with the usual 8 MiB stack), room is left for podman's own options
# and environment: everything a container puts on podman's command line stays below this.
MAX_TOTAL = 1 << 20
_POINTER = 8  # each string also takes a pointer in argv/envp

_ENV = "--env="


def _size(arg: str) -> int:
    return len(arg.encode(errors="surrogateescape")) + 1


def check(c: Container, args: list[str], *, max_total: int = MAX_TOTAL) -> None:
    """Raise CreateContainerConfigError when the `podman run` arguments of `c` cannot be
    executed, or carry a NUL byte (which no argv string can)."""
    for arg in args:
        what = _what(c, arg)
        if "\0" in arg:
            raise _error(f"{what} of container {c.name} contains a NUL byte")
        if _size(arg) > MAX_ARG_STRLEN:
            # Sizes as the user wrote them: NAME=value for a variable, without podman's prefix.
            prefix = len(_ENV) if arg.startswith(_ENV) else 0
            one = "variable" if prefix else "argument"
            raise _error(f"{what} of container {c.name} is {_size(arg) - 1 - prefix} bytes, over the limit of "
                         f"{MAX_ARG_STRLEN - 1 - prefix} bytes for one {one}")
    env = sum(_size(a) - len(_ENV) + _POINTER for a in args if a.startswith(_ENV))
    total = sum(_size(a) + _POINTER for a in args)
    if total > max_total:
        raise _error(f"environment of container {c.name} is {env} bytes and its command line "
                     f"{total - env} bytes, over the limit of {max_total} bytes together")


def _what(c: Container, arg: str) -> str:
    if arg.startswith(_ENV):
        return f"env {arg[len(_ENV):].split('=', 1)[0]}"
    if arg.startswith("--entrypoint="):
        return "command"
    if arg.startswith("--workdir="):
        return "workingDir"
    if c.args and arg in c.args:
        return f"args[{c.args.index(arg)}]"
    return "an argument"


def _error(message: str) -> InvalidSpecError:
    return InvalidSpecError(message, reason=REASON_CONFIG_ERROR)
