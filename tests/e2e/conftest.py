"""e2e fixtures: a real embedded meta-cluster (etcd + kube-apiserver built from upstream),
real operators as separate processes, real podman sandboxes. No API mocks."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from operators.emulator.alibaba import launch as alibaba_emulator

REPO = Path(__file__).resolve().parents[2]
IMAGE = "localhost/sk8s-busybox:latest"
# The address the e2e NFS server answers on: a loopback address of its own (not 127.0.0.1,
# nor in the load balancers' 127.64-191 range), the one host address the installation trusts.
NFS_HOST = "127.0.2.49"


def _need(tool: str) -> None:
    if shutil.which(tool) is None:
        pytest.exit(f"{tool} is not installed: run `make setup` (hack/setup.sh) first", returncode=2)


@dataclass
class Meta:
    home: Path
    kubeconfig: Path
    bindir: Path
    env: dict

    def kubectl(self, *args: str, input: str | None = None, check: bool = True,
                timeout: float = 60) -> subprocess.CompletedProcess:
        proc = subprocess.run([str(self.bindir / "kubectl"), *args], input=input, text=True, env=self.env,
                              capture_output=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc

    def apply(self, obj: dict, namespace: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(obj), check=check)

    def get(self, kind: str, name: str, namespace: str) -> dict | None:
        proc = self.kubectl("get", kind, name, "-n", namespace, "-o", "json", check=False)
        return json.loads(proc.stdout) if proc.returncode == 0 else None

    def sk8s(self, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
        proc = subprocess.run([sys.executable, "-m", "operators.cli", *args], env=self.env, text=True,
                              capture_output=True, timeout=timeout, cwd=str(REPO))
        if check and proc.returncode != 0:
            raise AssertionError(f"sk8s {' '.join(args)} failed ({proc.returncode}): {proc.stdout}{proc.stderr}")
        return proc

    def podman(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["podman", *args], env=self.env, text=True, capture_output=True, timeout=120)

    def state(self) -> dict:
        return json.loads((self.home / "run" / "state.json").read_text())

    def wait_for(self, kind: str, name: str, namespace: str, predicate, timeout: float = 60,
                 interval: float = 0.1) -> dict:
        deadline = time.monotonic() + timeout
        obj = None
        while time.monotonic() < deadline:
            obj = self.get(kind, name, namespace)
            if obj is not None and predicate(obj):
                return obj
            time.sleep(interval)
        raise AssertionError(f"timed out waiting for {kind}/{name}; last seen: "
                             f"{json.dumps((obj or {}).get('status'), indent=1)}")


_HOMES: list[Path] = []
LOG_TAIL = 25  # lines of each log attached to a failed e2e test's report


# CI prints the start and the end of a long output: the logs most likely to explain a
# failure come first; the meta etcd's and apiserver's, long and rarely telling, not at all.
_FIRST = ("sandboxpod-operator.log", "serverlesscluster-operator.log")
_SKIP = ("etcd.log", "kube-apiserver.log", "supervisor.log")


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:  # its plane was just removed
        return 0.0


def _report_logs(home: Path) -> list[Path]:
    meta = [p for p in sorted(home.glob("logs/*.log")) if p.name not in _SKIP]
    meta.sort(key=lambda p: (p.name not in _FIRST, _FIRST.index(p.name) if p.name in _FIRST else 0))
    planes = sorted(home.glob("planes/*/logs/virtual-node.log"), key=_mtime, reverse=True)
    return meta[:2] + planes[:3] + meta[2:]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed e2e test carries the tails of the installation's logs (the meta-side
    operators and every tenant plane's virtual node): CI keeps only this output, not the home."""
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed or not _HOMES:
        return
    home = _HOMES[-1]
    for log in _report_logs(home):
        try:
            lines = log.read_text(errors="replace").splitlines()[-LOG_TAIL:]
        except OSError:
            continue
        report.sections.append((f"log {log.relative_to(home)}", "\n".join(ln[:300] for ln in lines)))


