"""Ephemeral containers (`kubectl debug`): carried append-only from the tenant pod to its
SandboxPod, run by the local provider in the pod with the target's pid namespace, reported
apart from the pod's containers and back on the tenant pod."""
import aiohttp
import pytest
from pydantic import ValidationError

from operators.models.contracts import (LABEL_CONTAINER, LABEL_EPHEMERAL_CONTAINER, LABEL_SANDBOX_NAME,
                                        LABEL_SANDBOX_NAMESPACE, LABEL_SANDBOX_UID)
from operators.models.podspec import PodSpec
from operators.models.sandboxpod import EphemeralContainer, SandboxPod
from operators.providers.errors import InvalidSpecError
from operators.providers.local import status as local_status
from operators.providers.local.spec import run_args
from operators.providers.sandbox import ContainerInfo, SandboxInstance, SandboxRef
from operators.sandboxpod.status import build_status
from operators.virtualnode.mapping.podstatus import pod_status_from_sandbox
from operators.virtualnode.mapping.spec import ephemeral_containers

REF = SandboxRef("ns1", "web", "1234-abcd")
SPEC = PodSpec.model_validate({"containers": [{"name": "app", "image": "busybox"}]})


def debug(**extra) -> EphemeralContainer:
    return EphemeralContainer.model_validate({"name": "dbg", "image": "busybox", "targetContainerName": "app",
                                              **extra})


def _args(spec=SPEC, c=None):
    return run_args(REF, spec, c or debug(), network="n", labels={}, new_pod=False, ephemeral=True)


def test_a_debug_container_joins_the_pod_and_its_target_pid_namespace():
    args = _args(c=debug(command=["sh", "-c"], args=["--privileged", "ps"], stdin=True, tty=True))
    options = args[:args.index("--")]
    assert f"--pod={REF.instance_name}" in options
    assert f"--pid=container:{REF.instance_name}-app" in options
    assert "--init" not in options  # the target's init is PID 1 of the namespace it joins
    assert f"--label={LABEL_EPHEMERAL_CONTAINER}=true" in options
    assert "--restart=no" in options and "--interactive" in options and "--tty" in options
    # Tenant values stay data: the image first after `--`, then the args as they are.
    assert args[args.index("--") + 1:] == ["busybox", "--privileged", "ps"]


def test_without_target_it_has_its_own_init_and_with_a_shared_pid_namespace_the_pods():
    assert "--init" in _args(c=debug(targetContainerName=None))
    assert not any(a.startswith("--pid") for a in _args(c=debug(targetContainerName=None)))
    shared = PodSpec.model_validate({**SPEC.model_dump(exclude_none=True), "shareProcessNamespace": True})
    options = _args(spec=shared)
    assert "--init" not in options and not any(a.startswith("--pid") for a in options)


def test_a_target_that_is_not_a_container_of_the_pod_is_refused():
    with pytest.raises(InvalidSpecError, match="targetContainerName: 'other' is not a container of the pod"):
        _args(c=debug(targetContainerName="other"))
    with pytest.raises(ValidationError):
        debug(targetContainerName="app --pid=host")


def test_the_pods_own_containers_are_not_marked_ephemeral():
    args = run_args(REF, SPEC, SPEC.containers[0], network="n", labels={}, new_pod=False)
    assert f"--label={LABEL_EPHEMERAL_CONTAINER}=true" not in args and "--init" in args


def _inspection(name: str, *, ephemeral: bool, status: str, code: int = 0) -> dict:
    labels = {LABEL_SANDBOX_NAMESPACE: REF.namespace, LABEL_SANDBOX_NAME: REF.name, LABEL_SANDBOX_UID: REF.uid,
              LABEL_CONTAINER: name, **({LABEL_EPHEMERAL_CONTAINER: "true"} if ephemeral else {})}
    return {"Id": f"id-{name}", "Name": f"{REF.instance_name}-{name}", "Config": {"Labels": labels},
            "State": {"Status": status, "ExitCode": code, "StartedAt": "2026-01-01T00:00:00.1Z",
                      "FinishedAt": "2026-01-01T00:00:05.1Z"}}


