"""Runs last: `sk8s down` stops every process it started and removes every sandbox."""
from __future__ import annotations

import json

import pytest

from operators.embedded.processes import alive

from .conftest import sandboxpod
from .tenant import wait_deletions

pytestmark = pytest.mark.e2e


def _alive(pid: int) -> bool:
    return alive(pid)  # a zombie (killed, its new parent not reaping it yet) is not left running


def test_down_leaves_nothing(meta, namespace):
    wait_deletions(meta)  # the other modules' clusters, deleted without waiting
    meta.apply(sandboxpod("leftover", [{"name": "a", "command": ["sleep", "3600"]}]), namespace)
    meta.kubectl("wait", "--for=condition=Ready", "sandboxpod/leftover", "-n", namespace, "--timeout=60s")
    state = meta.state()
    pids = [state["supervisor"]] + [c["pid"] for c in state["components"].values()]
    home_id = __import__("operators.config", fromlist=["home_id"]).home_id(meta.home)
    before = meta.podman("ps", "--all", "--format={{.Labels}}", f"--filter=label=sk8s.io/home={home_id}").stdout
    objects = meta.kubectl("get", "serverlessclusters,sandboxpods", "-A", "-o",
                           "custom-columns=KIND:.kind,NS:.metadata.namespace,NAME:.metadata.name,"
                           "DELETING:.metadata.deletionTimestamp", check=False).stdout
    out = meta.sk8s("down").stdout
    # A second sandbox would be one that outlived its SandboxPod or its cluster: say whose.
    assert "removed 1 sandbox" in out, f"{out}\ncontainers before down:\n{before}\nobjects:\n{objects}"
    assert [p for p in pids if _alive(p)] == []
    left = json.loads(meta.podman("ps", "--all", "--format=json", f"--filter=label=sk8s.io/home={home_id}").stdout
                      or "[]")
    assert left == []
    # nor any pod (VPC anchors included) or network of this installation
    for kind in ("pod", "network"):
        args = ("pod", "ps") if kind == "pod" else ("network", "ls")
        out = meta.podman(*args, "--format=json", f"--filter=label=sk8s.io/home={home_id}").stdout
        assert json.loads(out or "[]") in ([], None), f"{kind}s left: {out}"
    assert meta.sk8s("status", check=False).returncode == 3
    # and it comes back, with the same data
    meta.sk8s("up")
    assert meta.get("namespace", namespace, "") is not None
