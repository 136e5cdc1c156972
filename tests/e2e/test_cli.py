"""The sk8s CLI against the running embedded meta-cluster."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.e2e


def test_up_is_idempotent(meta):
    pid = meta.state()["supervisor"]
    out = meta.sk8s("up").stdout
    assert "already running" in out
    assert meta.state()["supervisor"] == pid


def test_status_reports_every_component_healthy(meta):
    out = meta.sk8s("status").stdout
    for name in ("etcd", "kube-apiserver", "kube-controller-manager", "sandboxpod-operator"):
        line = next(ln for ln in out.splitlines() if ln.startswith(name))
        assert "healthy" in line, out


def test_logs_of_a_component(meta):
    out = meta.sk8s("logs", "sandboxpod-operator").stdout
    assert out.strip()
    bad = meta.sk8s("logs", "no-such-component", check=False)
    assert bad.returncode == 1 and "known:" in bad.stderr


def test_real_apiserver_and_crds(meta):
    version = meta.kubectl("version", "-o", "json").stdout
    assert '"gitVersion": "v1.37.2"' in version
    crds = meta.kubectl("get", "crd", "-o", "name").stdout
    for plural in ("sandboxpods", "serverlessclusters", "servicelbs"):
        assert f"customresourcedefinition.apiextensions.k8s.io/{plural}.sk8s.io" in crds
    short = meta.kubectl("api-resources", "--api-group=sk8s.io").stdout
    assert "sbp" in short and "slc" in short and "slb" in short