@pytest.fixture(scope="session")
def meta() -> Meta:
    for tool in ("podman", "runc"):
        _need(tool)
    home = Path(tempfile.mkdtemp(prefix="sk8s-e2e-"))
    env = dict(os.environ, SK8S_HOME=str(home), CONTAINERS_CONF=str(home / "containers.conf"))
    env.pop("KUBECONFIG", None)
    # The NFS test's server runs on this host, which tenant NFS volumes may not reach: the
    # installation trusts exactly that server's address (test_pod_volumes.py, NFS_HOST) and
    # nothing else of the host (test_security_nfs.py checks the rest stays refused).
    env["SK8S_NFS_ALLOWED"] = f"{NFS_HOST}/32"
    # Service-account tokens are requested again after 5% of their life instead of the
    # kubelet's 80%: a 600 s token (the API's minimum) rotates in 30 s
    # (test_pod_serviceaccount.py).
    env["SK8S_TOKEN_REFRESH_FRACTION"] = "0.05"
    # The suite creates clusters one after another all along: a pool following that demand
    # up to six warm planes would spend the two cores on planes nobody claims. Two still
    # exercise growth and parallel refill (bench/cluster_start.py measures the default).
    env["SK8S_STANDBY_MAX"] = "2"
    bindir = Path(subprocess.run(["bash", str(REPO / "hack/build-components.sh")], env=env, text=True,
                                 check=True, capture_output=True).stdout.strip().splitlines()[-1])
    m = Meta(home, home / "kubeconfig", bindir, env)
    _HOMES.append(home)
    # The aliyun provider's SandboxPod operator runs against the local Alibaba OpenAPI
    # emulator, whose container groups are real sandboxes of this home (test_aliyun_provider.py).
    emulator, aliyun_env = alibaba_emulator.start(home, env)
    env.update(aliyun_env)
    up = m.sk8s("up")
    print(up.stdout)
    env["KUBECONFIG"] = str(m.kubeconfig)
    subprocess.run(["bash", str(REPO / "hack/build-image.sh"), IMAGE], env=env, check=True, capture_output=True)
    yield m
    if os.environ.get("SK8S_E2E_KEEP_HOME"):  # debugging: the installation stays up to be inspected
        print(f"\nSK8S_E2E_KEEP_HOME: {home} is still running (SK8S_HOME={home} sk8s down)")
        return
    emulator.terminate()
    emulator.wait(timeout=30)
    m.sk8s("down", check=False)
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def meta_kubeconfig(meta: Meta) -> str:
    return str(meta.kubeconfig)


@pytest.fixture(scope="session")
def kubectl_bin(meta: Meta) -> str:
    return str(meta.bindir / "kubectl")


@pytest.fixture
def namespace(meta: Meta):
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    meta.kubectl("create", "namespace", name)
    yield name
    meta.kubectl("delete", "sandboxpods", "--all", "-n", name, "--wait=true", "--timeout=120s", check=False)
    meta.kubectl("delete", "namespace", name, "--wait=false", check=False)


def sandboxpod(name: str, containers: list[dict], **spec) -> dict:
    spec.setdefault("terminationGracePeriodSeconds", 1)
    for c in containers:
        c.setdefault("image", IMAGE)
        c.setdefault("imagePullPolicy", "IfNotPresent")
    return {"apiVersion": "sk8s.io/v1alpha1", "kind": "SandboxPod", "metadata": {"name": name},
            "spec": {"containers": containers, **spec}}


def until(predicate, timeout: float, what: str, interval: float = 0.5):
    """`predicate()`'s first true value, polled every `interval`; fails naming `what`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


def condition(obj: dict, type_: str) -> str | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c["type"] == type_:
            return c["status"]
    return None


def phase(obj: dict) -> str | None:
    return (obj.get("status") or {}).get("phase")
