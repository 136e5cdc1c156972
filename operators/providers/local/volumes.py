"""Pod volumes on the local provider: host directories shared by the pod's containers.

Every volume of a sandbox is a directory under `<root>/<sandbox uid>/<volume>`, bind-mounted
into each container that mounts it, so containers of one pod share it:

- emptyDir: a plain directory (disk), or a tmpfs mounted there (`medium: Memory`, sized by
  sizeLimit, else by the pod's memory limits when every container has one). A disk emptyDir
  with a sizeLimit is a loop-mounted ext4 file of that size: writes past it fail with
  ENOSPC, where a kubelet would evict the pod (the honest local equivalent).
- configMap, secret, downwardAPI: files written as the kubelet's AtomicWriter does: a
  timestamped `..<time>` directory, a `..data` symlink swapped atomically by rename, and
  one user-visible symlink per top-level name into `..data`. Mounted read-only, as upstream.
- nfs: a podman volume of the local driver with type nfs (mount(8) on the host), of a server
  that nfspolicy.py allowed: never the host itself, another tenant or sk8s's own ranges.

A subPath is resolved inside its volume without following symlinks out of it and
bind-mounted from what was opened (subpath.py, `prepare_subpaths`), before each container
run: podman never sees the pod-controlled path.

Builders (`*_args`, `tmpfs_options`) are pure; `prepare`/`prepare_subpaths`/`write_files`/`cleanup` do the I/O.
"""
from __future__ import annotations

import logging
import os
import secrets
import shutil
import stat
import subprocess
import threading
import time
from pathlib import Path

from ...models.contracts import REASON_CONFIG_ERROR
from ...models.podspec import Container, PodSpec
from ...models.volumes import Volume, VolumeMount
from ...quantity import memory_bytes
from ..errors import InvalidSpecError, ProviderError
from ..sandbox import SandboxRef
from . import subpath

log = logging.getLogger(__name__)

DATA_DIR = "..data"


def default_root() -> Path:
    from ...config import layout
    return layout().home / "volumes"


def volume_dir(root: Path, ref: SandboxRef, volume: str) -> Path:
    return root / ref.uid / volume


def nfs_volume_name(ref: SandboxRef, volume: str) -> str:
    return f"sk8s-{ref.uid}-{volume}"


def tmpfs_options(spec: PodSpec, v: Volume) -> str:
    """Mount options of a memory emptyDir: bounded by sizeLimit, else by the pod's memory limits."""
    size = None
    if v.emptyDir and v.emptyDir.sizeLimit is not None:
        size = memory_bytes(v.emptyDir.sizeLimit)
    else:
        limits = [(c.resources.limits or {}).get("memory") if c.resources else None for c in spec.containers]
        if limits and all(x is not None for x in limits):
            size = sum(memory_bytes(x) for x in limits)
    return f"mode=1777,size={size}" if size else "mode=1777"


MIN_DISK_IMAGE = 4 << 20  # ext4 needs some room for its own metadata


def disk_limit_commands(image: Path, mountpoint: Path, size: int) -> list[list[str]]:
    """Commands that put a size-bounded, disk-backed filesystem at a disk emptyDir's path."""
    size = max(size, MIN_DISK_IMAGE)
    return [["truncate", f"--size={size}", str(image)],
            ["mkfs.ext4", "-q", "-F", "-m", "0", "-O", "^has_journal", "-E", "root_owner=0:0", str(image)],
            ["mount", "-o", "loop", str(image), str(mountpoint)]]


def nfs_create_args(ref: SandboxRef, v: Volume, labels: dict[str, str], address: str) -> list[str]:
    """`podman volume create` arguments of an NFS volume (local driver, mounted by the host kernel).
    `address` is the server's one address that nfspolicy checked: it, never the name, goes
    to mount(8), so that the name cannot resolve elsewhere once checked."""
    assert v.nfs is not None
    # The server goes into mount(8)'s option list: a comma or `=` in it would add options.
    if (not v.nfs.server or v.nfs.server.startswith("-")
            or any(ch in ',="' or ch.isspace() or not ch.isprintable() for ch in v.nfs.server)):
        raise InvalidSpecError(f'volume "{v.name}": nfs.server: Invalid value: {v.nfs.server!r}: not a host name '
                               "or address", reason=REASON_CONFIG_ERROR)
    host = f"[{address}]" if ":" in address else address  # an IPv6 device is [addr]:path
    # nosuid, nodev: the server's files are the tenant's to choose (a setuid or device file
    # must mean nothing on the host, where the export is mounted).
    opts = f"addr={address},nosuid,nodev," + ("ro" if v.nfs.readOnly else "rw")
    args = ["volume", "create", "--driver=local", "--opt=type=nfs", f"--opt=o={opts}",
            f"--opt=device={host}:{v.nfs.path}"]
    args += [f"--label={k}={val}" for k, val in sorted(labels.items())]
    return args + [nfs_volume_name(ref, v.name)]


