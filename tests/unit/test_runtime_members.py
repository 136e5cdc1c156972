"""A pod this runtime made is inspected by its containers' names, one podman process with
no `pod inspect`; its address comes from a container's view of the pod's network. A pod
found made (an operator restart), or one whose container went, asks podman about the pod."""
from __future__ import annotations

import json

from operators.models.podspec import PodSpec
from operators.providers.local.podman import Result
from operators.providers.local.runtime import PodmanRuntime
from operators.providers.sandbox import SandboxRef

REF = SandboxRef("ns", "pod", "uid-1")
NET = {"Networks": {"n": {"IPAddress": "10.0.0.5", "Gateway": "10.0.0.1"}}}


def member(name: str, cid: str) -> dict:
    return {"Id": cid, "Name": name, "Pod": "pod0123456789abcdef", "ImageName": "img", "Image": "sha",
            "State": {"Status": "running", "Running": True, "StartedAt": "2026-11-30T06:09:01Z"},
            "Config": {"Labels": {"sk8s.io/container": name.rsplit("-", 1)[-1]}}, "NetworkSettings": NET}


class FakePodman:
    def __init__(self):
        self.calls: list[tuple] = []
        self.containers: dict[str, dict] = {}

    async def run(self, *args, check=True, timeout=0):
        self.calls.append(args)
        if args[0] == "run":
            name = next(a for a in args if a.startswith("--name=")).split("=", 1)[1]
            self.containers[name] = member(name, f"id-{name}")
            return Result(0, f"id-{name}\n", "")
        if args[:2] == ("pod", "inspect"):
            ids = [{"Id": "infra"}] + [{"Id": c["Id"]} for c in self.containers.values()]
            return Result(0, json.dumps({"Id": "pod0123456789abcdef", "InfraContainerID": "infra",
                                         "Containers": ids}), "")
        if args[:2] == ("container", "inspect"):
            everything = {**{c["Id"]: c for c in self.containers.values()}, **self.containers,
                          "infra": {"Id": "infra", "Name": "infra", "NetworkSettings": NET}}
            found = [everything[k] for k in args[3:] if k in everything]
            return Result(0 if len(found) == len(args) - 3 else 125, json.dumps(found), "")
        if args[0] == "stop":
            return Result(0, "", "")
        raise AssertionError(args)

    def verbs(self) -> list[str]:
        return [" ".join(c[:2]) if c[0] in ("pod", "container") else c[0] for c in self.calls]


async def made_here(tmp_path, monkeypatch) -> tuple[FakePodman, PodmanRuntime]:
    monkeypatch.setattr(PodmanRuntime, "volume_root", property(lambda self: tmp_path))
    podman = FakePodman()
    rt = PodmanRuntime(podman)
    spec = PodSpec.model_validate({"containers": [{"name": "a", "image": "i"}, {"name": "b", "image": "i"}]})
    for i, c in enumerate(spec.containers):
        await rt.create_container(REF, spec, c, network="n", labels={}, dns=[], new_pod=i == 0, pulled=True)
    podman.calls.clear()
    return podman, rt


async def test_a_pod_made_here_takes_one_container_inspect(tmp_path, monkeypatch):
    podman, rt = await made_here(tmp_path, monkeypatch)
    inst = await rt.inspect_pod(REF)
    assert podman.verbs() == ["container inspect"]
    assert inst.ip == "10.0.0.5" and inst.host_ip == "10.0.0.1" and inst.instance_id == "pod012345678"
    assert sorted(c.name for c in inst.containers) == ["a", "b"] and inst.state == "running"
    await rt.inspect_pod(REF)  # nothing changed since: what was seen holds
    assert podman.verbs() == ["container inspect"]


async def test_an_exit_or_an_action_makes_the_next_inspection_ask_podman(tmp_path, monkeypatch):
    podman, rt = await made_here(tmp_path, monkeypatch)
    await rt.inspect_pod(REF)
    podman.containers["sk8s-uid-1-a"]["State"] = {"Status": "exited", "ExitCode": 3,
                                                 "StartedAt": "2026-11-30T06:09:01Z",
                                                 "FinishedAt": "2026-11-30T06:09:02Z"}
    rt.stale(REF)  # the provider's `died` event
    assert (await rt.inspect_container(REF, "a"))["State"]["Status"] == "exited"
    inst = await rt.inspect_pod(REF)
    assert [c.state for c in sorted(inst.containers, key=lambda c: c.name)] == ["terminated", "running"]
    assert podman.verbs() == ["container inspect"] * 3  # a alone, then a and b
    await rt.stop_container(REF, "b", 0)  # an action of the runtime's own
    await rt.inspect_pod(REF)
    assert podman.verbs()[-2:] == ["stop", "container inspect"]


async def test_a_pod_found_made_or_missing_a_container_asks_about_the_pod(tmp_path, monkeypatch):
    podman, rt = await made_here(tmp_path, monkeypatch)
    rt.forget(REF)  # as after an operator restart: nothing known of the pod
    inst = await rt.inspect_pod(REF)
    assert podman.verbs() == ["pod inspect", "container inspect"] and inst.ip == "10.0.0.5"
    podman, rt = await made_here(tmp_path, monkeypatch)
    del podman.containers[next(iter(podman.containers))]  # removed behind the runtime's back
    inst = await rt.inspect_pod(REF)
    assert podman.verbs() == ["container inspect", "pod inspect", "container inspect"]
    assert [c.name for c in inst.containers] == ["b"]


def test_a_died_event_makes_the_pod_stale_before_its_kubelet_reacts():
    import asyncio

    from operators.providers.local.provider import LocalProvider
    order: list[str] = []

    class Runtime:
        def stale(self, ref):
            order.append(f"stale {ref.name}")

    class Worker:
        def on_died(self, container, code):
            order.append(f"died {container} {code}")
    provider = LocalProvider.__new__(LocalProvider)
    provider.runtime, provider._workers, provider._changes = Runtime(), {REF: Worker()}, asyncio.Queue()
    labels = {"sk8s.io/namespace": "ns", "sk8s.io/name": "pod", "sk8s.io/uid": "uid-1", "sk8s.io/container": "a"}
    provider._on_event(json.dumps({"Status": "start", "Attributes": labels}).encode())
    provider._on_event(json.dumps({"Status": "died", "ContainerExitCode": 2, "Attributes": labels}).encode())
    assert order == ["stale pod", "died a 2"]
    assert provider._changes.qsize() == 2
