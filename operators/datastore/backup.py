"""One backup for every tenant: a snapshot of the datastore, as root.

The file is what `etcdctl snapshot save` writes (the bbolt database, then its SHA-256 as
etcd sends it), so `etcdutl snapshot restore` makes a member's data directory of it. It
holds every tenant's keys and the auth store (users, roles): keep it as secret as the CA
key. Written to `<path>.part` and renamed once complete and verified, so a file at `path`
is always a whole snapshot."""
from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path

from .client import EtcdAuthClient

DIGEST = 32  # the SHA-256 etcd appends


def verify(path: Path) -> None:
    """ValueError unless the file ends with the SHA-256 of what precedes it."""
    digest = hashlib.sha256()
    size = path.stat().st_size
    if size <= DIGEST:
        raise ValueError(f"{path}: {size} bytes is no snapshot")
    with path.open("rb") as f:
        left = size - DIGEST
        while left:
            chunk = f.read(min(left, 1 << 20))
            digest.update(chunk)
            left -= len(chunk)
        if f.read() != digest.digest():
            raise ValueError(f"{path}: the snapshot's SHA-256 does not match its content")


async def snapshot(etcd: EtcdAuthClient, path: Path) -> int:
    """Save the datastore's snapshot at `path`; its size in bytes."""
    part = path.with_name(path.name + ".part")
    fd = await asyncio.to_thread(os.open, part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            async def write(chunk: bytes) -> None:
                await asyncio.to_thread(f.write, chunk)
            await etcd.snapshot(write)
            await asyncio.to_thread(os.fsync, f.fileno())
        await asyncio.to_thread(verify, part)
        await asyncio.to_thread(os.replace, part, path)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    return path.stat().st_size