def test_podman_inspection_reports_debug_containers_apart_and_they_make_no_phase():
    inst = local_status.instance(REF, "pod", [_inspection("app", ephemeral=False, status="running"),
                                              _inspection("dbg", ephemeral=True, status="exited", code=3)],
                                 None, "10.0.0.5", None)
    assert [c.name for c in inst.containers] == ["app"] and inst.state == "running"
    assert [(c.name, c.state, c.exit_code) for c in inst.ephemeral_containers] == [("dbg", "terminated", 3)]


def test_sandboxpod_status_lists_ephemeral_containers_in_order_never_ready():
    inst = SandboxInstance(REF, "abc", "running", ip="10.0.0.5", containers=[ContainerInfo("app", "running")],
                           ephemeral_containers=[ContainerInfo("dbg", "running", started_at="T0",
                                                               container_id="podman://x")])
    st = build_status(SPEC, inst, prev={}, generation=1, provider="local",
                      ephemeral=[{"name": "dbg", "image": "busybox"}, {"name": "late", "image": "busybox"}])
    dbg, late = st["ephemeralContainerStatuses"]
    assert dbg == {"name": "dbg", "image": "busybox", "imageID": "", "containerID": "podman://x", "ready": False,
                   "restartCount": 0, "state": {"running": {"startedAt": "T0"}}}
    assert late["state"] == {"waiting": {"reason": "ContainerCreating"}}
    assert st["phase"] == "Running" and [c["name"] for c in st["containerStatuses"]] == ["app"]
    assert build_status(SPEC, inst, prev={}, generation=1, provider="local")["ephemeralContainerStatuses"] is None


def _pod(*ephemeral):
    return {"metadata": {"name": "web", "namespace": "default", "uid": "pod-uid"},
            "spec": {"containers": [{"name": "app", "image": "i"}], "ephemeralContainers": list(ephemeral)},
            "status": {"phase": "Running"}}


def test_new_ephemeral_containers_are_appended_and_existing_entries_kept_as_they_are():
    first = {"name": "dbg", "image": "busybox", "command": ["sh"], "targetContainerName": "app", "stdin": True}
    pod = _pod(first)
    added = ephemeral_containers(pod, {}, {"dbg": [{"name": "X", "value": "1"}]})
    assert added == [{"name": "dbg", "image": "busybox", "command": ["sh"], "stdin": True,
                      "env": [{"name": "X", "value": "1"}], "targetContainerName": "app"}]
    sbp = {"ephemeralContainers": added}
    assert ephemeral_containers(pod, sbp, {}) is None  # nothing new: no patch
    second = {"name": "two", "image": "busybox", "securityContext": {"privileged": True}}
    both = ephemeral_containers(_pod(first, second), sbp, {})
    assert both[0] is added[0] and both[1] == {"name": "two", "image": "busybox",
                                                "securityContext": {"privileged": True}}


def test_the_sandboxpod_schema_keeps_ephemeral_containers_append_only():
    field = SandboxPod.model_json_schema()["properties"]["ephemeralContainers"]
    rules = [v["rule"] for v in field["x-kubernetes-validations"]]
    assert rules == ["self.size() >= oldSelf.size() && oldSelf.all(o, self.exists(n, n == o))"]


def test_the_tenant_pod_gets_ephemeral_container_statuses_with_its_own_image():
    pod = _pod({"name": "dbg", "image": "busybox:1"}, {"name": "new", "image": "busybox:2"})
    sbp = {"metadata": {"name": "default.web", "namespace": "t", "uid": "sbp-uid",
                        "labels": {"sk8s.io/pod-uid": "pod-uid"}},
           "status": {"phase": "Running", "containerStatuses": [{"name": "app", "state": {"running": {}}}],
                      "ephemeralContainerStatuses": [{"name": "dbg", "containerID": "podman://x", "imageID": "sha",
                                                      "state": {"terminated": {"exitCode": 0}}}]}}
    dbg, new = pod_status_from_sandbox(pod, sbp, now="T")["ephemeralContainerStatuses"]
    assert dbg == {"name": "dbg", "image": "busybox:1", "imageID": "sha", "ready": False, "restartCount": 0,
                   "state": {"terminated": {"exitCode": 0}}, "lastState": {}, "containerID": "podman://x"}
    assert new["state"] == {"waiting": {"reason": "ContainerCreating"}} and "containerID" not in new
    assert pod_status_from_sandbox(_pod(), sbp, now="T")["ephemeralContainerStatuses"] is None


