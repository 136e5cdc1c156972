"""The aliyun SandboxPod operator under a misbehaving cloud: 30 % of calls throttled, 10 %
failing with a server error and 5 % applied but answered by a dropped connection, while 50
pods are created and deleted (half of them deleted while still being created). Every pod
ends Running or gone; the emulator never holds two groups for one pod, nor a group for a
pod that is gone."""
from __future__ import annotations

import collections
import json

import pytest

from .conftest import phase, sandboxpod, until
from .test_aliyun_cluster import control
from .test_aliyun_provider import emulator

pytestmark = [pytest.mark.e2e, pytest.mark.long]  # a fault-injection run: make test-long
PODS = 50
FAULTS = {"throttle_rate": 0.3, "error_rate": 0.1, "drop_rate": 0.05}


def groups_by_uid(meta) -> dict[str, list[str]]:
    out = collections.defaultdict(list)
    for g in emulator(meta, "inventory")["ContainerGroup"]:
        uid = next((t["Value"] for t in g["Tags"] if t["Key"] == "sk8s.io/uid"), None)
        if uid:
            out[uid].append(g["ContainerGroupId"])
    return out


def test_fifty_pods_under_faults_end_running_or_gone_with_no_duplicate_or_orphan(meta, namespace):
    control(meta, "faults", FAULTS)
    try:
        pods = [sandboxpod(f"f{i:02d}", [{"name": "main", "command": ["sleep", "3600"],
                                          "resources": {"limits": {"cpu": "100m", "memory": "32Mi"}}}],
                           provider="aliyun") for i in range(PODS)]
        meta.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
                                                                             "items": pods}))
        listed = json.loads(meta.kubectl("get", "sandboxpods", "-n", namespace, "-o", "json").stdout)["items"]
        uids = {o["metadata"]["name"]: o["metadata"]["uid"] for o in listed}
        assert len(uids) == PODS
        # Half go while they are being created: a create whose answer was lost must not
        # leave its group behind.
        doomed = [f"f{i:02d}" for i in range(0, PODS, 2)]
        meta.kubectl("delete", "sandboxpods", "-n", namespace, "--wait=false", *doomed)

        last: dict[str, dict] = {}

        def settled():
            items = json.loads(meta.kubectl("get", "sandboxpods", "-n", namespace, "-o", "json").stdout)["items"]
            last.clear()
            last.update({o["metadata"]["name"]: o for o in items})
            return set(last) == set(uids) - set(doomed) and all(phase(o) == "Running" for o in last.values())
        try:
            until(settled, 300, "the 25 kept pods Running and the 25 deleted ones gone", interval=2)
        except AssertionError:
            groups = {next((t["Value"] for t in g["Tags"] if t["Key"] == "sk8s.io/uid"), None): g["Status"]
                      for g in emulator(meta, "inventory")["ContainerGroup"]}
            stuck = {n: ((o.get("status") or {}).get("phase"), (o.get("status") or {}).get("reason"),
                         groups.get(o["metadata"]["uid"])) for n, o in last.items() if phase(o) != "Running"}
            raise AssertionError(f"not settled; pods not Running (phase, reason, group status): {stuck}; "
                                 f"still there of the deleted: {sorted(set(last) & set(doomed))}") from None
        held = groups_by_uid(meta)
        duplicates = {u: ids for u, ids in held.items() if len(ids) > 1}
        assert not duplicates, duplicates
        kept = {uids[n] for n in set(uids) - set(doomed)}
        assert {u for u in held if u in uids.values()} == kept
        injected = emulator(meta, "calls")["faults"]
        assert sum(injected.values()) > 0, injected  # the faults did happen
    finally:
        control(meta, "faults", {k: 0.0 for k in FAULTS})
    meta.kubectl("delete", "sandboxpods", "--all", "-n", namespace, "--timeout=240s", timeout=260)
    until(lambda: not any(u in uids.values() for u in groups_by_uid(meta)), 120, "no group left for any pod")
