"""The Alibaba OpenAPI emulator served from this test process (its loop in a thread), its
container groups real sandboxes on podman, for the e2e tests of one emulated API at a time.

Its local provider has an installation id of its own (the meta installation's plus a
suffix per test module): the installation's SandboxPod operator collects sandboxes of its
id that no SandboxPod owns, which these groups (naming made-up pods) would be. Everything
of that id is torn down at the end (`LocalProvider.teardown`). A module adds the API
modules it tests by overriding `services()`."""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import threading
import time
import urllib.request
from pathlib import Path

from aliyunsdkcore.client import AcsClient

from operators.config import home_id
from operators.emulator.alibaba import server
from operators.emulator.alibaba.eci import EciService
from operators.emulator.alibaba.podman_backend import PodmanBackend
from operators.providers.aliyun.client import AliyunClient, Credentials
from operators.providers.local.provider import LocalProvider
from operators.providers.local.streams import LocalStreams

AK, SK, REGION = "LTAI-e2e", "e2e-secret", "cn-hangzhou"


class InProcessEmulator:
    suffix = "e"  # of the installation id its sandboxes carry

    def __init__(self, meta, tmp: Path):
        conf = str(meta.home / "containers.conf")
        self.home_id = home_id(meta.home) + self.suffix
        self.provider = LocalProvider(home_id=self.home_id, containers_conf=conf, state_dir=tmp / "kubelet")
        self.backend = PodmanBackend(self.provider, LocalStreams(containers_conf=conf))
        self.eci = EciService(self.backend, schedule_delay=0.2, tick=0.2)
        extra = self.services()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.runner, self.port = self.submit(server.serve(server.Emulator({AK: SK}, [self.eci, *extra]),
                                                          "127.0.0.1", 0))

    def services(self) -> list:
        """The API modules served beside ECI."""
        return []

    def submit(self, coro, timeout: float = 120):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=timeout)

    def stop(self) -> None:
        try:
            self.submit(self.runner.cleanup())
            self.submit(self.backend.close())
            self.submit(self.provider.teardown(), timeout=300)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=10)

    def client(self) -> AliyunClient:
        """The provider's client (retries, token bucket) pointed at this emulator."""
        return AliyunClient(Credentials(AK, SK), REGION, endpoint=f"127.0.0.1:{self.port}")

    def call(self, request, **params) -> dict:
        """One request through the bare SDK; its parsed answer (ServerException as the SDK raises it)."""
        request.set_endpoint(f"127.0.0.1:{self.port}")
        request.set_protocol_type("http")
        for key, value in params.items():
            request.add_query_param(key, value)
        client = AcsClient(AK, SK, REGION, auto_retry=False, proxy={"http": None, "https": None})
        return json.loads(client.do_action_with_exception(request))

    def inventory(self) -> dict:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"http://127.0.0.1:{self.port}/_emulator/inventory", timeout=10) as resp:
            return json.loads(resp.read())

    def until(self, predicate, what: str, timeout: float = 90):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.3)
        raise AssertionError(f"not within {timeout}s: {what}")


@contextlib.contextmanager
def running(cls: type[InProcessEmulator], meta, tmp: Path):
    """An emulator of `cls`, with the installation's layout in the environment (the local
    provider reads its volumes' place from it) while it runs."""
    saved = {k: os.environ.get(k) for k in ("SK8S_HOME", "CONTAINERS_CONF")}
    os.environ.update(SK8S_HOME=str(meta.home), CONTAINERS_CONF=str(meta.home / "containers.conf"))
    emu = cls(meta, tmp)
    try:
        yield emu
    finally:
        emu.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
