"""A meta-cluster Pod's status -> SandboxInstance (pure), and on through the SandboxPod's
own status builder: what a tenant sees of a Pod its meta kubelet runs."""
import pytest

from operators.models.podspec import PodSpec
from operators.providers.metapod.events import relayed
from operators.providers.metapod.podbuild import MetaPlacement, build_pod
from operators.providers.metapod.podstatus import UNSCHEDULABLE, instance_from_pod, ref_from_pod
from operators.providers.sandbox import SandboxRef
from operators.sandboxpod.status import build_status

REF = SandboxRef("sk8s-t-demo", "web", "0b7e3c1a-5f7e-4c44-9a59-2f1e8c2b6d10")
SPEC = PodSpec.model_validate({"initContainers": [{"name": "init", "image": "busybox"}],
                               "containers": [{"name": "app", "image": "nginx"}, {"name": "side", "image": "envoy"}]})


def meta_pod(status: dict) -> dict:
    made = build_pod(REF, SPEC, {"sk8s.io/cluster-uid": "c-1"}, MetaPlacement("home-1"))
    return {**made, "status": status}


RUNNING = {
    "phase": "Running", "podIP": "10.244.1.7", "hostIP": "192.168.5.20", "startTime": "2026-12-01T02:00:00Z",
    "conditions": [{"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "True"}],
    "initContainerStatuses": [{"name": "init", "ready": True, "restartCount": 0, "image": "busybox:latest",
                               "imageID": "docker.io/library/busybox@sha256:aa", "containerID": "containerd://i1",
                               "state": {"terminated": {"exitCode": 0, "reason": "Completed",
                                                        "startedAt": "2026-12-01T02:00:01Z",
                                                        "finishedAt": "2026-12-01T02:00:02Z"}}}],
    "containerStatuses": [
        {"name": "app", "ready": True, "started": True, "restartCount": 2, "image": "nginx:latest",
         "imageID": "docker.io/library/nginx@sha256:bb", "containerID": "containerd://a3",
         "state": {"running": {"startedAt": "2026-12-01T02:01:00Z"}},
         "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled", "startedAt": "2026-12-01T02:00:30Z",
                                      "finishedAt": "2026-12-01T02:00:59Z"}}},
        {"name": "side", "ready": False, "started": False, "restartCount": 5, "image": "envoy",
         "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 2m40s restarting"}},
         "lastState": {"terminated": {"exitCode": 1}}}],
}


def test_a_running_pod_keeps_its_kubelets_states_restarts_and_readiness():
    inst = instance_from_pod(REF, meta_pod(RUNNING))
    assert (inst.instance_id, inst.state, inst.ip, inst.started_at) == \
        (REF.instance_name, "running", "10.244.1.7", "2026-12-01T02:00:00Z")
    assert inst.host_ip == "10.244.1.7"  # the node's address never reaches the tenant
    app, side = inst.containers
    assert (app.state, app.ready, app.started, app.restart_count, app.started_at) == \
        ("running", True, True, 2, "2026-12-01T02:01:00Z")
    assert (app.image_id, app.container_id) == ("docker.io/library/nginx@sha256:bb", "containerd://a3")
    assert (app.last_state.state, app.last_state.exit_code, app.last_state.reason) == ("terminated", 137, "OOMKilled")
    assert (side.state, side.reason, side.message, side.ready, side.restart_count) == \
        ("waiting", "CrashLoopBackOff", "back-off 2m40s restarting", False, 5)
    assert side.last_state.reason == "Error"  # exit 1 without a reason, as the kubelet names it
    assert inst.init_containers[0].state == "terminated" and inst.init_containers[0].exit_code == 0

    status = build_status(SPEC, inst, prev={}, generation=1, provider="metapod", now="2026-12-01T02:02:00Z")
    assert status["phase"] == "Running" and status["podIP"] == status["hostIP"] == "10.244.1.7"
    by_name = {c["name"]: c for c in status["containerStatuses"]}
    assert by_name["app"]["restartCount"] == 2 and by_name["app"]["ready"] is True
    assert by_name["app"]["lastState"] == {"terminated": {"exitCode": 137, "reason": "OOMKilled",
                                                          "startedAt": "2026-12-01T02:00:30Z",
                                                          "finishedAt": "2026-12-01T02:00:59Z"}}
    assert by_name["side"]["state"] == {"waiting": {"reason": "CrashLoopBackOff",
                                                    "message": "back-off 2m40s restarting"}}
    ready = {c["type"]: c["status"] for c in status["conditions"]}
    assert ready["Initialized"] == "True" and ready["Ready"] == "False"


