"""shareProcessNamespace: the pod is created with podman's pid namespace shared (its infra
process PID 1, as the kubelet's pause), containers without their own --init (podman refuses
it there), and the field carried from the tenant pod to the SandboxPod."""
import asyncio

from operators.models.podspec import PodSpec
from operators.providers.local.podenv import pod_create_args
from operators.providers.local.runtime import PodmanRuntime
from operators.providers.local.spec import run_args
from operators.providers.sandbox import SandboxRef
from operators.virtualnode.mapping.spec import build_sandboxpod

REF = SandboxRef("ns1", "web", "1234-abcd")


def spec(**extra) -> PodSpec:
    return PodSpec.model_validate({"containers": [{"name": "app", "image": "busybox:1.36"}], **extra})


def options(argv: list[str]) -> list[str]:
    return argv[:argv.index("--")] if "--" in argv else argv


def test_the_pid_namespace_is_shared_only_when_asked():
    shared, alone = spec(shareProcessNamespace=True), spec()
    assert "--share=ipc,net,uts,pid" in pod_create_args(REF, shared, network="n", dns=[])
    assert not any(a.startswith("--share") for a in pod_create_args(REF, alone, network="n", dns=[]))
    c = shared.containers[0]
    assert "--init" not in options(run_args(REF, shared, c, network="n", labels={}, new_pod=False))
    assert "--init" in options(run_args(REF, alone, alone.containers[0], network="n", labels={}, new_pod=False))


class Podman:
    def __init__(self):
        self.calls = []

    async def run(self, *args, check=True, timeout=None):
        self.calls.append(args)

        class R:
            rc, out, err = 0, "", ""
        return R()


def test_the_first_container_joins_a_pod_made_with_the_shared_namespace(tmp_path, monkeypatch):
    monkeypatch.setattr("operators.providers.local.runtime.PodmanRuntime.volume_root", tmp_path)
    podman = Podman()
    rt = PodmanRuntime(podman)
    s = spec(shareProcessNamespace=True)
    asyncio.run(rt.create_container(REF, s, s.containers[0], network="n", labels={}, dns=[], new_pod=True))
    create, run = podman.calls[0], podman.calls[-1]
    assert create[:2] == ("pod", "create") and "--share=ipc,net,uts,pid" in create
    assert run[0] == "run" and f"--pod={REF.instance_name}" in run and not any(a.startswith("--pod=new:") for a in run)


def test_the_virtual_node_carries_the_field():
    pod = {"metadata": {"name": "web", "namespace": "default", "uid": "u"},
           "spec": {"shareProcessNamespace": True, "containers": [{"name": "app", "image": "busybox:1.36"}]}}
    sbp = build_sandboxpod(pod, namespace="t", cluster="c", cluster_uid="cu", env={})
    assert sbp["spec"]["shareProcessNamespace"] is True
    assert PodSpec.model_validate(sbp["spec"]).shareProcessNamespace is True
