"""Which SandboxPod operator takes which SandboxPod, and how the second one is started."""
from __future__ import annotations

from pathlib import Path

import pytest

from operators.config import Layout, Ports
from operators.embedded import components
from operators.sandboxpod.handlers import handle_startup
from operators.sandboxpod.ownership import takes


@pytest.mark.parametrize("mine,configured,spec,expected", [
    ("local", False, {}, True),
    ("local", False, {"provider": "local"}, True),
    ("local", False, {"provider": "aliyun"}, True),  # nobody else would refuse it
    ("local", True, {"provider": "aliyun"}, False),  # the aliyun operator's
    ("aliyun", True, {"provider": "aliyun"}, True),
    ("aliyun", True, {}, False),
    ("aliyun", True, None, False),
])
def test_each_operator_takes_its_providers_sandboxpods(monkeypatch, mine, configured, spec, expected):
    monkeypatch.setenv("SK8S_PROVIDER", mine)
    if configured:
        monkeypatch.setenv("SK8S_ALIYUN_CREDENTIALS", "/nonexistent")
    else:
        monkeypatch.delenv("SK8S_ALIYUN_CREDENTIALS", raising=False)
    assert takes(spec) is expected


def test_a_second_providers_operator_keeps_its_own_kopf_state(monkeypatch):
    monkeypatch.setenv("SK8S_PROVIDER", "local")
    assert (handle_startup.storage_suffix(), handle_startup.finalizer()) == ("", "sk8s.io/sandbox")
    monkeypatch.setenv("SK8S_PROVIDER", "aliyun")
    assert (handle_startup.storage_suffix(), handle_startup.finalizer()) == ("-aliyun", "sk8s.io/sandbox-aliyun")


def test_each_configured_provider_gets_its_own_operators():
    lay, ports = Layout(Path("/tmp/sk8s-test-home")), Ports(etcd_client=1, etcd_peer=2, apiserver=3)
    plain = components.operators(lay, ports)
    both = components.operators(lay, ports, extra_providers=["aliyun"])
    kinds = ("sandboxpod", "servicelb", "privatezone")
    assert [c.name for c in both] == [c.name for c in plain] + [f"{k}-operator-aliyun" for k in kinds]
    for kind, extra in zip(kinds, both[len(plain):]):
        assert extra.env["SK8S_PROVIDER"] == "aliyun" and f"operators.{kind}.operator" in extra.argv
    assert all("SK8S_PROVIDER" not in c.env for c in plain)
    assert len({c.health_url for c in both}) == len(both)