def test_a_pending_pod_the_scheduler_cannot_place_says_so_without_failing_nor_describing_the_nodes():
    inst = instance_from_pod(REF, meta_pod({"phase": "Pending", "conditions": [
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
         "message": "0/3 nodes are available: 3 Insufficient memory."}]}))
    assert (inst.state, inst.reason, inst.ip) == ("creating", "Unschedulable", None)
    assert inst.message == UNSCHEDULABLE  # not the scheduler's, which counts the meta nodes
    status = build_status(SPEC, inst, prev={}, generation=1, provider="metapod")
    assert status["phase"] == "Pending" and status["reason"] == "Unschedulable"
    assert {c["state"]["waiting"]["reason"] for c in status["containerStatuses"]} == {"ContainerCreating"}


def test_a_pod_just_made_has_no_status_yet():
    inst = instance_from_pod(REF, meta_pod({}))
    assert (inst.state, inst.containers, inst.reason) == ("creating", [], None)


@pytest.mark.parametrize("phase, state", [("Succeeded", "exited"), ("Unknown", "unknown"), ("Weird", "unknown")])
def test_phases(phase, state):
    assert instance_from_pod(REF, meta_pod({"phase": phase})).state == state


def test_a_pod_the_kubelet_failed_fails_the_sandboxpod_with_its_reason():
    inst = instance_from_pod(REF, meta_pod({"phase": "Failed", "reason": "Evicted",
                                            "message": "The node was low on resource: memory."}))
    assert (inst.state, inst.reason, inst.message) == ("failed", "Evicted", "The node was low on resource: memory.")
    status = build_status(SPEC, inst, prev={}, generation=1, provider="metapod")
    assert (status["phase"], status["reason"]) == ("Failed", "Evicted")
    bare = instance_from_pod(REF, meta_pod({"phase": "Failed"}))
    assert bare.reason == "Failed" and "kubelet" in bare.message


def test_the_sandbox_a_pod_runs_is_read_back_from_its_labels_and_annotation():
    assert ref_from_pod(meta_pod({})) == REF
    other = meta_pod({})
    other["metadata"] = {**other["metadata"], "namespace": "elsewhere"}  # its labels name another namespace
    assert ref_from_pod(other) is None
    assert ref_from_pod({"metadata": {"namespace": "n", "name": "x", "labels": {}}}) is None


def kubelet_event(pod: dict, reason: str, **extra) -> dict:
    meta = pod["metadata"]
    return {"type": "Normal", "reason": reason, "message": f"{reason} container app",
            "involvedObject": {"kind": "Pod", "namespace": meta["namespace"], "name": meta["name"],
                               "uid": meta.get("uid", ""), "fieldPath": "spec.containers{app}"}, **extra}


def test_the_kubelets_container_events_are_relayed_to_the_sandbox_with_their_container():
    pod = meta_pod({})
    assert relayed(kubelet_event(pod, "Started"), pod) == (REF, "Normal", "Started", "Started container app",
                                                             "spec.containers{app}")
    warn = kubelet_event(pod, "BackOff", type="Warning", message="Back-off restarting failed container app")
    assert relayed(warn, pod)[1:3] == ("Warning", "BackOff")


@pytest.mark.parametrize("reason", ["Scheduled", "FailedScheduling", "Preempted", "TaintManagerEviction", "Evicted"])
def test_events_about_the_meta_cluster_stay_there(reason):
    pod = meta_pod({})
    assert relayed(kubelet_event(pod, reason), pod) is None  # e.g. "assigned ... to node-3", "0/3 nodes"


def test_events_of_other_pods_are_not_relayed():
    pod = meta_pod({})
    assert relayed(kubelet_event(pod, "Started"), None) is None  # not one of this installation's sandboxes
    other = kubelet_event(pod, "Started")
    other["involvedObject"]["name"] = "someone-else"
    assert relayed(other, pod) is None
    earlier = kubelet_event({"metadata": {**pod["metadata"], "uid": "old-uid"}}, "Started")
    assert relayed(earlier, {**pod, "metadata": {**pod["metadata"], "uid": "new-uid"}}) is None  # a previous Pod's
