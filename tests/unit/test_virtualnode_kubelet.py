"""The virtual node's kubelet API over real mutual TLS, with an in-memory provider."""
import asyncio

import pytest_asyncio

from .kubelet_tls import serve_kubelet

POD = {"metadata": {"name": "web", "namespace": "default", "uid": "uid-1"},
       "spec": {"nodeName": "virtual-node", "containers": [{"name": "c", "image": "i"}]},
       "status": {"containerStatuses": [{"name": "c", "containerID": "podman://1", "restartCount": 0,
                                         "state": {"running": {}}}]}}
SBP = {"metadata": {"name": "default.web", "uid": "sbp-1", "labels": {"sk8s.io/pod-uid": "uid-1"}}}


class FakeProvider:
    def __init__(self):
        self.calls = []

    async def logs(self, ref, container, *, follow=False, tail=None, timestamps=False, since=None):
        self.calls.append((ref, container, follow, tail, timestamps, since))
        lines = [f"line {i}\n".encode() for i in range(5)]
        for line in lines[-tail:] if tail else lines:
            yield line
        while follow:
            await asyncio.sleep(0.01)
            yield b"tick\n"


# Same loop as the test: the server must run while the test's client talks to it.
@pytest_asyncio.fixture(loop_scope="function")
async def kubelet(tmp_path):
    provider = FakeProvider()
    async with serve_kubelet(tmp_path, provider=provider,
                             lookup=lambda ns, name: (POD, SBP) if (ns, name) == ("default", "web") else (None, None)
                             ) as client:
        yield client, provider


async def test_logs_tail_limit_and_errors(kubelet):
    client, provider = kubelet
    async with client() as c:
        async with c.get("/containerLogs/default/web/c?tailLines=2&timestamps=true&sinceSeconds=60") as r:
            assert r.status == 200 and await r.text() == "line 3\nline 4\n"
        ref, container, follow, tail, timestamps, since = provider.calls[-1]
        assert (ref.namespace, ref.name, ref.uid) == ("tenant-a", "default.web", "sbp-1")
        assert (container, follow, tail, timestamps) == ("c", False, 2, True) and since.endswith("Z")
        async with c.get("/containerLogs/default/web/c?limitBytes=3") as r:
            assert await r.text() == "lin"
        async with c.get("/containerLogs/default/nope/c") as r:
            assert r.status == 404 and "not on this node" in await r.text()
        async with c.get("/containerLogs/default/web/x") as r:
            assert r.status == 404 and 'container "x" not found' in await r.text()
        async with c.get("/containerLogs/default/web/c?previous=true") as r:
            assert r.status == 400 and "previous terminated container" in await r.text()
        async with c.get("/containerLogs/default/web/c?tailLines=-1") as r:
            assert r.status == 400
        async with c.post("/run/default/web/c?cmd=ls") as r:
            assert r.status == 501 and "run is not supported" in await r.text()
        async with c.get("/healthz") as r:
            assert await r.text() == "ok"


async def test_follow_streams_until_the_client_leaves(kubelet):
    client, _ = kubelet
    async with client() as c:
        async with c.get("/containerLogs/default/web/c?follow=true&tailLines=1") as r:
            assert r.headers.get("Transfer-Encoding") == "chunked"
            assert await r.content.readline() == b"line 4\n"
            assert await r.content.readline() == b"tick\n"


async def test_only_the_apiserver_identity_is_let_in(kubelet):
    client, _ = kubelet
    async with client("someone") as c:
        async with c.get("/containerLogs/default/web/c") as r:
            assert r.status == 403
