"""Whose account each cloud call goes to: the installation's (SK8S_ALIYUN_CREDENTIALS) or
a tenant cluster's own, named by its `spec.credentialsSecretRef`.

The ServerlessCluster operator is the one process that reads a cluster's Secret (in the
cluster's own namespace: a cluster cannot name another namespace's Secret). It writes the
key pair here, under the home's PKI directory (0700), one directory per cluster (0700),
files 0600, before anything of the cluster exists in the cloud or in the meta-cluster's
sandbox namespace, and removes it only after the cluster's cloud network is released.
The other processes calling the cloud for that cluster (SandboxPod, ServiceLB and
PrivateZone operators, the cluster's virtual node) read it from here; nothing of it
reaches the tenant cluster, a log or an error message.

An entry records the cluster's sandbox namespace too: a sandbox, load balancer or zone
call names either the cluster (uid) or the namespace its SandboxPod lives in.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from .client import Credentials

_UID = re.compile(r"^[0-9a-f-]{1,64}$")  # a Kubernetes uid: the directory's name, never a path
KEY_ID, KEY_SECRET, NAMESPACE = "access-key-id", "access-key-secret", "namespace"


@dataclass(frozen=True)
class Account:
    cluster_uid: str
    namespace: str
    credentials: Credentials


def _write(path: Path, text: str) -> None:
    """Atomically, readable by this user only from the first byte."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


class AccountStore:
    def __init__(self, root: Path):
        self.root = root
        self._cache: tuple[tuple, list[Account]] | None = None

    def _dir(self, cluster_uid: str) -> Path:
        if not _UID.match(cluster_uid):
            raise ValueError(f"not a cluster uid: {cluster_uid!r}")
        return self.root / cluster_uid

    def write(self, cluster_uid: str, namespace: str, credentials: Credentials) -> bool:
        """Record a cluster's account; whether anything changed (a new key: rotated)."""
        d = self._dir(cluster_uid)
        if self.get(cluster_uid) == Account(cluster_uid, namespace, credentials):
            return False
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        d.mkdir(mode=0o700, exist_ok=True)
        # The namespace last: an entry is complete once it names its namespace.
        _write(d / KEY_ID, credentials.access_key_id)
        _write(d / KEY_SECRET, credentials.access_key_secret)
        _write(d / NAMESPACE, namespace)
        self._cache = None
        return True

    def remove(self, cluster_uid: str) -> None:
        d = self._dir(cluster_uid)
        for name in (NAMESPACE, KEY_ID, KEY_SECRET):
            (d / name).unlink(missing_ok=True)
        try:
            d.rmdir()
        except FileNotFoundError:
            pass
        self._cache = None

    def get(self, cluster_uid: str) -> Account | None:
        return next((a for a in self.accounts() if a.cluster_uid == cluster_uid), None)

    def for_namespace(self, namespace: str) -> Account | None:
        return next((a for a in self.accounts() if a.namespace == namespace), None)

    def accounts(self) -> list[Account]:
        """Every complete entry; read again only when an entry was written or removed (by
        any process: the directories' modification times say so)."""
        try:
            dirs = sorted(p for p in self.root.iterdir() if p.is_dir() and _UID.match(p.name))
        except FileNotFoundError:
            return []
        stamp = tuple((p.name, _mtime(p)) for p in dirs) + ((".", _mtime(self.root)),)
        if self._cache and self._cache[0] == stamp:
            return self._cache[1]
        found = []
        for d in dirs:
            try:
                namespace = (d / NAMESPACE).read_text().strip()
                creds = Credentials((d / KEY_ID).read_text().strip(), (d / KEY_SECRET).read_text().strip())
            except FileNotFoundError:
                continue  # being written or removed
            if namespace and creds.access_key_id and creds.access_key_secret:
                found.append(Account(d.name, namespace, creds))
        self._cache = (stamp, found)
        return found


def _mtime(p: Path) -> int:
    try:
        return p.stat().st_mtime_ns
    except FileNotFoundError:
        return 0
