"""A ServerlessCluster's provider: which ones a cluster may name, the ProviderReady
condition every status writer keeps, and an access key refused by the cloud."""
from __future__ import annotations

import pytest
from aliyunsdkcore.acs_exception.exceptions import ServerException
from aliyunsdkeci.request.v20180808.DescribeContainerGroupsRequest import DescribeContainerGroupsRequest

from operators.serverlesscluster.handlers.handle_create_cluster import unavailable
from operators.serverlesscluster.status import cluster_status, provider_condition

from .emulatorkit import AK, EmulatorThread


def status(prev: dict, **kw) -> dict:
    return cluster_status(generation=1, prev=prev, control_plane=False, node=False, endpoint=None, secret=None,
                          sandbox_namespace="tenant-a-1", version="v1", **kw)


def test_provider_ready_is_written_once_and_kept_by_later_writers():
    failed = provider_condition({}, False, "InvalidAccessKeyId", "provider aliyun: disabled", 1)
    first = status({}, provider=failed, waiting="ProviderFailed", message="provider aliyun: disabled")
    conds = {c["type"]: c for c in first["conditions"]}
    assert conds["ProviderReady"]["status"] == "False" and conds["ProviderReady"]["reason"] == "InvalidAccessKeyId"
    assert conds["Ready"]["reason"] == "ProviderFailed" and first["phase"] == "Provisioning"
    # The health timer writes without knowing the provider: the condition stays as it was.
    later = status(first)
    assert [c for c in later["conditions"] if c["type"] == "ProviderReady"] == [conds["ProviderReady"]]
    ok = provider_condition(later, True, "NetworkReady", "built", 1)
    assert ok["status"] == "True" and ok["lastTransitionTime"]


def test_clusters_name_an_available_provider_in_the_region_it_serves(monkeypatch):
    monkeypatch.delenv("SK8S_ALIYUN_CREDENTIALS", raising=False)
    assert unavailable("local") is None
    assert "provider 'aliyun' is not available here (available: local)" == unavailable("aliyun", "cn-hangzhou")
    monkeypatch.setenv("SK8S_ALIYUN_CREDENTIALS", "/nonexistent")
    monkeypatch.setenv("SK8S_ALIYUN_REGION", "cn-beijing")
    assert unavailable("aliyun", "cn-beijing") is None
    assert unavailable("aliyun", "cn-hangzhou") == (
        "spec.region: 'cn-hangzhou' is not a region this installation's aliyun account serves (cn-beijing)")


def test_a_disabled_key_is_refused_as_the_cloud_refuses_it():
    emu = EmulatorThread()
    try:
        assert emu.control("keys", {"disable": [AK]}) == {"disabled": [AK]}
        with pytest.raises(ServerException) as err:
            emu.call(DescribeContainerGroupsRequest())
        assert err.value.get_error_code() == "InvalidAccessKeyId.Inactive"
        assert emu.control("keys", {"enable": [AK]}) == {"disabled": []}
        assert emu.call(DescribeContainerGroupsRequest())["ContainerGroups"] == []
    finally:
        emu.stop()
