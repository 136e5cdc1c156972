"""Pulls of one image asked for while one runs share it; a pull asked for later runs anew."""
from __future__ import annotations

import asyncio

from operators.models.podspec import Container
from operators.providers.local.podman import Result
from operators.providers.local.runtime import PodmanRuntime


class FakePodman:
    def __init__(self):
        self.pulls = 0

    async def run(self, *args, check=True, timeout=0):
        if args[0] == "pull":
            self.pulls += 1
            await asyncio.sleep(0.05)
            return Result(1, "", "Error: pinging container registry localhost: connection refused")
        return Result(0, "", "")  # image exists / inspect


async def test_a_burst_of_one_image_pulls_it_once_and_a_later_pod_pulls_again():
    podman = FakePodman()
    rt = PodmanRuntime(podman)
    c = Container.model_validate({"name": "app", "image": "localhost/busybox:latest"})  # Always
    events: list[tuple] = []
    await asyncio.gather(*(rt.pull_image(c, lambda *e: events.append(e)) for _ in range(20)))
    assert podman.pulls == 1
    # Each container still says it was pulling and has its image (the local one: the
    # registry is out of reach, as `--pull=newer` keeps it).
    assert [e[1] for e in events].count("Pulling") == 20 and [e[1] for e in events].count("Pulled") == 20
    await rt.pull_image(c, lambda *e: None)
    assert podman.pulls == 2
    other = Container.model_validate({"name": "x", "image": "localhost/other:latest"})
    await asyncio.gather(rt.pull_image(c, lambda *e: None), rt.pull_image(other, lambda *e: None))
    assert podman.pulls == 4
