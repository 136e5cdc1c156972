"""Termination messages as the kubelet keeps them (kuberuntime_container.go,
getTerminationMessage / readLastStringFromContainerLogs).

A container with a `terminationMessagePath` gets a file of the provider's own bind-mounted
there, `<volumes>/<sandbox uid>/.termination-log/<container>`, made afresh (empty, mode
0666 as the kubelet's, so any user of the image can write it) before each run. The
tenant chooses only where the file appears inside its own container: the host side is
always this path, which no container sees as a directory, so no value of the path can
make the provider write or read a host file (and runc resolves the destination inside the
container's root). When the container has exited, its last 4096 bytes are the message;
with FallbackToLogsOnError, a failed container that wrote nothing gets the tail of its log
instead (the last 80 lines, at most 2048 bytes). The file is read without following a
symlink, and only if it is a regular file.

`check_path`, `mount_args`, `needs_logs`, `log_tail` and `k8s_file_lines` are pure; `prepare`,
`read_file` and `read_log` do the I/O.
"""
from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from ...models.contracts import REASON_CONFIG_ERROR
from ...models.podspec import Container
from ..errors import InvalidSpecError
from ..sandbox import SandboxRef

DIR = ".termination-log"  # not a DNS label: no volume can be called so
MAX_MESSAGE = 4096        # kubecontainer.MaxContainerTerminationMessageLength
LOG_LINES = 80            # MaxContainerTerminationMessageLogLines
LOG_BYTES = 2048          # MaxContainerTerminationMessageLogLength
_LOG_READ = 64 * 1024     # enough of a log file's end for 80 lines of the tail that counts
_BAD = re.compile(r"[:,\x00-\x1f\x7f]")


def check_path(c: Container) -> str | None:
    """The container's terminationMessagePath, if any: absolute, and nothing podman's
    `--volume` would split at (the schema says so too; a SandboxPod is checked again)."""
    path = c.terminationMessagePath
    if not path:
        return None
    if not path.startswith("/") or _BAD.search(path) or len(path) > 4096:
        raise InvalidSpecError(f"container {c.name}: terminationMessagePath: Invalid value: {path!r}: must be an "
                               "absolute path without ':', ',' or control characters", reason=REASON_CONFIG_ERROR)
    return path


def host_file(root: Path, ref: SandboxRef, container: str) -> Path:
    return root / ref.uid / DIR / container


def mount_args(c: Container, source: Path | None) -> list[str]:
    path = check_path(c)
    return [f"--volume={source}:{path}:rw"] if path and source is not None else []


def needs_logs(policy: str | None, exit_code: int, written: str | None) -> bool:
    """FallbackToLogsOnError: a failed container whose file is empty or absent."""
    return policy == "FallbackToLogsOnError" and exit_code != 0 and not written


def log_tail(entries: list[str]) -> str:
    """The last 80 lines of the log, then the last 2048 bytes of those."""
    text = "".join(entries[-LOG_LINES:]).encode()
    return text[-LOG_BYTES:].decode(errors="replace")


def k8s_file_lines(data: bytes) -> list[str]:
    """Lines of podman's k8s-file log (`<time> <stream> <F|P> <text>`), partial ones joined;
    the first, maybe cut, line of a chunk is skipped by the caller."""
    out, partial = [], ""
    for raw in data.decode(errors="replace").splitlines():
        parts = raw.split(" ", 3)
        if len(parts) < 3:
            continue
        text = parts[3] if len(parts) > 3 else ""
        if parts[2] == "P":
            partial += text
            continue
        out.append(partial + text + "\n")
        partial = ""
    if partial:
        out.append(partial)
    return out


def log_path(inspection: dict) -> str:
    """Where podman keeps the container's k8s-file log (HostConfig.LogConfig.Path; podman's
    inspection has no top-level LogPath)."""
    return ((inspection.get("HostConfig") or {}).get("LogConfig") or {}).get("Path") or ""


# --- I/O -------------------------------------------------------------------------------

def prepare(root: Path, ref: SandboxRef, c: Container) -> Path | None:
    """A new, empty file for the container's next run (the last run's message is gone, as
    the kubelet's new container directory has none). None without terminationMessagePath."""
    if check_path(c) is None:
        return None
    d = root / ref.uid / DIR
    d.mkdir(parents=True, exist_ok=True)
    os.chmod(d, 0o755)
    f = d / c.name
    f.unlink(missing_ok=True)
    fd = os.open(f, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o666)
    try:
        os.fchmod(fd, 0o666)  # whatever the umask: the image's user may be anyone
    finally:
        os.close(fd)
    return f


def read_file(path: Path, limit: int = MAX_MESSAGE) -> str | None:
    """The file's last `limit` bytes; None if it is missing or not a regular file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None
        os.lseek(fd, max(0, st.st_size - limit), os.SEEK_SET)
        return os.read(fd, limit).decode(errors="replace")
    finally:
        os.close(fd)


def read_log(log_path: str) -> str:
    """The tail of a container's k8s-file log."""
    try:
        with open(log_path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - _LOG_READ))
            data = f.read()
    except OSError:
        return ""
    if size > _LOG_READ:
        data = data.split(b"\n", 1)[-1]  # the first line of the chunk may be cut
    return log_tail(k8s_file_lines(data))