async def test_kubectl_debug_attaches_to_the_running_debug_container_by_name(tmp_path):
    from .kubelet_tls import serve_kubelet
    from .test_virtualnode_remotecommand import SBP, FakeProvider
    pod = {"metadata": {"name": "web", "namespace": "default", "uid": "uid-1"},
           "spec": {"containers": [{"name": "c", "image": "i"}], "ephemeralContainers": [{"name": "dbg", "image": "i"}]},
           "status": {"containerStatuses": [{"name": "c", "state": {"running": {}}}],
                      "initContainerStatuses": [{"name": "i", "state": {"terminated": {"exitCode": 0}}}],
                      "ephemeralContainerStatuses": [{"name": "dbg", "state": {"running": {}}}]}}
    provider = FakeProvider()
    async with serve_kubelet(tmp_path, streams=provider, lookup=lambda ns, name: (pod, SBP)) as client:
        async with client() as c:
            async with c.ws_connect("/attach/default/web/dbg?input=1&output=1",
                                    protocols=["v4.channel.k8s.io"]) as ws:
                await ws.receive_bytes()
                await ws.close()
            before = pod["status"]["containerStatuses"][:]
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await c.ws_connect("/exec/default/web/nope?command=ls&output=1", protocols=["v4.channel.k8s.io"])
            assert refused.value.status == 404
    assert provider.log[0] == ("attach", "default.web", "dbg", True, False)
    assert pod["status"]["containerStatuses"] == before  # the cached pod is not changed by a lookup


class _Provider:
    def __init__(self, running=True, error=None):
        self.running, self.error, self.added = running, error, []

    async def inspect(self, ref):
        return SandboxInstance(ref, "abc", "running") if self.running else None

    async def add_ephemeral_container(self, ref, spec, labels, c):
        if self.error:
            raise self.error
        self.added.append((ref.name, c.name, c.targetContainerName, labels))


class _Memo:
    def __init__(self, provider):
        self.provider, self.events_sent, self.notified = provider, [], []
        self.pusher = type("P", (), {"notify": lambda _, ref: self.notified.append(ref)})()

    def events(self, *args, **kw):
        self.events_sent.append((args, kw))


def _sbp(*ephemeral):
    return {"metadata": {"name": "default.web", "namespace": "tenant-ns", "uid": "u1"},
            "spec": {"containers": [{"name": "app", "image": "busybox"}], "clusterRef": {"name": "c"}},
            "ephemeralContainers": list(ephemeral)}


async def test_the_sandboxpod_operator_runs_each_listed_debug_container_once_the_sandbox_runs(monkeypatch):
    import kopf
    from operators import tenancy
    from operators.sandboxpod.handlers.handle_ephemeral_containers import add_ephemeral_containers

    async def no_tenant(kind, body):
        return None
    monkeypatch.setattr(tenancy, "check", no_tenant)
    body = _sbp({"name": "dbg", "image": "busybox", "targetContainerName": "app"})
    memo = _Memo(_Provider(running=False))
    with pytest.raises(kopf.TemporaryError):  # the sandbox is still being made: later
        await add_ephemeral_containers(body=body, memo=memo, retry=0)
    memo = _Memo(_Provider())
    await add_ephemeral_containers(body=body, memo=memo, retry=0)
    assert memo.provider.added == [("default.web", "dbg", "app", {"sk8s.io/cluster": "c"})]
    assert memo.notified  # its status follows at once
    await add_ephemeral_containers(body=_sbp(), memo=memo, retry=0)
    assert len(memo.provider.added) == 1  # nothing listed: nothing done


async def test_a_debug_container_the_provider_refuses_is_a_warning_event_naming_it(monkeypatch):
    import kopf
    from operators import tenancy
    from operators.sandboxpod.handlers.handle_ephemeral_containers import add_ephemeral_containers

    async def no_tenant(kind, body):
        return None
    monkeypatch.setattr(tenancy, "check", no_tenant)
    monkeypatch.setattr(kopf, "warn", lambda *a, **kw: None)
    err = InvalidSpecError("ephemeral container dbg: targetContainerName: 'x' is not a container of the pod")
    memo = _Memo(_Provider(error=err))
    await add_ephemeral_containers(body=_sbp({"name": "dbg", "image": "busybox"}), memo=memo, retry=0)
    (args, kw), = memo.events_sent
    assert args[1:3] == ("Warning", "Failed") and "is not a container of the pod" in args[3]
    assert kw == {"field_path": "spec.ephemeralContainers{dbg}"}
