"""The kind test bed's session fixture: a real 3-node Kubernetes v1.37.2 cluster (kind with
podman, 1 control plane and 2 workers) that hack/kind.sh builds offline and brings up, or
reuses when it is already there.

A cluster this session created is deleted at its end (SK8S_KIND_KEEP=1 keeps it for the
next run) unless another test session still uses it (each holds a shared lock on a file in
the bed's state directory while it runs); one it found is left as it was. The tests skip, naming what is missing, only
where kind cannot run at all: no podman, not root (the node containers are privileged), no
Go toolchain for a first build.
"""
from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.unit.test_manifests import find_kubectl

REPO = Path(__file__).resolve().parents[2]
KIND_SH = REPO / "hack" / "kind.sh"
# Cold: the node components and the root file systems are built first (minutes); warm: ~1 min.
UP_TIMEOUT = 3600


def kind_unavailable() -> str | None:
    """Why kind cannot run on this machine, or None."""
    if shutil.which("podman") is None:
        return "podman is not installed: the kind test bed runs kind's podman provider"
    if os.geteuid() != 0:
        return "kind's node containers are privileged: the kind test bed needs rootful podman (root)"
    cache = Path(os.environ.get("SK8S_CACHE")
                 or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sk8s")
    if shutil.which("go") is None and not any((cache / "bin").glob("kind-*/kind")):
        return "go is not installed: kind and the node components are built from their Go modules"
    info = subprocess.run(["podman", "info"], capture_output=True, text=True, timeout=60)
    if info.returncode != 0:
        return f"podman info failed: {info.stderr.strip()[-300:]}"
    return None


def hack_kind(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """hack/kind.sh in a process group of its own: a timeout ends all of it (a child left
    behind would hold the output pipe, or the bed's lock, open)."""
    proc = subprocess.Popen(["bash", str(KIND_SH), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=REPO, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        err += f"\nhack/kind.sh {' '.join(args)}: no end after {timeout} s, ended"
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@dataclass(frozen=True)
class KindCluster:
    kubeconfig: str
    kubectl_bin: str

    def kubectl(self, *args: str, stdin: str | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
        return subprocess.run([self.kubectl_bin, f"--kubeconfig={self.kubeconfig}", *args],
                              input=stdin, capture_output=True, text=True, timeout=timeout, cwd=REPO)

    def load(self, *images: str) -> None:
        """Loads podman images into every node's containerd (hack/kind.sh load)."""
        proc = hack_kind("load", *images)
        assert proc.returncode == 0, f"hack/kind.sh load {' '.join(images)}:\n{proc.stderr[-3000:]}"


@pytest.fixture(scope="session")
def kind_cluster() -> KindCluster:
    reason = kind_unavailable()
    if reason:
        pytest.skip(reason)
    existed = hack_kind("exists").returncode == 0
    up = hack_kind("up", timeout=UP_TIMEOUT)
    if up.returncode != 0:
        pytest.fail(f"hack/kind.sh up failed:\n{up.stderr[-5000:]}")
    kubeconfig = up.stdout.strip().splitlines()[-1]
    kubectl_bin = find_kubectl()
    assert kubectl_bin, "hack/kind.sh up builds kubectl: none found"
    with open(Path(kubeconfig).parent / "users.lock", "w") as users:
        fcntl.flock(users, fcntl.LOCK_SH)
        yield KindCluster(kubeconfig=kubeconfig, kubectl_bin=kubectl_bin)
        if existed or os.environ.get("SK8S_KIND_KEEP") == "1":
            return
        fcntl.flock(users, fcntl.LOCK_UN)
        try:
            fcntl.flock(users, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return   # another session still runs tests on it: its last user leaves it up
        hack_kind("down")


@pytest.fixture(scope="session")
def busybox(kind_cluster: KindCluster) -> str:
    """localhost/sk8s-busybox:latest (hack/build-image.sh, cached) loaded into every node."""
    image = "localhost/sk8s-busybox:latest"
    subprocess.run(["bash", str(REPO / "hack" / "build-image.sh"), image],
                   check=True, capture_output=True, timeout=300)
    kind_cluster.load(image)
    return image
