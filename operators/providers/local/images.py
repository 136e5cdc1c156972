"""Which images this host holds, as the kubelet's image manager asks before every
container: one `podman image exists` per image, remembered once it says yes, and shared
by every container asking while it runs (a burst of 100 pods of one image asked 100
times, each a podman process contending with the `podman run`s: 33 s summed of an 85 s
burst, bench/burst_profile.py).

An image seen present stays present: nothing of sk8s removes images. One removed behind
its back is still safe: a container made after `pull_image` runs with `--pull=missing`
(spec.run_args), so podman pulls it then, and the run's failure to find or pull it makes
the runtime `forget` it. A pull policy of Never is the one that must not pull: it asks
podman afresh every time (`fresh`)."""
from __future__ import annotations

import asyncio

from .podman import Podman


class ImagePresence:
    def __init__(self, podman: Podman):
        self.podman = podman
        self._present: set[str] = set()
        self._asking: dict[str, asyncio.Future] = {}  # image -> its `image exists` in flight

    async def present(self, image: str, *, fresh: bool = False) -> bool:
        if not fresh and image in self._present:
            return True
        flight = self._asking.get(image)
        if flight is None:
            flight = self._asking[image] = asyncio.ensure_future(self._exists(image))
            flight.add_done_callback(lambda _: self._asking.pop(image, None))
        return await asyncio.shield(flight)

    async def _exists(self, image: str) -> bool:
        found = (await self.podman.run("image", "exists", "--", image, check=False)).rc == 0
        self.seen(image) if found else self.forget(image)
        return found

    def seen(self, image: str) -> None:
        """Known present: pulled, or inspected."""
        self._present.add(image)

    def forget(self, image: str) -> None:
        """Not known present any more: the next container asks podman again."""
        self._present.discard(image)
