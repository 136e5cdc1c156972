"""The virtual node's kubelet API over real mutual TLS, with an in-memory provider."""
import asyncio
import datetime as dt

import pytest_asyncio

from .kubelet_tls import serve_kubelet

POD = {"metadata": {"name": "web", "namespace": "default", "uid": "uid-1"},
       "spec": {"nodeName": "virtual-node", "containers": [{"name": "c", "image": "i"}]},
       "status": {"containerStatuses": [{"name": "c", "containerID": "podman://1", "restartCount": 0,
                                         "state": {"running": {}}}]}}
SBP = {"metadata": {"name": "default.web", "uid": "sbp-1", "labels": {"sk8s.io/pod-uid": "uid-1"}}}


class FakeStreams:
    """A streaming side that honours tail and follow, and records the options it was given."""

    def __init__(self):
        self.calls = []

    async def logs(self, ref, container, opts):
        self.calls.append((ref, container, opts))
        lines = [f"line {i}\n".encode() for i in range(5)]
        for line in lines[-opts.tail:] if opts.tail else lines:
            yield line[:opts.limit_bytes] if opts.limit_bytes else line
        while opts.follow:
            await asyncio.sleep(0.01)
            yield b"tick\n"


# Same loop as the test: the server must run while the test's client talks to it.
@pytest_asyncio.fixture(loop_scope="function")
async def kubelet(tmp_path):
    provider = FakeStreams()
    async with serve_kubelet(tmp_path, streams=provider,
                             lookup=lambda ns, name: (POD, SBP) if (ns, name) == ("default", "web") else (None, None)
                             ) as client:
        yield client, provider


async def test_logs_tail_limit_and_errors(kubelet):
    client, provider = kubelet
    async with client() as c:
        async with c.get("/containerLogs/default/web/c?tailLines=2&timestamps=true&sinceSeconds=60") as r:
            assert r.status == 200 and await r.text() == "line 3\nline 4\n"
        ref, container, opts = provider.calls[-1]
        assert (ref.namespace, ref.name, ref.uid) == ("tenant-a", "default.web", "sbp-1")
        assert (container, opts.follow, opts.tail, opts.timestamps, opts.since_seconds) == ("c", False, 2, True, 60)
        async with c.get("/containerLogs/default/web/c?limitBytes=3&sinceTime=2026-11-29T21:00:00Z") as r:
            assert await r.text() == "linlinlinlinlin"  # the provider applies the limit
        _, _, opts = provider.calls[-1]
        assert opts.limit_bytes == 3 and opts.since_time == dt.datetime(2026, 11, 29, 21, tzinfo=dt.timezone.utc)
        for bad, named in (("timestamps=maybe", "timestamps"), ("sinceSeconds=0", "sinceSeconds"),
                           ("sinceTime=yesterday", "sinceTime"), ("limitBytes=x", "limitBytes"),
                           ("sinceSeconds=5&sinceTime=2026-11-29T21:00:00Z", "sinceTime or sinceSeconds")):
            async with c.get(f"/containerLogs/default/web/c?{bad}") as r:
                assert r.status == 400 and named in await r.text(), bad
        calls = len(provider.calls)
        async with c.get("/containerLogs/default/nope/c") as r:
            assert r.status == 404 and "not on this node" in await r.text()
        async with c.get("/containerLogs/default/web/x") as r:
            assert r.status == 404 and 'container "x" not found' in await r.text()
        async with c.get("/containerLogs/default/web/c?previous=true") as r:
            assert r.status == 400 and "previous terminated container" in await r.text()
        async with c.get("/containerLogs/default/web/c?tailLines=-1") as r:
            assert r.status == 400
        assert len(provider.calls) == calls  # a refused request never reached the provider
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
