"""Init containers, restarts and probes in status: provider -> SandboxPod -> tenant pod (pure)."""
from operators.models.podspec import PodSpec
from operators.providers.sandbox import ContainerInfo, SandboxInstance, SandboxRef
from operators.sandboxpod.events import build_event, event_name
from operators.sandboxpod.status import build_status, pod_phase
from operators.virtualnode.controllers.eventmirror import tenant_event
from operators.virtualnode.mapping.podstatus import pod_status_from_sandbox, tenant_message
from operators.virtualnode.mapping.spec import build_sandboxpod

REF = SandboxRef("tenant-ns", "default.web", "sbp-uid")
T0, T1, T2 = "2026-01-01T00:00:00Z", "2026-01-01T00:00:05Z", "2026-01-01T00:01:00Z"


def spec(policy="Always", inits=("a", "b")):
    return PodSpec.model_validate({"restartPolicy": policy, "initContainers": [{"name": n, "image": "i"} for n in inits],
                                   "containers": [{"name": "app", "image": "i"}]})


def done(name, code=0):
    return ContainerInfo(name, "terminated", exit_code=code, reason="Completed" if code == 0 else "Error",
                         started_at=T0, finished_at=T1, ready=code == 0)


def waiting(name, reason="PodInitializing", message=None, **kw):
    return ContainerInfo(name, "waiting", reason=reason, message=message, ready=False, started=False, **kw)


def inst(init, apps):
    return SandboxInstance(REF, "pod1", "running", ip="10.0.0.5", host_ip="10.0.0.1", started_at=T0,
                           containers=apps, init_containers=init)


def conds(st):
    return {c["type"]: c for c in st["conditions"]}


def test_pending_and_not_initialized_while_init_containers_run():
    st = build_status(spec(), inst([done("a"), ContainerInfo("b", "running", started_at=T1)], [waiting("app")]),
                      prev={}, generation=1, provider="local", now=T2)
    assert st["phase"] == "Pending"
    c = conds(st)["Initialized"]
    assert c["status"] == "False" and c["reason"] == "ContainersNotInitialized"
    assert c["message"] == "containers with incomplete status: [b]"
    assert [s["name"] for s in st["initContainerStatuses"]] == ["a", "b"]
    assert st["initContainerStatuses"][0]["ready"] is True and "terminated" in st["initContainerStatuses"][0]["state"]
    assert st["containerStatuses"][0]["state"] == {"waiting": {"reason": "PodInitializing"}}


def test_failed_init_container_fails_the_pod_only_under_never():
    assert pod_phase(spec("Never"), [waiting("app")], [done("a", 1), waiting("b")]) == "Failed"
    assert pod_phase(spec("OnFailure"), [waiting("app")], [done("a", 1), waiting("b")]) == "Pending"
    assert pod_phase(spec("Always"), [ContainerInfo("app", "running", started_at=T1)], [done("a"), done("b")]) \
        == "Running"


def test_back_off_is_waiting_with_the_providers_last_state_and_ready_follows_probes():
    crash = ContainerInfo("app", "terminated", exit_code=2, reason="Error", started_at=T0, finished_at=T1)
    info = waiting("app", "CrashLoopBackOff", "back-off 10s restarting failed container=app pod=x", restart_count=1,
                   last_state=crash)
    st = build_status(spec(inits=()), inst([], [info]), prev={}, generation=1, provider="local", now=T2)
    cs = st["containerStatuses"][0]
    assert cs["state"]["waiting"]["reason"] == "CrashLoopBackOff" and cs["restartCount"] == 1
    assert cs["lastState"] == {"terminated": {"exitCode": 2, "reason": "Error", "startedAt": T0, "finishedAt": T1}}
    assert st["phase"] == "Running" and st["initContainerStatuses"] is None
    unready = ContainerInfo("app", "running", started_at=T1, ready=False, started=True)
    st = build_status(spec(inits=()), inst([], [unready]), prev={}, generation=1, provider="local", now=T2)
    assert conds(st)["Ready"]["status"] == "False" and st["containerStatuses"][0]["started"] is True


def tenant_pod(**spec_extra):
    return {"metadata": {"name": "web", "namespace": "default", "uid": "pod-uid", "resourceVersion": "3"},
            "spec": {"nodeName": "virtual-node", "containers": [{"name": "app", "image": "i"}], **spec_extra},
            "status": {"phase": "Pending"}}


def sandbox(status):
    return {"metadata": {"name": "default.web", "namespace": "tenant-ns", "uid": "sbp-uid",
                         "labels": {"sk8s.io/pod-uid": "pod-uid"}}, "status": status}


