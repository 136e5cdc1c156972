"""The Alibaba OpenAPI emulator served on 127.0.0.1 (a free port) from a thread running
its own event loop, and the real SDK (aliyunsdkcore's AcsClient, synchronous) calling it."""
from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.request
from typing import Any, Callable

from aliyunsdkcore.client import AcsClient
from aliyunsdkcore.request import RpcRequest

from operators.emulator.alibaba import server
from operators.emulator.alibaba.backends import MemoryBackend
from operators.emulator.alibaba.eci import EciService
from operators.emulator.alibaba.faults import FaultConfig, Faults

AK, SK, REGION = "LTAI-test-key", "test-secret", "cn-hangzhou"


class EmulatorThread:
    def __init__(self, *, start_delay: float = 0.0, run_time: float = 0.0, schedule_delay: float = 0.0,
                 tick: float = 0.02, faults: FaultConfig | None = None, services: tuple = (),
                 emulator: server.Emulator | None = None):
        """ECI (and `services`) on a MemoryBackend; or `emulator` as given (server.build's
        whole cloud), its ECI service first."""
        if emulator is None:
            self.backend = MemoryBackend(start_delay=start_delay, run_time=run_time)
            self.eci = EciService(self.backend, schedule_delay=schedule_delay, tick=tick)
            emulator = server.Emulator({AK: SK}, [self.eci, *services], Faults(faults))
        else:
            self.eci = emulator.services[0]
            self.backend = self.eci.backend
        self.emulator = emulator
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.runner, self.port = self.submit(server.serve(self.emulator, "127.0.0.1", 0))

    def submit(self, coro) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    def stop(self) -> None:
        self.submit(self.runner.cleanup())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()

    def client(self, ak: str = AK, sk: str = SK) -> AcsClient:
        return AcsClient(ak, sk, REGION, auto_retry=False, proxy={"http": None, "https": None})

    def call(self, request: RpcRequest, client: AcsClient | None = None, **params: Any) -> dict:
        """Send one request through the SDK; its parsed JSON answer (ServerException or
        ClientException raised as the SDK raises them)."""
        request.set_endpoint(f"127.0.0.1:{self.port}")
        request.set_protocol_type("http")
        for key, value in params.items():
            request.add_query_param(key, value)
        return json.loads((client or self.client()).do_action_with_exception(request))

    def add_account(self, name: str, keys: dict[str, str]) -> dict:
        """POST /_emulator/accounts: the account `name` with these keys ({id: secret}), or
        more keys to it; urllib's HTTPError (400) for a key already known."""
        return self.control("accounts", {"name": name, "keys": keys})

    def control(self, path: str, body: dict | None = None, method: str | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/_emulator/{path}", data=data,
                                     method=method or ("POST" if data else "GET"),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(req, timeout=10) as resp:
            return json.loads(resp.read())


def group_params(name: str = "sk8s-test", **extra: str) -> dict[str, str]:
    """The minimal valid CreateContainerGroup parameters, as the provider's builder spells them."""
    return {"ContainerGroupName": name, "SecurityGroupId": "sg-test", "VSwitchId": "vsw-test",
            "Container.1.Name": "main", "Container.1.Image": "busybox", **extra}


def until(predicate: Callable[[], Any], timeout: float = 10.0, every: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout}s: {predicate}")
        time.sleep(every)
