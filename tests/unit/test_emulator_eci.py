"""The emulator's ECI API through the real SDK (AcsClient + aliyunsdkeci request classes)
against the server on a free loopback port: authentication, idempotency, pagination,
filters, the groups' asynchronous states, deletion and logs."""
from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from urllib.parse import urlencode

import pytest
from aliyunsdkcore.acs_exception.exceptions import ServerException
from aliyunsdkcore.auth.composer import rpc_signature_composer as composer
from aliyunsdkcore.request import RpcRequest
from aliyunsdkeci.request.v20180808.CreateContainerGroupRequest import CreateContainerGroupRequest
from aliyunsdkeci.request.v20180808.DeleteContainerGroupRequest import DeleteContainerGroupRequest
from aliyunsdkeci.request.v20180808.DescribeContainerGroupsRequest import DescribeContainerGroupsRequest
from aliyunsdkeci.request.v20180808.DescribeContainerLogRequest import DescribeContainerLogRequest

from operators.emulator.alibaba import server
from operators.emulator.alibaba.backends import MemoryBackend
from operators.emulator.alibaba.eci import Call, EciService
from operators.emulator.alibaba.eci_groups import render

from .emulatorkit import AK, SK, EmulatorThread, group_params, until


@pytest.fixture
def emu():
    e = EmulatorThread()
    yield e
    e.stop()


def create(emu: EmulatorThread, **params) -> str:
    return emu.call(CreateContainerGroupRequest(), **params)["ContainerGroupId"]


def describe(emu: EmulatorThread, **params) -> dict:
    return emu.call(DescribeContainerGroupsRequest(), **params)


def server_error(call) -> ServerException:
    with pytest.raises(ServerException) as e:
        call()
    return e.value


def test_a_signed_request_creates_a_group_the_listing_shows(emu):
    gid = create(emu, **group_params("sk8s-one", **{"Tag.1.Key": "sk8s-owner", "Tag.1.Value": "t1",
                                                     "Container.1.Port.1.Port": "80", "Container.1.Cpu": "0.5"}))
    assert gid.startswith("eci-") and len(gid) == 24
    group = until(lambda: [g for g in describe(emu)["ContainerGroups"] if g["Status"] == "Running"])[0]
    assert group["ContainerGroupId"] == gid and group["ContainerGroupName"] == "sk8s-one"
    assert group["Tags"] == [{"Key": "sk8s-owner", "Value": "t1"}]
    assert group["RegionId"] == "cn-hangzhou" and group["VSwitchId"] == "vsw-test" and group["IntranetIp"]
    container = group["Containers"][0]
    assert container["Ports"] == [{"Port": 80, "Protocol": "TCP"}] and container["Cpu"] == 0.5
    assert container["Ready"] is True and container["CurrentState"]["State"] == "Running"
    assert container["CurrentState"]["StartTime"].endswith("Z") and "T" in container["CurrentState"]["StartTime"]
    assert emu.control("inventory") == {"ContainerGroup": [
        {"ContainerGroupId": gid, "ContainerGroupName": "sk8s-one", "Status": "Running",
         "RegionId": "cn-hangzhou", "Tags": [{"Key": "sk8s-owner", "Value": "t1"}],
         "Account": "default"}]}
    assert emu.control("calls")["calls"]["CreateContainerGroup"] == 1


def test_a_wrong_secret_is_refused(emu):
    # The cloud answers SignatureDoesNotMatch with its string to sign; the SDK, finding it
    # equal to its own, reports the wrong secret as InvalidAccessKeySecret.
    e = server_error(lambda: describe_with(emu, emu.client(AK, "not-the-secret")))
    assert (e.get_http_status(), e.get_error_code()) == (400, "InvalidAccessKeySecret")
    assert emu.control("calls")["errors"] == {"SignatureDoesNotMatch": 1}


def describe_with(emu, client):
    return emu.call(DescribeContainerGroupsRequest(), client=client)


def test_a_tampered_request_gets_signature_does_not_match_in_the_clouds_shape(emu):
    url, _ = composer.get_signed_url({"Action": "DescribeContainerGroups", "Version": "2018-08-08",
                                      "RegionId": "cn-hangzhou"}, AK, SK, "JSON", "GET", {})
    tampered = url.replace("RegionId=cn-hangzhou", "RegionId=cn-beijing")
    with pytest.raises(urllib.error.HTTPError) as e:
        _open(f"http://127.0.0.1:{emu.port}{tampered}")
    assert e.value.code == 400
    answer = json.loads(e.value.read())
    assert set(answer) == {"RequestId", "HostId", "Code", "Message", "Recommend"}
    assert answer["Code"] == "SignatureDoesNotMatch" and "cn-beijing" in answer["Message"].split(":", 1)[1]
    assert answer["HostId"] == "eci.aliyuncs.com"


def _open(url: str, data: bytes | None = None):
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(urllib.request.Request(url, data=data), timeout=10) as resp:
        return json.loads(resp.read())


