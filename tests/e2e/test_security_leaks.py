"""Objects that used to be silently stuck: each is refused at admission naming the field, or
works to the end (created, run or failed with a reason, deleted with nothing left)."""
from __future__ import annotations

import json
import time

import pytest

from .conftest import phase, sandboxpod
from .tenant import delete_cluster

pytestmark = pytest.mark.e2e


def test_negative_quota_is_refused_naming_the_field(meta):
    for field, value in (("cpu", "-5"), ("memory", "-1Gi"), ("cpu", -5)):
        obj = {"apiVersion": "sk8s.io/v1alpha1", "kind": "ServerlessCluster", "metadata": {"name": "negative"},
               "spec": {"quotas": {field: value}}}
        proc = meta.apply(obj, "default", check=False)
        assert proc.returncode != 0, f"quotas.{field}={value!r} was accepted"
        assert f"spec.quotas.{field}" in proc.stderr, proc.stderr
    assert meta.get("serverlesscluster", "negative", "default") is None


def test_a_sandboxpod_larger_than_the_annotation_cap_runs_and_is_deleted(meta, namespace):
    """kopf used to copy the spec into an annotation (capped at 256 KiB in total): such an
    object could never be patched again, so its finalizer was never removed."""
    big = "x" * (300 * 1024)
    obj = sandboxpod("big", [{"name": "a", "command": ["sleep", "3600"],
                              "env": [{"name": "PAD", "value": big[:100 * 1024]},
                                      {"name": "PAD2", "value": big[:100 * 1024]},
                                      {"name": "PAD3", "value": big[:100 * 1024]}]}])
    proc = meta.kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(obj))
    assert proc.returncode == 0
    got = meta.wait_for("sandboxpod", "big", namespace, lambda o: phase(o) in ("Running", "Failed")
                        or (o.get("status") or {}).get("reason"), timeout=90)
    annotations = got["metadata"].get("annotations") or {}
    assert sum(len(k) + len(v) for k, v in annotations.items()) < 4096, list(annotations)
    start = time.monotonic()
    meta.kubectl("delete", "sandboxpod", "big", "-n", namespace, "--timeout=60s", timeout=90)
    assert meta.get("sandboxpod", "big", namespace) is None
    assert time.monotonic() - start < 60
    left = meta.podman("ps", "--all", "--format=json", f"--filter=label=sk8s.io/namespace={namespace}").stdout
    assert json.loads(left or "[]") in ([], None)


def test_tenant_ranges_are_rejected_on_this_machine(meta):
    """No packet for a ClusterIP or an unused VPC address may follow the default route off the host."""
    import ipaddress
    import subprocess

    from operators.embedded.components import SERVICE_CIDR
    from operators.providers.local.vpc import vpc_pool
    for cidr in (SERVICE_CIDR, vpc_pool()):
        probe = str(ipaddress.ip_network(cidr).broadcast_address - 1)  # no VPC takes the pool's last /23 first
        routes = subprocess.run(["ip", "-4", "route", "show", cidr], capture_output=True, text=True).stdout
        assert routes.startswith("prohibit"), routes
        got = subprocess.run(["ip", "-4", "route", "get", probe], capture_output=True, text=True)
        assert got.returncode != 0 and "dev eth" not in got.stdout, got.stdout


def test_an_in_place_resize_a_sandbox_cannot_carry_is_refused(meta):
    """In-place resize was accepted and never applied; it is refused. (A new image is carried
    out now, as by a kubelet: tests/e2e/test_pod_lifecycle.py; ephemeral containers run:
    tests/e2e/test_pod_debug.py.)"""
    from .conftest import IMAGE
    from .tenant import make_cluster
    t = make_cluster(meta, "updates")
    try:
        t.kubectl("run", "p", f"--image={IMAGE}", "--image-pull-policy=IfNotPresent", "--", "sleep", "3600")
        t.wait_pod("p", lambda p: p["status"].get("phase") == "Running")
        t.kubectl("label", "pod", "p", "changed=yes")  # metadata changes still go through
        proc = t.kubectl("patch", "pod", "p", "--subresource=resize", "-p",
                         '{"spec":{"containers":[{"name":"p","resources":{"requests":{"cpu":"200m"}}}]}}',
                         check=False)
        # the apiserver's own refusal: the virtual node does not declare in-place resize
        assert proc.returncode != 0 and "without support for resize" in proc.stderr, proc.stderr
        pod = t.pod("p")
        assert not pod["spec"]["containers"][0].get("resources") and pod["metadata"]["labels"]["changed"] == "yes"
    finally:
        delete_cluster(meta, "updates")
