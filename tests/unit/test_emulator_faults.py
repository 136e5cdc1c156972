"""The emulator's injected faults as the real SDK meets them: throttling, server errors,
latency, and connections dropped after the call was applied."""
from __future__ import annotations

import time
import urllib.error

import pytest
from aliyunsdkcore.acs_exception.exceptions import ClientException, ServerException
from aliyunsdkeci.request.v20180808.CreateContainerGroupRequest import CreateContainerGroupRequest
from aliyunsdkeci.request.v20180808.DescribeContainerGroupsRequest import DescribeContainerGroupsRequest

from operators.emulator.alibaba.faults import FaultConfig, Faults

from .emulatorkit import EmulatorThread, group_params


@pytest.fixture
def emu():
    e = EmulatorThread()
    yield e
    e.stop()


def test_throttling_rate_one_fails_every_call_unapplied(emu):
    emu.control("faults", {"throttle_rate": 1.0})
    for i, code in enumerate(["Throttling.User", "Throttling"]):
        emu.control("faults", {"throttle_code": code})
        for _ in range(3):
            with pytest.raises(ServerException) as e:
                emu.call(CreateContainerGroupRequest(), **group_params(f"sk8s-t{i}"))
            assert (e.value.get_http_status(), e.value.get_error_code()) == (400, code)
    assert emu.control("inventory") == {"ContainerGroup": []}
    emu.control("faults", {"throttle_rate": 0.0})
    emu.call(CreateContainerGroupRequest(), **group_params("sk8s-after"))
    counts = emu.control("calls")
    assert counts["calls"]["CreateContainerGroup"] == 7
    assert counts["faults"] == {"Throttling.User": 3, "Throttling": 3}


def test_server_errors_are_503_or_500(emu):
    emu.control("faults", {"error_rate": 1.0, "seed": 7})
    seen = set()
    for _ in range(12):
        with pytest.raises(ServerException) as e:
            emu.call(DescribeContainerGroupsRequest())
        seen.add((e.value.get_http_status(), e.value.get_error_code()))
    assert seen == {(503, "ServiceUnavailable"), (500, "InternalError")}


def test_a_dropped_connection_hides_an_applied_create(emu):
    emu.control("faults", {"drop_rate": 1.0})
    params = group_params("sk8s-dropped", ClientToken="sk8s-uid-1")
    with pytest.raises(ClientException) as e:
        emu.call(CreateContainerGroupRequest(), **params)
    assert e.value.get_error_code() == "SDK.HttpError"
    applied = emu.control("inventory")["ContainerGroup"]
    assert [g["ContainerGroupName"] for g in applied] == ["sk8s-dropped"]
    # The client's retry with the same token finds the group it could not hear about.
    emu.control("faults", {"drop_rate": 0.0})
    again = emu.call(CreateContainerGroupRequest(), **params)["ContainerGroupId"]
    assert again == applied[0]["ContainerGroupId"]
    assert len(emu.control("inventory")["ContainerGroup"]) == 1


def test_latency_is_added(emu):
    emu.control("faults", {"latency": 0.3})
    began = time.monotonic()
    emu.call(DescribeContainerGroupsRequest())
    assert time.monotonic() - began >= 0.3


@pytest.mark.parametrize("bad", [{"throttle_rate": 1.5}, {"drop_rate": "half"}, {"latency": -1},
                                 {"throttle_code": "Busy"}, {"nonsense": 1}, {"seed": 1.5}])
def test_fault_settings_are_validated(emu, bad):
    with pytest.raises(urllib.error.HTTPError) as e:
        emu.control("faults", bad)
    assert e.value.code == 400
    assert emu.control("faults")["throttle_rate"] == 0.0


def test_a_seed_reproduces_the_faults():
    config = FaultConfig(throttle_rate=0.3, error_rate=0.1, drop_rate=0.05, seed=42)

    def outcomes():
        f = Faults(config)
        return [(d.error.code if d.error else None, d.drop) for d in (f.decide() for _ in range(200))]

    first = outcomes()
    assert first == outcomes()
    kinds = {code for code, _ in first} | {"drop" for _, drop in first if drop}
    assert kinds >= {None, "Throttling.User", "drop"} and kinds & {"ServiceUnavailable", "InternalError"}


def test_faults_given_at_start():
    emu = EmulatorThread(faults=FaultConfig(throttle_rate=1.0, throttle_code="Throttling"))
    try:
        with pytest.raises(ServerException) as e:
            emu.call(DescribeContainerGroupsRequest())
        assert e.value.get_error_code() == "Throttling"
    finally:
        emu.stop()