def test_post_with_form_parameters_is_served(emu):
    body = {"ContainerGroupIds": "[]"}
    url, _ = composer.get_signed_url({"Action": "DescribeContainerGroups", "Version": "2018-08-08",
                                      "RegionId": "cn-hangzhou"}, AK, SK, "JSON", "POST", body)
    answer = _open(f"http://127.0.0.1:{emu.port}{url}", data=urlencode(body).encode())
    assert answer["TotalCount"] == 0 and answer["ContainerGroups"] == []


def test_an_unknown_access_key_is_not_found(emu):
    e = server_error(lambda: describe_with(emu, emu.client("LTAI-nobody", SK)))
    assert (e.get_http_status(), e.get_error_code()) == (404, "InvalidAccessKeyId.NotFound")


def test_an_unknown_action_is_not_found(emu):
    e = server_error(lambda: emu.call(RpcRequest("Eci", "2018-08-08", "NoSuchAction", "eci")))
    assert (e.get_http_status(), e.get_error_code()) == (404, "InvalidAction.NotFound")


def test_client_token_makes_a_create_idempotent(emu):
    params = group_params("sk8s-idem", ClientToken="sk8s-0123-uid")
    first, second = create(emu, **params), create(emu, **params)
    assert first == second
    assert [g["ContainerGroupId"] for g in emu.control("inventory")["ContainerGroup"]] == [first]
    e = server_error(lambda: create(emu, **{**params, "Container.1.Image": "nginx"}))
    assert (e.get_http_status(), e.get_error_code()) == (400, "IdempotentParameterMismatch")
    assert create(emu, **{**params, "ClientToken": "another"}) != first


@pytest.mark.parametrize("drop, code", [
    ("SecurityGroupId", "MissingParameter"), ("VSwitchId", "MissingParameter"),
    ("ContainerGroupName", "MissingParameter"), ("Container.1.Image", "MissingParameter"),
    ("Container.1.Name", "MissingParameter"),
])
def test_create_requires_its_parameters(emu, drop, code):
    params = {k: v for k, v in group_params().items() if k != drop}
    e = server_error(lambda: create(emu, **params))
    assert (e.get_http_status(), e.get_error_code()) == (400, code) and drop in e.get_error_msg()
    assert emu.control("inventory") == {"ContainerGroup": []}


@pytest.mark.parametrize("extra", [{"ContainerGroupName": "Upper_Case"}, {"RestartPolicy": "Sometimes"},
                                   {"Cpu": "lots"}, {"Container.2.Name": "main", "Container.2.Image": "x"},
                                   {"Container.1.Port.1.Port": "70000"},
                                   {"Tag.1.Key": "acs:owner", "Tag.1.Value": "x"},
                                   {"Tag.1.Key": "k", "Tag.1.Value": "see https://example.com"}])
def test_create_refuses_invalid_values(emu, extra):
    e = server_error(lambda: create(emu, **group_params(**extra)))
    assert e.get_error_code() == "InvalidParameter"


def test_pagination_returns_every_group_exactly_once(emu):
    created = {create(emu, **group_params(f"sk8s-page-{i}")) for i in range(45)}
    seen, token, pages = [], None, []
    while True:
        answer = describe(emu, Limit="20", **({"NextToken": token} if token else {}))
        assert answer["TotalCount"] == 45
        pages.append(len(answer["ContainerGroups"]))
        seen += [g["ContainerGroupId"] for g in answer["ContainerGroups"]]
        token = answer["NextToken"]
        if not token:
            break
    assert pages == [20, 20, 5]
    assert len(seen) == 45 and set(seen) == created
    assert len(describe(emu)["ContainerGroups"]) == 10  # the default Limit
    for limit in ("21", "0", "ten"):
        assert server_error(lambda: describe(emu, Limit=limit)).get_error_code() == "InvalidParameter"


def test_filters_by_ids_name_status_and_tags(emu):
    a = create(emu, **group_params("sk8s-a", **{"Tag.1.Key": "team", "Tag.1.Value": "x"}))
    b = create(emu, **group_params("sk8s-b", **{"Tag.1.Key": "team", "Tag.1.Value": "y"}))
    c = create(emu, **group_params("sk8s-c"))

    def ids(**params):
        return {g["ContainerGroupId"] for g in describe(emu, **params)["ContainerGroups"]}

    assert ids(ContainerGroupIds=json.dumps([a, c, "eci-unknown"])) == {a, c}
    assert ids(ContainerGroupName="sk8s-b") == {b}
    assert ids(**{"Tag.1.Key": "team", "Tag.1.Value": "x"}) == {a}
    assert ids(**{"Tag.1.Key": "team"}) == {a, b}
    until(lambda: ids(Status="Running") == {a, b, c})
    assert ids(Status="Pending") == set()
    assert server_error(lambda: ids(ContainerGroupIds="eci-x")).get_error_code() == "InvalidParameter"


def test_delete_removes_the_group_and_its_containers(emu):
    gid = create(emu, **group_params("sk8s-del"))
    until(lambda: gid in emu.backend.runs)
    assert emu.call(DeleteContainerGroupRequest(), ContainerGroupId=gid).keys() == {"RequestId"}
    assert describe(emu)["ContainerGroups"] == []
    until(lambda: gid in emu.backend.deleted and gid not in emu.backend.runs)
    e = server_error(lambda: emu.call(DeleteContainerGroupRequest(), ContainerGroupId=gid))
    assert (e.get_http_status(), e.get_error_code()) == (404, "InvalidParameter.NotFound")


