"""The runtime's per-pod cache of container ids: an inspection that began before a container
was created never stores the older list (the new container would be reported as
ContainerCreating for ever: seen in the conformance DNS test's third container)."""
import asyncio
import json
from types import SimpleNamespace

from operators.providers.local.runtime import PodmanRuntime
from operators.providers.sandbox import SandboxRef

REF = SandboxRef("ns", "pod", "uid-1")


def container(cid: str, name: str, infra: bool = False) -> dict:
    return {"Id": cid, "Name": name, "IsInfra": infra, "ImageName": "img", "Image": "sha",
            "State": {"Status": "running", "Running": True, "StartedAt": "2026-11-30T06:09:01Z"},
            "Config": {"Labels": {"sk8s.io/container": name.rsplit("-", 1)[-1]}},
            "NetworkSettings": {"Networks": {"n": {"IPAddress": "10.0.0.5", "Gateway": "10.0.0.1"}}}}


class SlowPodman:
    """`pod inspect` answers with the pod as it was when asked, after a pause."""

    def __init__(self):
        self.containers = [container("infra", "infra", infra=True), container("a1", "sk8s-uid-1-a")]
        self.gate = asyncio.Event()

    async def run(self, *args, check=True, timeout=120):
        if args[:2] == ("pod", "inspect"):
            seen = [{"Id": c["Id"]} for c in self.containers]
            await self.gate.wait()
            return SimpleNamespace(rc=0, out=json.dumps({"Id": "pod1", "InfraContainerID": "infra",
                                                         "Containers": seen}), err="")
        if args[:3] == ("container", "inspect", "--"):
            ids = set(args[3:])
            return SimpleNamespace(rc=0, out=json.dumps([c for c in self.containers if c["Id"] in ids]), err="")
        raise AssertionError(args)


def test_an_inspection_older_than_a_new_container_is_not_cached():
    async def main():
        podman = SlowPodman()
        rt = PodmanRuntime(podman)
        inspecting = asyncio.create_task(rt.inspect_pod(REF))
        await asyncio.sleep(0)  # it has asked podman, and waits for the answer
        podman.containers.append(container("b2", "sk8s-uid-1-b"))
        rt._invalidate(REF)  # what create_container does once the new container exists
        podman.gate.set()
        await inspecting
        return rt
    rt = asyncio.run(main())
    assert REF not in rt._known  # the next inspection looks at the pod afresh


def test_an_undisturbed_inspection_is_cached():
    async def main():
        podman = SlowPodman()
        podman.gate.set()
        rt = PodmanRuntime(podman)
        await rt.inspect_pod(REF)
        return rt
    rt = asyncio.run(main())
    assert REF in rt._known
