"""The control-plane binaries, built from upstream by hack/build-components.sh."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ..config import REPO_ROOT, sk8s_cache

BUILD_SCRIPT = REPO_ROOT / "hack" / "build-components.sh"
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")


class BuildError(RuntimeError):
    pass


_found: Path | None = None


def ensure_binaries(*, quiet: bool = False) -> Path:
    """Build (first run, minutes) or find in the cache (seconds) the pinned binaries.

    Remembered per process: tenant start-ups ask on every claim and restart.
    """
    global _found
    if _found is not None and all((_found / c).exists() for c in COMPONENTS):
        return _found
    env = dict(os.environ, SK8S_CACHE=str(sk8s_cache()))
    proc = subprocess.run(["bash", str(BUILD_SCRIPT)], env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL if quiet else sys.stderr, text=True)
    if proc.returncode != 0:
        raise BuildError(f"{BUILD_SCRIPT.name} failed with exit code {proc.returncode}; see the messages above")
    bindir = Path(proc.stdout.strip().splitlines()[-1])
    missing = [c for c in COMPONENTS if not (bindir / c).exists()]
    if missing:
        raise BuildError(f"missing binaries in {bindir}: {', '.join(missing)}")
    _found = bindir
    return bindir


def kubectl() -> str:
    return str(ensure_binaries(quiet=True) / "kubectl")
