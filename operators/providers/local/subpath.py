"""subPath mounts made safe as the kubelet makes them (pkg/volume/util/subpath/subpath_linux.go).

A subPath is a path inside a volume the pod itself can write: a container may have turned
any of its components into a symlink (`ln -s / /data/x`), and may swap it again while the
next container starts. Joining the subPath to the volume's host path and handing that to
podman would resolve the symlink on the host. So, for each container start:

1. `safe_open` walks the subPath from the volume's root, one component at a time, each
   opened with openat(O_PATH|O_NOFOLLOW) relative to its parent's descriptor. A symlink is
   read (readlinkat on its own descriptor) and followed only while it stays inside the
   volume: relative, and never `..` above the root. That is the kubelet's EvalSymlinks +
   PathWithinBase + doSafeOpen in one race-free walk (a ConfigMap's `key -> ..data/key ->
   ..<time>/key` resolves; `x -> /` or `x -> ../../..` is refused). With `create`, missing
   directories are made with mkdirat beneath the last opened one (the kubelet's SafeMakeDir).
2. `bind` mounts what was opened, `/proc/self/fd/N`, onto a path of our own
   (`<sandbox>/.volume-subpaths/<volume>/<container>/<index>`, which no container sees):
   whatever the pod renames or swaps afterwards, the mount holds the object that was checked.
   podman gets that path as the mount source.
3. `release` unmounts those bind mounts (before a container is run again, and when the
   sandbox goes) and removes their directories, never deleting through a mount.

Messages of SubPathError name paths inside the volume only: the tenant sees them in Events,
and they must not describe the host's file system.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import re
import shutil
import stat
from pathlib import Path

SUBPATHS_DIR = ".volume-subpaths"  # not a DNS label: no volume can be called so
MAX_SYMLINKS = 40                   # the kernel's own limit (ELOOP)

MS_BIND = 0x1000
MNT_DETACH = 0x2
UMOUNT_NOFOLLOW = 0x8

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


class SubPathError(Exception):
    """Why a subPath cannot be mounted, in terms of paths inside the volume."""


def components(subpath: str) -> list[str]:
    """The subPath's components; refused when absolute or with `..` (the API's own rule,
    checked again: a SandboxPod is written by a virtual node, not by the tenant apiserver)."""
    if "\0" in subpath:
        raise SubPathError("subPath contains a NUL character")
    if subpath.startswith("/"):
        raise SubPathError(f'subPath "{subpath}" must be a relative path')
    parts = [p for p in subpath.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise SubPathError(f"subPath \"{subpath}\" must not contain '..'")
    return parts


def safe_open(base: Path, subpath: str, *, create: bool = False, mode: int = 0o777) -> int:
    """A descriptor of `subpath` inside the directory `base`, reached without leaving it.

    The caller owns the returned descriptor (O_PATH, or a directory opened for fchmod when
    just created). `mode` is given to directories it creates."""
    todo = list(reversed(components(subpath)))
    stack = [os.open(base, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)]
    names: list[str] = []  # where stack[-1] is, relative to the volume root (for messages)
    links = 0
    try:
        while todo:
            name = todo.pop()
            if name in ("", "."):
                continue
            shown = "/".join(names + [name])
            if name == "..":  # only from a symlink's target: the walk's own parent, never the kernel's
                if len(stack) == 1:
                    raise SubPathError(f'"{shown}" leaves the volume')
                os.close(stack.pop())
                names.pop()
                continue
            fd = _open_or_create(stack[-1], name, shown, create=create, mode=mode)
            st = os.fstat(fd)
            if stat.S_ISLNK(st.st_mode):
                try:
                    target = os.readlink("", dir_fd=fd)  # the link that was opened, not its name again
                finally:
                    os.close(fd)
                links += 1
                if links > MAX_SYMLINKS:
                    raise SubPathError(f'"{shown}": too many levels of symbolic links')
                if target.startswith("/"):
                    raise SubPathError(f'"{shown}" is a symlink to an absolute path, outside the volume')
                todo.extend(reversed(target.split("/")))
                continue
            if todo and not stat.S_ISDIR(st.st_mode):
                os.close(fd)
                raise SubPathError(f'"{shown}" is not a directory')
            stack.append(fd)
            names.append(name)
        return stack.pop()
    finally:
        for fd in stack:
            os.close(fd)


def _open_or_create(parent: int, name: str, shown: str, *, create: bool, mode: int) -> int:
    for _ in range(3):  # a concurrent mkdir or unlink by the pod: look again
        try:
            return os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
        except FileNotFoundError:
            if not create:
                raise SubPathError(f'"{shown}": no such file or directory') from None
        try:
            os.mkdir(name, mode, dir_fd=parent)
        except FileExistsError:
            continue
        try:
            fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
        except OSError:
            continue  # replaced by something else (a symlink fails O_NOFOLLOW): look again
        os.fchmod(fd, mode)  # mkdirat's mode went through the umask
        return fd
    raise SubPathError(f'"{shown}" keeps changing')


def bind(fd: int, target: Path) -> None:
    """Bind-mount the object open as `fd` at `target` (created: a directory or an empty file,
    as the kubelet does; a file is enough to mount any non-directory over)."""
    is_dir = stat.S_ISDIR(os.fstat(fd).st_mode)
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
    try:
        present = os.lstat(target).st_mode
    except FileNotFoundError:
        present = None
    if present is not None and stat.S_ISDIR(present) != is_dir:  # the path changed kind since the last run
        os.rmdir(target) if stat.S_ISDIR(present) else os.unlink(target)
        present = None
    if present is None:
        if is_dir:
            os.mkdir(target, 0o750)
        else:
            os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o640))
    source = f"/proc/self/fd/{fd}".encode()
    if _libc.mount(source, os.fsencode(target), None, MS_BIND, None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"bind mount of a subPath at {target}: {os.strerror(err)}")
    mounted, opened = os.stat(target, follow_symlinks=False), os.fstat(fd)
    if (mounted.st_dev, mounted.st_ino) != (opened.st_dev, opened.st_ino):
        raise OSError(f"bind mount at {target} does not show the opened subPath")


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as \\ooo."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def mounts_under(path: Path, mountinfo: str | None = None) -> list[str]:
    """Mount points at or below `path` in this process's mount table, deepest first."""
    if mountinfo is None:
        with open("/proc/self/mountinfo") as f:
            mountinfo = f.read()
    top = os.path.realpath(path)
    found = []
    for line in mountinfo.splitlines():
        fields = line.split(" ")
        if len(fields) > 4:
            point = _unescape(fields[4])
            if point == top or point.startswith(top.rstrip("/") + "/"):
                found.append(point)
    return sorted(found, key=lambda p: p.count("/"), reverse=True)


def unmount_all(path: Path) -> None:
    """Unmount everything at or below `path` (stacked mounts too); fail if anything is left."""
    for _ in range(8):
        points = mounts_under(path)
        if not points:
            return
        for point in points:
            _libc.umount2(os.fsencode(point), MNT_DETACH | UMOUNT_NOFOLLOW)
    left = mounts_under(path)
    if left:
        raise OSError(f"cannot unmount {left[0]}")


def release(path: Path) -> None:
    """Unmount the subPath bind mounts under `path` and remove it. Its files are ours: with
    nothing mounted below any more, removing it cannot reach into a volume or the host."""
    if not os.path.lexists(path):
        return
    unmount_all(path)
    shutil.rmtree(path, ignore_errors=True)
