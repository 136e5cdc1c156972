"""Detached processes with pid files: they outlive an operator restart and are found again.

Used for tenant control planes in embedded mode. The supervisor's own children die with
it; these must not, because a ServerlessCluster keeps running while its operator restarts.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Sequence


class ProcessSet:
    def __init__(self, directory: Path):
        self.run = directory / "run"
        self.logs = directory / "logs"

    def _pidfile(self, name: str) -> Path:
        return self.run / f"{name}.pid"

    def pid(self, name: str) -> int | None:
        try:
            pid = int(self._pidfile(name).read_text())
        except (FileNotFoundError, ValueError):
            return None
        return pid if alive(pid) else None

    def running(self, name: str) -> bool:
        return self.pid(name) is not None

    def age(self, name: str) -> float | None:
        """Seconds since `name` was started (its pid file was written), None if not running."""
        if not self.running(name):
            return None
        try:
            return max(0.0, time.time() - self._pidfile(name).stat().st_mtime)
        except FileNotFoundError:
            return None

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None,
              cwd: str | None = None) -> int:
        existing = self.pid(name)
        if existing:
            current = cmdline(existing)
            if current == argv:
                return existing
            if same_program(current, argv):
                # Ours, started by an earlier version with other flags (say, etcd over plain
                # HTTP before it required TLS): it might never work again, so it is replaced.
                self.stop(name)
            # Else a stranger reused the pid of ours that died: left alone, ours started anew.
        self.run.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        with open(self.logs / f"{name}.log", "ab") as log:
            proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env=dict(os.environ, **(env or {})), cwd=cwd, start_new_session=True)
        self._pidfile(name).write_text(str(proc.pid))
        # Reap it when it exits, so that a dead child is not mistaken for a live zombie.
        _reapers.append(proc)
        return proc.pid

    def stop(self, name: str, timeout: float = 10.0) -> None:
        pid = self.pid(name)
        if pid:
            _terminate(pid, timeout)
        self._pidfile(name).unlink(missing_ok=True)

    def names(self) -> list[str]:
        return sorted(p.stem for p in self.run.glob("*.pid")) if self.run.exists() else []

    def stop_all(self, order: Sequence[str] = (), timeout: float = 10.0) -> None:
        names = self.names()
        for name in [*order, *(n for n in names if n not in order)]:
            if name in names:
                self.stop(name, timeout)


# A tenant plane's processes, in the order they are stopped: its users first (the virtual
# node, the scheduler of a cluster with several nodes, the controller manager), the
# apiserver they talk to last. `sk8s down`, a supervisor whose start-up failed, and the
# ServerlessCluster operator (destroying a plane) all stop planes this way.
PLANE_STOP_ORDER = ("virtual-node", "kube-scheduler", "kube-controller-manager", "kube-apiserver")


def stop_process_sets(root: Path, order: Sequence[str] = PLANE_STOP_ORDER) -> tuple[int, list[int]]:
    """Stop the processes of every directory under `root` (each a ProcessSet), all at once:
    the number of sets stopped, and the pids of processes under `root` no pid file held."""
    from concurrent.futures import ThreadPoolExecutor
    sets = [ProcessSet(d) for d in sorted(root.iterdir()) if d.is_dir()] if root.exists() else []
    sets = [p for p in sets if p.names()]
    with ThreadPoolExecutor(max_workers=16) as pool:  # an apiserver takes seconds to shut down
        list(pool.map(lambda p: p.stop_all(order=order, timeout=3), sets))
    return len(sets), (stop_strays(root) if root.exists() else [])


_reapers: list[subprocess.Popen] = []


def _forget(proc: subprocess.Popen) -> None:
    """Planes are stopped from several threads at once: another may have reaped it already
    (a ValueError here once ended a plane's stop_all half-way)."""
    try:
        _reapers.remove(proc)
    except ValueError:
        pass


def cmdline(pid: int, settle: float = 1.0) -> list[str]:
    """A process's argv. Popen returns once the child's exec has closed its files, which is
    before the new program's arguments are readable: an empty answer from a live process
    is read again for up to `settle` seconds."""
    deadline = time.monotonic() + settle
    while True:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                args = [a.decode(errors="replace") for a in f.read().split(b"\0")[:-1]]
        except OSError:
            return []
        if args or time.monotonic() >= deadline or not alive(pid):
            return args
        time.sleep(0.01)


def same_program(current: list[str], argv: list[str]) -> bool:
    """The same program (a Python one: the same module) with possibly other flags."""
    if not current or not argv or Path(current[0]).name != Path(argv[0]).name:
        return False
    return not Path(argv[0]).name.startswith("python") or current[1:3] == argv[1:3]


def alive(pid: int) -> bool:
    """True for a running process; a zombie (exited, not yet reaped) is not alive."""
    for proc in list(_reapers):
        if proc.poll() is not None:
            _forget(proc)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is not alive
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):  # reaped meanwhile
        return False


def _terminate(pid: int, timeout: float) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive(pid):
        time.sleep(0.05)
    if alive(pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    _reap(pid)


def _reap(pid: int) -> None:
    """Collect our own child's exit status, so no zombie is left behind."""
    for proc in list(_reapers):
        if proc.pid == pid:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            _forget(proc)


def stop_strays(directory: Path, timeout: float = 3.0) -> list[int]:
    """Stop every process whose command line names a path under `directory` and that no pid
    file holds any more: one started by a thread of an operator that was being stopped (a
    standby plane warming up) after its plane's processes were stopped. Returns their pids."""
    root = str(directory.resolve()).rstrip("/") + "/"
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(a.decode(errors="replace").partition("=")[2].startswith(root)
               or a.decode(errors="replace").startswith(root) for a in args):
            found.append(int(entry.name))
    for pid in found:
        _terminate(pid, timeout)
    return found