def subpath_error(c: Container, m: VolumeMount, why: str) -> ProviderError:
    """The kubelet's wording (CreateContainerConfigError, retried): the cause names paths
    inside the volume only."""
    return ProviderError(f'failed to prepare subPath for volumeMount "{m.name}" of container "{c.name}": {why}',
                         reason=REASON_CONFIG_ERROR)


def mount_args(ref: SandboxRef, spec: PodSpec, c: Container, root: Path,
               subpaths: dict[int, str] | None = None) -> list[str]:
    """`--volume` arguments for one container's volumeMounts. A mount with a subPath takes
    its source from `subpaths` (mount index -> the bind mount `prepare_subpaths` made): the
    subPath is never joined to the volume's path here, where symlinks would resolve on the host."""
    vols = {v.name: v for v in spec.volumes or []}
    args = []
    for i, m in enumerate(c.volumeMounts or []):
        v = vols.get(m.name)
        if v is None:
            raise InvalidSpecError(f'container {c.name}: volumeMount "{m.name}" refers to no volume of the pod')
        read_only = bool(m.readOnly) or v.has_content or bool(v.nfs and v.nfs.readOnly)
        if m.subPath:
            if (subpaths or {}).get(i) is None:
                raise subpath_error(c, m, "not prepared")
            src = subpaths[i]
        elif v.nfs:
            src = nfs_volume_name(ref, v.name)
        else:
            src = str(volume_dir(root, ref, v.name))
        if ":" in m.mountPath:  # podman's --volume is source:destination:options
            raise InvalidSpecError(f'container {c.name}: volumeMount "{m.name}": mountPath: Invalid value: '
                                   f'{m.mountPath!r}: contains ":"', reason=REASON_CONFIG_ERROR)
        args.append(f"--volume={src}:{m.mountPath}:{'ro' if read_only else 'rw'}")
    return args


# --- I/O -------------------------------------------------------------------------------

def _is_mount(path: Path) -> bool:
    return os.path.ismount(path)


def prepare(ref: SandboxRef, spec: PodSpec, root: Path) -> None:
    """Directories (and tmpfs mounts) of every volume, and the subPaths that mounts need. Idempotent."""
    vols = {v.name: v for v in spec.volumes or []}
    for v in vols.values():
        if v.nfs:
            continue
        d = volume_dir(root, ref, v.name)
        d.mkdir(parents=True, exist_ok=True)
        if v.emptyDir and v.emptyDir.medium == "Memory" and not _is_mount(d):
            res = subprocess.run(["mount", "-t", "tmpfs", "-o", tmpfs_options(spec, v), "tmpfs", str(d)],
                                 capture_output=True, text=True)
            if res.returncode != 0:
                raise InvalidSpecError(f'volume "{v.name}": mounting tmpfs: {res.stderr.strip()}')
        elif v.emptyDir and v.emptyDir.sizeLimit is not None and not _is_mount(d):
            image = d.parent / f".{v.name}.img"
            for cmd in disk_limit_commands(image, d, memory_bytes(v.emptyDir.sizeLimit)):
                res = subprocess.run(cmd, capture_output=True, text=True)
                if res.returncode != 0:
                    raise InvalidSpecError(f'volume "{v.name}": {cmd[0]}: {res.stderr.strip()}')
            shutil.rmtree(d / "lost+found", ignore_errors=True)
            os.chmod(d, 0o777)
        elif v.emptyDir:
            os.chmod(d, 0o777)  # as the kubelet: any user of the image may write
    # Missing subPaths are created by prepare_subpaths, at each container start, safely.


def _current(target: Path) -> dict[str, tuple[bytes, int]] | None:
    link = target / DATA_DIR
    if not link.is_symlink():
        return None
    base = target / os.readlink(link)
    out = {}
    for p in base.rglob("*"):
        if p.is_file():
            out[str(p.relative_to(base))] = (p.read_bytes(), p.stat().st_mode & 0o777)
    return out


# One writer per volume at a time (striped: the set of volumes is unbounded). Two writers
# of one volume (the create handler's and a content update's, in threads) each removed the
# other's new directory after swapping `..data` to its own: `..data` then named a directory
# that was gone, and a pod's container found no files (a [Conformance] Downward API test).
_WRITE_LOCKS = [threading.Lock() for _ in range(64)]


def write_files(target: Path, files: dict[str, tuple[bytes, int]]) -> bool:
    """Kubelet's AtomicWriter: readers see the old or the new set of files, never a mix.
    Returns whether anything changed."""
    with _WRITE_LOCKS[hash(str(target)) % len(_WRITE_LOCKS)]:
        return _write_files(target, files)


