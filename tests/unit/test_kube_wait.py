"""Operators wait until the apiserver serves their resources before kopf looks them up."""
from __future__ import annotations

import asyncio

import pytest

from operators import kube


class Discovery:
    def __init__(self, answers):
        self.answers, self.calls, self.listed = list(answers), 0, []

    async def get(self, path, **params):
        self.listed.append(path)
        return {"items": []}

    async def api_resources(self, group_version):
        assert group_version == "sk8s.io/v1alpha1"
        self.calls += 1
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return [{"name": n, "kind": n.title()} for n in answer]


def test_waits_through_a_restarting_apiserver(monkeypatch):
    fake = Discovery([ConnectionRefusedError(), ["privatezones"], ["privatezones", "sandboxpods"]])
    monkeypatch.setattr(kube, "client", lambda: fake)
    monkeypatch.setattr(asyncio, "sleep", _no_sleep)
    asyncio.run(kube.wait_until_served("sandboxpods"))
    assert fake.calls == 3
    assert fake.listed == ["/apis/sk8s.io/v1alpha1/sandboxpods"]  # and then listed, once


def test_gives_up_with_the_reason(monkeypatch):
    monkeypatch.setattr(kube, "client", lambda: Discovery([["privatezones"]]))
    with pytest.raises(RuntimeError, match="sandboxpods not in the discovery"):
        asyncio.run(kube.wait_until_served("sandboxpods", timeout=0.05))


_real_sleep = asyncio.sleep


async def _no_sleep(_seconds):
    await _real_sleep(0)
