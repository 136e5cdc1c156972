"""The deploy kustomization passes a server-side dry run on a real kube-apiserver.

A server-side dry run of a namespaced object fails when its namespace does not exist yet
(the Namespace in the same apply is only dry-run created: kubernetes/kubernetes#83562),
so the test creates the (empty) sk8s-system and sk8s-planes namespaces for real if they are
missing, and leaves them: they are where `kubectl apply -k manifests` would put the operators
and the tenant control planes' Role anyway.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
NAMESPACE = "sk8s-system"
NAMESPACES = (NAMESPACE, "sk8s-planes")


def kubectl(kubectl_bin: str, kubeconfig: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(kubectl_bin), f"--kubeconfig={kubeconfig}", *args],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)


@pytest.fixture
def operator_namespace(meta_kubeconfig, kubectl_bin):
    for ns in NAMESPACES:
        got = kubectl(kubectl_bin, meta_kubeconfig, "get", "namespace", ns, "-o", "jsonpath={.status.phase}")
        if got.returncode != 0:
            made = kubectl(kubectl_bin, meta_kubeconfig, "create", "namespace", ns)
            assert made.returncode == 0 or "AlreadyExists" in made.stderr, made.stderr
        else:
            assert got.stdout == "Active", f"namespace {ns} is {got.stdout}: cannot dry-run into it"
    return NAMESPACE


def test_kustomization_applies_in_server_dry_run(meta_kubeconfig, kubectl_bin, operator_namespace):
    rendered = kubectl(kubectl_bin, meta_kubeconfig, "kustomize", str(MANIFESTS))
    assert rendered.returncode == 0, rendered.stderr
    docs = [d for d in yaml.safe_load_all(rendered.stdout) if d]

    proc = kubectl(kubectl_bin, meta_kubeconfig, "apply", "-k", str(MANIFESTS), "--dry-run=server")
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"

    expected = ([f"deployment.apps/{d['metadata']['name']}" for d in docs if d["kind"] == "Deployment"]
                + [f"clusterrole.rbac.authorization.k8s.io/{d['metadata']['name']}"
                   for d in docs if d["kind"] == "ClusterRole"])
    assert any(e.startswith("deployment.apps/") for e in expected)
    for e in expected:
        assert e in proc.stdout, f"{e} missing from dry-run output:\n{proc.stdout}"
    assert "(server dry run)" in proc.stdout
