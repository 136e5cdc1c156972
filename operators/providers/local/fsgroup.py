"""fsGroup on the pod's volumes, as the kubelet's SetVolumeOwnership (pkg/volume/volume_linux.go):
group-owned by fsGroup, group read (and write, for writable volumes) added, directories
setgid so that what the pod creates inherits the group.

- emptyDir: only its root directory. The volume is new and empty when the sandbox starts, and
  setgid passes the group on to everything created in it; walking it later would walk what
  the pod wrote (symlinks, device nodes), which nothing here needs to touch.
- configMap, secret, downwardAPI: every file, read-only mask; only sk8s writes them (the pod
  mounts them read-only), after each update.
- nfs: left alone, as the kubelet's NFS plugin does (the server owns its permissions).

Everything is done through file descriptors opened with O_NOFOLLOW: a symlink is re-owned
itself (lchown), never followed.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

from ...models.podspec import PodSpec
from ..sandbox import SandboxRef
from .volumes import volume_dir

RW_MASK, RO_MASK, EXEC_MASK = 0o660, 0o440, 0o110


def mode_with_group(mode: int, *, is_dir: bool, read_only: bool) -> int:
    """The permission bits a volume entry gets under fsGroup."""
    mask = RO_MASK if read_only else RW_MASK
    if is_dir:
        mask |= stat.S_ISGID | EXEC_MASK
    return stat.S_IMODE(mode) | mask


def _own(dir_fd: int | None, name: str, gid: int, read_only: bool) -> bool:
    """Re-own one entry; True if it is a directory to descend into."""
    st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    os.chown(name, -1, gid, dir_fd=dir_fd, follow_symlinks=False)
    if stat.S_ISLNK(st.st_mode) or not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)):
        return False
    is_dir = stat.S_ISDIR(st.st_mode)
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | (os.O_DIRECTORY if is_dir else os.O_NONBLOCK)
    fd = os.open(name, flags, dir_fd=dir_fd)
    try:
        os.fchmod(fd, mode_with_group(os.fstat(fd).st_mode, is_dir=is_dir, read_only=read_only))
    finally:
        os.close(fd)
    return is_dir


def _walk(path: Path, gid: int, read_only: bool) -> None:
    if not _own(None, str(path), gid, read_only):
        return
    stack = [os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)]
    while stack:
        fd = stack.pop()
        try:
            for name in os.listdir(fd):
                if _own(fd, name, gid, read_only):
                    stack.append(os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                                         dir_fd=fd))
        finally:
            os.close(fd)


def apply(ref: SandboxRef, spec: PodSpec, root: Path) -> None:
    gid = spec.securityContext.fsGroup if spec.securityContext else None
    if gid is None:
        return
    for v in spec.volumes or []:
        d = volume_dir(root, ref, v.name)
        if v.nfs or not d.exists():
            continue
        if v.emptyDir is not None:
            _own(None, str(d), gid, read_only=False)
        elif v.has_content:
            _walk(d, gid, read_only=True)