def test_tenant_pod_gets_init_statuses_initialized_and_its_own_identity_in_messages():
    p = tenant_pod(initContainers=[{"name": "a", "image": "i"}])
    sb = sandbox({"phase": "Pending", "podIP": "10.0.0.5",
                  "conditions": [{"type": "Initialized", "status": "False", "reason": "ContainersNotInitialized"}],
                  "initContainerStatuses": [{"name": "a", "ready": False, "restartCount": 1, "state": {"waiting": {
                      "reason": "CrashLoopBackOff",
                      "message": "back-off 10s restarting failed container=a pod=default.web_tenant-ns(sbp-uid)"}},
                      "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}}}],
                  "containerStatuses": [{"name": "app", "ready": False, "restartCount": 0,
                                         "state": {"waiting": {"reason": "PodInitializing"}}}]})
    st = pod_status_from_sandbox(p, sb, now=T2)
    init = st["initContainerStatuses"][0]
    assert init["state"]["waiting"]["message"] == "back-off 10s restarting failed container=a pod=web_default(pod-uid)"
    assert init["restartCount"] == 1 and init["lastState"]["terminated"]["exitCode"] == 1
    c = conds(st)["Initialized"]
    assert c["status"] == "False" and c["message"] == "containers with incomplete status: [a]"
    assert st["phase"] == "Pending"
    sb["status"]["conditions"] = [{"type": "Initialized", "status": "True"}]
    assert conds(pod_status_from_sandbox(p, sb, now=T2))["Initialized"]["status"] == "True"
    # before any SandboxPod, a pod with init containers is initializing
    early = pod_status_from_sandbox(p, None, now=T2)
    assert early["containerStatuses"][0]["state"] == {"waiting": {"reason": "PodInitializing"}}
    assert conds(early)["Initialized"]["status"] == "False"


def test_probes_and_init_containers_are_carried_to_the_sandboxpod():
    probe = {"httpGet": {"path": "/ready", "port": "http", "scheme": "HTTP"}, "periodSeconds": 2,
             "failureThreshold": 1, "timeoutSeconds": 1, "initialDelaySeconds": 0}
    p = tenant_pod(initContainers=[{"name": "setup", "image": "i", "command": ["sh", "-c", "echo $(X)"]}])
    p["spec"]["containers"][0].update(readinessProbe=probe, livenessProbe={"grpc": {"port": 9}},
                                      startupProbe={"tcpSocket": {"port": 8080}, "failureThreshold": 30})
    env = {"setup": [{"name": "X", "value": "1"}]}
    sbp = build_sandboxpod(p, namespace="tenant-ns", cluster="c", cluster_uid="cu", env=env)
    app = sbp["spec"]["containers"][0]
    assert app["readinessProbe"] == probe and app["startupProbe"] == {"tcpSocket": {"port": 8080},
                                                                       "failureThreshold": 30}
    assert app["livenessProbe"] == {"grpc": {"port": 9}}  # run by the sandbox's kubelet (grpcprobe.py)
    assert sbp["spec"]["initContainers"] == [{"name": "setup", "image": "i", "command": ["sh", "-c", "echo 1"],
                                               "env": [{"name": "X", "value": "1"}]}]
    PodSpec.model_validate(sbp["spec"])


def test_kubelet_events_count_on_one_object_and_reach_the_tenant_pod_as_its_own():
    msg = "Back-off restarting failed container app in pod default.web_tenant-ns(sbp-uid)"
    assert event_name(REF, "BackOff", msg) == event_name(REF, "BackOff", msg) != event_name(REF, "BackOff", msg + "!")
    ev = build_event(REF, "Warning", "BackOff", msg, count=3, first=T0, now=T2, host="h")
    assert ev["involvedObject"]["kind"] == "SandboxPod" and ev["count"] == 3 and ev["firstTimestamp"] == T0
    p, sb = tenant_pod(), sandbox({})
    mirrored = tenant_event(ev, p, sb, "virtual-node")
    assert mirrored["message"] == "Back-off restarting failed container app in pod web_default(pod-uid)"
    assert mirrored["involvedObject"] == {"apiVersion": "v1", "kind": "Pod", "name": "web", "namespace": "default",
                                          "uid": "pod-uid"}
    assert mirrored["count"] == 3 and mirrored["type"] == "Warning" and mirrored["source"]["component"] == "kubelet"
    assert mirrored["metadata"]["name"].startswith("web.")
    assert tenant_message("no identity here", sb, p) == "no identity here"


def test_sidecars_count_as_initialized_once_started_and_never_fail_the_pod():
    s = PodSpec.model_validate({"restartPolicy": "Never", "containers": [{"name": "app", "image": "i"}],
                                "initContainers": [{"name": "a", "image": "i"},
                                                   {"name": "proxy", "image": "i", "restartPolicy": "Always"}]})
    proxy = ContainerInfo("proxy", "running", started_at=T1, started=True, ready=True)
    st = build_status(s, inst([done("a"), proxy], [ContainerInfo("app", "running", started_at=T1)]), prev={},
                      generation=1, provider="local", now=T2)
    assert conds(st)["Initialized"]["status"] == "True" and st["phase"] == "Running"
    assert pod_phase(s, [waiting("app")], [done("a"), ContainerInfo("proxy", "running", started=False)]) == "Pending"
    stopped = ContainerInfo("proxy", "terminated", exit_code=143, reason="Error", started_at=T0, finished_at=T2)
    assert pod_phase(s, [done("app")], [done("a"), stopped]) == "Succeeded"  # a Job with a sidecar completes


def test_not_running_while_a_container_is_still_being_created_the_first_time():
    two = PodSpec.model_validate({"containers": [{"name": "app", "image": "i"}, {"name": "side", "image": "i"}]})
    up = ContainerInfo("app", "running", started_at=T1)
    assert pod_phase(two, [up, waiting("side", "ContainerCreating")]) == "Pending"
    assert pod_phase(two, [up, ContainerInfo("side", "running", started_at=T1)]) == "Running"
    # an error to report (or a restart) is not a first start: the pod runs meanwhile
    assert pod_phase(two, [up, waiting("side", "ImagePullBackOff")]) == "Running"
    assert pod_phase(two, [up, waiting("side", "CrashLoopBackOff", restart_count=2)]) == "Running"