def test_container_logs(emu):
    gid = create(emu, **group_params("sk8s-logs"))
    until(lambda: describe(emu)["ContainerGroups"][0]["Status"] == "Running")
    answer = emu.call(DescribeContainerLogRequest(), ContainerGroupId=gid, ContainerName="main",
                      Tail="1", Timestamps="true")
    assert answer["ContainerName"] == "main"
    assert answer["Content"].endswith("main: started busybox\n") and answer["Content"][:4].isdigit()
    e = server_error(lambda: emu.call(DescribeContainerLogRequest(), ContainerGroupId=gid, ContainerName="nope"))
    assert e.get_error_code() == "InvalidParameter"


def _statuses(emu: EmulatorThread, gid: str, final: str) -> list[str]:
    seen: list[str] = []

    def observe():
        status = describe(emu, ContainerGroupIds=json.dumps([gid]))["ContainerGroups"][0]["Status"]
        if not seen or seen[-1] != status:
            seen.append(status)
        return status == final

    until(observe, timeout=15, every=0.01)
    return seen


def test_a_group_moves_scheduling_pending_running_then_succeeded():
    emu = EmulatorThread(schedule_delay=0.4, start_delay=0.4, run_time=0.6)
    try:
        gid = create(emu, **group_params("sk8s-job", RestartPolicy="Never", **{"Container.1.Image": "exit/0"}))
        assert _statuses(emu, gid, "Succeeded") == ["Scheduling", "Pending", "Running", "Succeeded"]
        group = describe(emu)["ContainerGroups"][0]
        state = group["Containers"][0]["CurrentState"]
        assert (state["State"], state["ExitCode"], state["Reason"]) == ("Terminated", 0, "Completed")
        assert group["SucceededTime"] and "FailedTime" not in group
        assert [e["Reason"] for e in group["Events"]] == ["Scheduled", "Started", "Completed"]
        failing = create(emu, **group_params("sk8s-fail", RestartPolicy="Never", **{"Container.1.Image": "exit/3"}))
        assert _statuses(emu, failing, "Failed")[-2:] == ["Running", "Failed"]
    finally:
        emu.stop()


def test_a_restarting_container_keeps_its_group_running():
    emu = EmulatorThread(run_time=0.2)
    try:
        gid = create(emu, **group_params("sk8s-crash", RestartPolicy="Always", **{"Container.1.Image": "exit/1"}))

        def restarted():
            c = describe(emu, ContainerGroupIds=json.dumps([gid]))["ContainerGroups"][0]["Containers"][0]
            return c if c["RestartCount"] >= 1 else None

        container = until(restarted)
        assert container["PreviousState"]["ExitCode"] == 1
        assert describe(emu)["ContainerGroups"][0]["Status"] in ("Running", "Restarting")
    finally:
        emu.stop()


def _service(clock, backend=None, **kw):
    return EciService(backend or MemoryBackend(clock=clock), schedule_delay=1.0, clock=clock, **kw)


def test_final_groups_stay_listed_for_the_retention_then_vanish():
    now = [1000.0]
    svc = _service(lambda: now[0], retention=3600)
    call = Call(group_params("sk8s-short", RestartPolicy="Never", **{"Container.1.Image": "exit/0"}),
                "cn-hangzhou", AK)

    async def scenario():
        gid = (await svc.create(call))["ContainerGroupId"]
        for step in (0.5, 1.0, 0.1, 0.1):  # still scheduling, then pending, then started and exited
            now[0] += step
            await svc.step()
            await asyncio.sleep(0)
        assert svc.groups[gid].status == "Succeeded"
        now[0] += 3599
        await svc.step()
        assert gid in svc.groups
        now[0] += 2
        await svc.step()
        assert gid not in svc.groups

    asyncio.run(scenario())


class _Unplaceable(MemoryBackend):
    async def start(self, group):
        raise RuntimeError("no stock of the instance type in zone cn-hangzhou-h")


def test_a_group_the_backend_cannot_start_is_schedule_failed_with_a_warning():
    now = [1000.0]
    svc = _service(lambda: now[0], backend=_Unplaceable())

    async def scenario():
        gid = (await svc.create(Call(group_params("sk8s-nostock"), "cn-hangzhou", AK)))["ContainerGroupId"]
        now[0] += 1.0
        await svc.step()
        await asyncio.sleep(0)
        view = render(svc.groups[gid])
        assert view["Status"] == "ScheduleFailed" and view["FailedTime"]
        assert view["Events"][-1]["Type"] == "Warning" and "no stock" in view["Events"][-1]["Message"]

    asyncio.run(scenario())


def test_credentials_from_the_command_line():
    assert server.parse_credentials(["LTAI1:s1", "LTAI2:s:2"]) == {"LTAI1": "s1", "LTAI2": "s:2"}
    with pytest.raises(ValueError):
        server.parse_credentials(["no-secret"])