def _write_files(target: Path, files: dict[str, tuple[bytes, int]]) -> bool:
    target.mkdir(parents=True, exist_ok=True)
    if _current(target) == files:
        return False
    stamp = f"..{time.strftime('%Y_%m_%d_%H_%M_%S', time.gmtime())}.{secrets.token_hex(5)}"
    new = target / stamp
    new.mkdir(mode=0o755)
    for rel, (data, mode) in files.items():
        path = new / rel
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        path.write_bytes(data)
        os.chmod(path, mode)
    tmp = target / "..data_tmp"
    if tmp.is_symlink():
        tmp.unlink()
    os.symlink(stamp, tmp)
    os.rename(tmp, target / DATA_DIR)  # the atomic step
    tops = {rel.split("/", 1)[0] for rel in files}
    for top in tops:
        link = target / top
        if not link.is_symlink():
            os.symlink(f"{DATA_DIR}/{top}", link)
    live = os.readlink(target / DATA_DIR)  # stamp, unless a writer outside this lock swapped it since
    for entry in target.iterdir():
        if entry.name.startswith(".."):
            if entry.name not in (DATA_DIR, stamp, live) and entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
        elif entry.name not in tops and entry.is_symlink():
            entry.unlink()
    return True


def write_content(ref: SandboxRef, spec: PodSpec, root: Path,
                  content: dict[str, dict[str, tuple[bytes, int]]]) -> list[str]:
    """Files of the pod's ConfigMap, Secret and downward API volumes; names of volumes changed."""
    changed = []
    for v in spec.volumes or []:
        if v.has_content and write_files(volume_dir(root, ref, v.name), content.get(v.name) or {}):
            changed.append(v.name)
    return changed


# A container start that was cancelled (its sandbox deleted) still finishes its thread.
_SUBPATH_LOCK = threading.Lock()


def subpaths_dir(root: Path, ref: SandboxRef) -> Path:
    return root / ref.uid / subpath.SUBPATHS_DIR


def prepare_subpaths(ref: SandboxRef, spec: PodSpec, c: Container, root: Path) -> dict[int, str]:
    """Resolve each subPath of the container anew and bind-mount it (see subpath.py): the
    sources of its `--volume`s by mount index. Called just before every `podman run` of the
    container; the bind mounts of its previous run go first, so a refused subPath leaves none."""
    with _SUBPATH_LOCK:  # not while cleanup runs: a mount made after it would leak
        if not (root / ref.uid).is_dir():
            raise ProviderError(f"the volumes of sandbox {ref.instance_name} are gone", reason=REASON_CONFIG_ERROR)
        return _prepare_subpaths(ref, spec, c, root)


def _prepare_subpaths(ref: SandboxRef, spec: PodSpec, c: Container, root: Path) -> dict[int, str]:
    vols = {v.name: v for v in spec.volumes or []}
    for d in subpaths_dir(root, ref).glob(f"*/{c.name}"):
        subpath.release(d)
    out: dict[int, str] = {}
    for i, m in enumerate(c.volumeMounts or []):
        v = vols.get(m.name)
        if not m.subPath or v is None:
            continue  # no subPath; or no such volume, which mount_args reports
        if v.nfs:
            raise subpath_error(c, m, f'subPath is not supported on nfs volume "{v.name}"')
        base = volume_dir(root, ref, v.name)
        target = subpaths_dir(root, ref) / v.name / c.name / str(i)
        try:
            # The kubelet creates a missing subPath of a volume the pod writes, with the
            # volume's mode; the files of API volumes are the writer's alone.
            fd = subpath.safe_open(base, m.subPath, create=bool(v.emptyDir),
                                   mode=stat.S_IMODE(os.stat(base).st_mode))
            try:
                subpath.bind(fd, target)
            finally:
                os.close(fd)
        except subpath.SubPathError as exc:
            log.warning("%s: container %s: subPath %r of volume %s refused: %s",
                        ref.instance_name, c.name, m.subPath, v.name, exc)
            raise subpath_error(c, m, str(exc)) from exc
        except OSError as exc:  # its text would name host paths: the log has it, the Event not
            log.error("%s: container %s: subPath %r of volume %s: %s", ref.instance_name, c.name, m.subPath,
                      v.name, exc)
            raise subpath_error(c, m, exc.strerror or "cannot mount it") from exc
        out[i] = str(target)
    return out


def cleanup(ref: SandboxRef, root: Path) -> None:
    with _SUBPATH_LOCK:
        _cleanup(ref, root)


def _cleanup(ref: SandboxRef, root: Path) -> None:
    base = root / ref.uid
    if not base.exists():
        return
    subpath.release(base / subpath.SUBPATHS_DIR)
    for d in base.iterdir():
        if _is_mount(d):
            subprocess.run(["umount", "--lazy", str(d)], capture_output=True)
    # rmtree crosses mount points: with anything still mounted below, it could delete
    # through it. Leave the directory rather than risk that.
    left = subpath.mounts_under(base)
    if left:
        raise OSError(f"sandbox volumes: {left[0]} is still mounted")
    shutil.rmtree(base, ignore_errors=True)
