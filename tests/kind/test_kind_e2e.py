"""The CRDs and the deploy kustomization on a throwaway kind cluster (pytest-kind-ng).

Runs only where a Docker engine answers; pytest-kind downloads kind (and a kubectl of its
own) on first use. We drive the cluster with our kubectl (the one cached by
hack/build-components.sh, else PATH) when there is one, else pytest-kind's.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.unit.test_manifests import find_kubectl


def _docker_engine_works() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


if not _docker_engine_works():
    pytest.skip("Docker engine not available: kind cannot run here", allow_module_level=True)

pytestmark = pytest.mark.kind

ROOT = Path(__file__).resolve().parents[2]
CRD_NAMES = ("sandboxpods.sk8s.io", "serverlessclusters.sk8s.io", "servicelbs.sk8s.io")

INVALID_SANDBOXPOD = """\
apiVersion: sk8s.io/v1alpha1
kind: SandboxPod
metadata:
  name: missing-image
  namespace: default
spec:
  containers:
  - name: web
"""


@pytest.fixture(scope="module")
def kctl(kind_cluster):
    kubectl_bin = find_kubectl()
    if kubectl_bin is None:
        kind_cluster.ensure_kubectl()
        kubectl_bin = str(kind_cluster.kubectl_path)

    def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([kubectl_bin, f"--kubeconfig={kind_cluster.kubeconfig_path}", *args],
                              input=stdin, capture_output=True, text=True, timeout=180, cwd=ROOT)
    return run


@pytest.fixture(scope="module")
def crds_loaded(kctl):
    proc = kctl("apply", "-f", "crds/sk8s.io_sandboxpods.yaml",
                "-f", "crds/sk8s.io_serverlessclusters.yaml", "-f", "crds/sk8s.io_servicelbs.yaml")
    assert proc.returncode == 0, proc.stderr
    proc = kctl("wait", "--for=condition=Established", "--timeout=60s",
                *(f"crd/{n}" for n in CRD_NAMES))
    assert proc.returncode == 0, proc.stderr


def test_crds_establish(kctl, crds_loaded):
    proc = kctl("get", "crd", *CRD_NAMES, "-o", "name")
    assert proc.returncode == 0, proc.stderr
    for name in CRD_NAMES:
        assert name in proc.stdout


def test_sandboxpod_missing_field_is_rejected_naming_it(kctl, crds_loaded):
    proc = kctl("apply", "-f", "-", stdin=INVALID_SANDBOXPOD)
    assert proc.returncode != 0, f"invalid SandboxPod was accepted:\n{proc.stdout}"
    assert "spec.containers[0].image" in proc.stderr, proc.stderr
    assert "Required value" in proc.stderr, proc.stderr


def test_kustomization_applies_in_server_dry_run(kctl, crds_loaded):
    # A server-side dry run needs the namespace to exist (kubernetes/kubernetes#83562);
    # the kind cluster is throwaway, so create it for real.
    ns = kctl("create", "namespace", "sk8s-system")
    assert ns.returncode == 0 or "AlreadyExists" in ns.stderr, ns.stderr
    proc = kctl("apply", "-k", "manifests", "--dry-run=server")
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert "deployment.apps/sandboxpod-operator" in proc.stdout
    assert "clusterrole.rbac.authorization.k8s.io/sk8s-sandboxpod-operator" in proc.stdout
