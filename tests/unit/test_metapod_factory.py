"""How the metapod provider is offered and made: by name, from operator config only
(config.metapod_settings), and how the meta apiserver's refusals become ProviderErrors."""
from __future__ import annotations

import pytest

from operators.kubeclient.client import ApiError
from operators.providers import available_providers, make_provider, make_streams
from operators.providers.metapod.provider import MetaPodProvider, provider_error
from operators.providers.metapod.streams import MetaPodStreams
from operators.sandboxpod.ownership import takes

KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: m, cluster: {server: "https://meta.example:6443", insecure-skip-tls-verify: true}}]
users: [{name: vn, user: {token: vn-token}}]
contexts: [{name: m, context: {cluster: m, user: vn}}]
current-context: m
"""


@pytest.fixture
def env(monkeypatch, tmp_path):
    monkeypatch.setenv("SK8S_HOME", str(tmp_path / "home"))
    for name in ("SK8S_METAPOD", "SK8S_PROVIDER", "SK8S_SANDBOX_RUNTIME_CLASS", "SK8S_METAPOD_NAMESERVERS",
                 "SK8S_ALIYUN_CREDENTIALS"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_offered_only_where_configured_and_its_sandboxpods_left_to_its_operator(env):
    assert "metapod" not in available_providers()
    assert takes({"provider": "metapod"})  # the default operator takes it, to refuse it by name
    env.setenv("SK8S_METAPOD", "true")
    assert available_providers() == ["local", "metapod"]
    assert not takes({"provider": "metapod"})  # now the metapod operator's
    env.delenv("SK8S_METAPOD")
    env.setenv("SK8S_PROVIDER", "metapod")
    assert "metapod" in available_providers() and takes({"provider": "metapod"}) and not takes({})


def test_made_by_name_with_the_runtime_class_and_resolvers_of_the_config(env):
    env.setenv("SK8S_SANDBOX_RUNTIME_CLASS", "gvisor")
    env.setenv("SK8S_METAPOD_NAMESERVERS", "10.96.0.10, 10.96.0.11,")
    provider = make_provider("metapod")
    assert isinstance(provider, MetaPodProvider) and provider.name == "metapod"
    assert (provider.placement.runtime_class, provider.placement.name_servers) == ("gvisor", ("10.96.0.10",
                                                                                             "10.96.0.11"))
    assert provider.placement.home_id  # this installation's: its Pods are listed by it


def test_streams_use_the_virtual_nodes_own_meta_credentials(env, tmp_path):
    path = tmp_path / "meta.kubeconfig"
    path.write_text(KUBECONFIG)
    streams = make_streams("metapod", meta_kubeconfig=str(path))
    assert isinstance(streams, MetaPodStreams)
    client = streams._client()
    assert client.creds.server == "https://meta.example:6443"
    assert client.creds.headers["Authorization"] == "Bearer vn-token"


@pytest.mark.parametrize("err, retryable", [
    (ApiError(422, "Invalid", "Pod is invalid: spec.containers[0].image: Required value"), False),
    (ApiError(400, "BadRequest", "bad"), False),
    (ApiError(403, "Forbidden", 'pods "x" is forbidden: violates PodSecurity "restricted:latest"'), False),
    (ApiError(403, "Forbidden", "User cannot create resource pods"), True),  # rights can be granted
    (ApiError(404, "NotFound", 'namespaces "t" not found'), True),
    (ApiError(0, "Unreachable", "meta API POST: connection refused"), True),
    (ApiError(429, "TooManyRequests", "slow down"), True),
])
def test_the_apiservers_refusal_of_a_spec_is_final_the_rest_is_retried(err, retryable):
    out = provider_error(err, "creating Pod t/sk8s-u")
    assert out.retryable is retryable and str(err) in str(out)
    assert out.reason == (err.reason or "ApiError")
