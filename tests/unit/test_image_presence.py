"""Images seen present are remembered: a burst of pods of one image asks podman once, a
pod whose image was missing (or whose policy is Never) asks again, and a failed run
forgets the image."""
from __future__ import annotations

import asyncio

from operators.models.podspec import Container, PodSpec
from operators.providers.local.podman import Result
from operators.providers.local.runtime import PodmanRuntime
from operators.providers.sandbox import SandboxRef


class FakePodman:
    def __init__(self, images: set[str]):
        self.images = images
        self.calls: list[tuple] = []

    async def run(self, *args, check=True, timeout=0):
        self.calls.append(args)
        await asyncio.sleep(0.01)
        if args[:2] == ("image", "exists"):
            return Result(0 if args[-1] in self.images else 1, "", "")
        if args[0] == "run":
            return Result(125, "", "Error: localhost/a:1: image not known")
        return Result(0, "", "")

    def count(self, *verb: str) -> int:
        return sum(1 for c in self.calls if c[:len(verb)] == verb)


def container(image: str, policy: str = "IfNotPresent") -> Container:
    return Container.model_validate({"name": "app", "image": image, "imagePullPolicy": policy})


async def test_a_burst_of_one_present_image_asks_podman_once():
    podman = FakePodman({"localhost/a:1"})
    rt = PodmanRuntime(podman)
    events: list[tuple] = []
    await asyncio.gather(*(rt.pull_image(container("localhost/a:1"), lambda *e: events.append(e)) for _ in range(20)))
    await rt.pull_image(container("localhost/a:1"), lambda *e: events.append(e))
    assert podman.count("image", "exists") == 1
    assert [e[1] for e in events] == ["Pulled"] * 21  # "already present", each container its own event


async def test_a_missing_image_is_not_remembered_and_never_trusts_no_memory():
    podman = FakePodman(set())
    rt = PodmanRuntime(podman)
    rt.images.seen("localhost/b:1")
    for _ in range(2):
        try:
            await rt.pull_image(container("localhost/b:1", "Never"), lambda *e: None)
        except Exception as exc:  # noqa: BLE001
            assert getattr(exc, "reason", "") == "ErrImageNeverPull"
        else:
            raise AssertionError("an absent image under Never must fail")
    assert podman.count("image", "exists") == 2
    assert not await rt.images.present("localhost/b:1")  # the answer replaced the memory
    assert not await rt.images.present("localhost/b:1")
    assert podman.count("image", "exists") == 4


async def test_a_run_that_cannot_find_the_image_forgets_it(tmp_path, monkeypatch):
    monkeypatch.setattr(PodmanRuntime, "volume_root", property(lambda self: tmp_path))
    podman = FakePodman({"localhost/a:1"})
    rt = PodmanRuntime(podman)
    assert await rt.images.present("localhost/a:1")
    spec = PodSpec.model_validate({"containers": [{"name": "app", "image": "localhost/a:1"}]})
    try:
        await rt.create_container(SandboxRef("ns", "p", "u1"), spec, spec.containers[0], network="n", labels={},
                                  dns=[], new_pod=True, pulled=True)
    except Exception:  # noqa: BLE001 - the run fails; what matters is what is remembered
        pass
    assert await rt.images.present("localhost/a:1")
    assert podman.count("image", "exists") == 2  # asked again after the failed run
