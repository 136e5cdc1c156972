"""A representative subset of the upstream [Conformance] tests (e2e.test of the pinned
release) against a tenant cluster, through hack/conformance.sh: the same images, flags and
summary as `make conformance`, a few minutes instead of hours.

It runs only when the conformance tools are already built (`make conformance` or
hack/build-conformance.sh builds them, about 10 minutes): `make test` never builds them, and
skips this test with that reason otherwise."""
from __future__ import annotations

import importlib.util
import json
import re
import subprocess

import pytest

from .conftest import REPO
from .tenant import delete_cluster, make_cluster

# The tests this runs, by their full upstream name (as `e2e.test --list-conformance-tests`
# spells it); each must pass.
SUBSET = [
    # Pods
    "[sig-node] Pods should get a host IP [Conformance] [NodeConformance]",
    "[sig-node] Pods should be submitted and removed [Conformance] [NodeConformance]",
    "[sig-node] Containers should use the image defaults if command and args are blank [Conformance] [NodeConformance]",
    # ConfigMaps
    "[sig-node] ConfigMap should be consumable via environment variable [Conformance] [NodeConformance]",
    "[sig-storage] ConfigMap should be consumable from pods in volume [Conformance] [NodeConformance]",
    # Secrets
    "[sig-node] Secrets should be consumable from pods in env vars [Conformance] [NodeConformance]",
    "[sig-storage] Secrets should be consumable from pods in volume [Conformance] [NodeConformance]",
    # Downward API
    "[sig-node] Downward API should provide pod name, namespace and IP address as env vars [Conformance] [NodeConformance]",
    "[sig-storage] Downward API volume should provide podname only [Conformance] [NodeConformance]",
    # Services
    "[sig-network] API Server should provide secure master service [Conformance]",
    "[sig-network] Services should serve a basic endpoint from pods [Conformance]",
    # DNS
    "[sig-network] DNS should provide DNS for the cluster [Conformance]",
    "[sig-network] DNS should provide /etc/hosts entries for the cluster [Conformance]",
    # gaps of the full run, fixed since: the kubelet's hostAliases lines, EndpointSlices that
    # list different ports, the nonewprivs image, 150 volumes in one pod
    "[sig-node] Kubelet when scheduling an agnhost Pod with hostAliases should write entries to /etc/hosts "
    "[Conformance] [NodeConformance]",
    "[sig-network] EndpointSlice should support a Service with multiple ports specified in multiple "
    "EndpointSlices [Conformance]",
    "[sig-network] EndpointSlice should support a Service with multiple endpoint IPs specified in multiple "
    "EndpointSlices [Conformance]",
    "[sig-node] Security Context when creating containers with AllowPrivilegeEscalation should not allow "
    "privilege escalation when false [LinuxOnly] [Conformance] [NodeConformance]",
    "[sig-auth] [FeatureGate:ClusterTrustBundle] [FeatureGate:ClusterTrustBundleProjection] should be able to "
    "mount a big number (>100) of CTBs [MinimumKubeletVersion:1.37] [Conformance]",
]


def re2_literal(text: str) -> str:
    """`text` as a literal in Go's regexp syntax (Python's re.escape also escapes spaces and
    dashes, which Go refuses as escapes)."""
    return re.sub(r"([\\.+*?()|\[\]{}^$])", r"\\\1", text)


def _summary_module():
    spec = importlib.util.spec_from_file_location("conformance_summary", REPO / "hack" / "conformance_summary.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def conformance_tools(meta):
    proc = subprocess.run(["bash", str(REPO / "hack/build-conformance.sh"), "--cached"], env=meta.env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip("the conformance tools (e2e.test, ginkgo, agnhost) are not built: "
                    "`make conformance` or hack/build-conformance.sh builds them (about 10 minutes)")
    return proc.stdout.strip().splitlines()[-1]


def test_conformance_subset_passes(meta, conformance_tools, tmp_path):
    tenant = make_cluster(meta, "conformance-subset")
    try:
        _run_subset(meta, tenant, tmp_path)
    finally:
        delete_cluster(meta, "conformance-subset")


def _run_subset(meta, tenant, tmp_path) -> None:
    focus = "|".join(re2_literal(name) for name in SUBSET)
    env = dict(meta.env, CONFORMANCE_KUBECONFIG=str(tenant.kubeconfig), CONFORMANCE_FOCUS=focus,
               CONFORMANCE_REPORT_DIR=str(tmp_path), CONFORMANCE_TIMEOUT="20m")
    proc = subprocess.run(["bash", str(REPO / "hack/conformance.sh")], env=env, capture_output=True,
                          text=True, timeout=1800)
    print(proc.stdout)
    report = json.loads((tmp_path / "report.json").read_text())
    states = {s["name"]: s["state"] for s in _summary_module().specs(report)}
    missing = [n for n in SUBSET if n not in states]
    assert not missing, f"not in e2e.test (renamed upstream?): {missing}"
    failed = {n: states[n] for n in SUBSET if states[n] != "passed"}
    log_tail = (tmp_path / "e2e.log").read_text()[-4000:] if failed else ""
    assert not failed, f"conformance tests not passing: {failed}\n{proc.stdout}\n{log_tail}"
    assert proc.returncode == 0, proc.stderr[-2000:]
