"""The emulator's PrivateZone API through the real SDK (aliyunsdkpvtz request classes):
zones found by name and remark, paging, VPC bindings through the VPC directory, records
and their conflicts, deletion refused while bound, and what the backend is told."""
from __future__ import annotations

import pytest
from aliyunsdkcore.acs_exception.exceptions import ServerException
from aliyunsdkpvtz.request.v20180101.AddZoneRecordRequest import AddZoneRecordRequest
from aliyunsdkpvtz.request.v20180101.AddZoneRequest import AddZoneRequest
from aliyunsdkpvtz.request.v20180101.BindZoneVpcRequest import BindZoneVpcRequest
from aliyunsdkpvtz.request.v20180101.DeleteZoneRecordRequest import DeleteZoneRecordRequest
from aliyunsdkpvtz.request.v20180101.DeleteZoneRequest import DeleteZoneRequest
from aliyunsdkpvtz.request.v20180101.DescribeZoneInfoRequest import DescribeZoneInfoRequest
from aliyunsdkpvtz.request.v20180101.DescribeZoneRecordsRequest import DescribeZoneRecordsRequest
from aliyunsdkpvtz.request.v20180101.DescribeZonesRequest import DescribeZonesRequest
from aliyunsdkpvtz.request.v20180101.UpdateZoneRecordRequest import UpdateZoneRecordRequest
from aliyunsdkpvtz.request.v20180101.UpdateZoneRemarkRequest import UpdateZoneRemarkRequest

from operators.emulator.alibaba.pvtz import PvtzService
from operators.emulator.alibaba.pvtz_backends import MemoryZones

from .emulatorkit import EmulatorThread


class StubVpcs:
    """The VPC directory: VpcId -> local key."""

    def __init__(self, keys: dict[str, str]):
        self.keys = keys

    def local_key(self, vpc_id: str, account: str | None = None) -> str | None:
        return self.keys.get(vpc_id)


@pytest.fixture
def emu():
    zones = MemoryZones()
    service = PvtzService(StubVpcs({"vpc-a": "uid-a", "vpc-b": "uid-b"}), zones)
    e = EmulatorThread(services=(service,))
    e.zones, e.pvtz = zones, service
    yield e
    e.stop()


def error(call) -> ServerException:
    with pytest.raises(ServerException) as e:
        call()
    return e.value


def add_zone(emu, name="cluster.local") -> str:
    req = AddZoneRequest()
    req.set_ZoneName(name)
    return emu.call(req)["ZoneId"]


def bind(emu, zone_id, *vpcs):
    req = BindZoneVpcRequest()
    req.set_ZoneId(zone_id)
    req.set_Vpcss([{"RegionId": "cn-hangzhou", "VpcId": v} for v in vpcs])
    return emu.call(req)


def add_record(emu, zone_id, rr, rtype, value, ttl=None) -> int:
    req = AddZoneRecordRequest()
    req.set_ZoneId(zone_id), req.set_Rr(rr), req.set_Type(rtype), req.set_Value(value)
    if ttl is not None:
        req.set_Ttl(ttl)
    return emu.call(req)["RecordId"]


def test_zones_of_one_name_are_told_apart_by_their_remark_and_paged(emu):
    ids = [add_zone(emu) for _ in range(5)] + [add_zone(emu, "example.com")]
    assert len(set(ids)) == 6
    req = UpdateZoneRemarkRequest()
    req.set_ZoneId(ids[3]), req.set_Remark("sk8s.home1.abc")
    emu.call(req)
    req = DescribeZonesRequest()
    req.set_Keyword("cluster.local"), req.set_SearchMode("EXACT"), req.set_PageSize(2), req.set_PageNumber(2)
    page = emu.call(req)
    assert (page["TotalItems"], page["TotalPages"], page["PageNumber"], page["PageSize"]) == (5, 3, 2, 2)
    assert [z["ZoneId"] for z in page["Zones"]["Zone"]] == ids[2:4]
    assert page["Zones"]["Zone"][1]["Remark"] == "sk8s.home1.abc"
    req = DescribeZonesRequest()
    req.set_Keyword("EXAMPLE")  # LIKE, case-insensitive, by default
    assert [z["ZoneName"] for z in emu.call(req)["Zones"]["Zone"]] == ["example.com"]


def test_a_remark_the_cloud_refuses(emu):
    zone = add_zone(emu)
    req = UpdateZoneRemarkRequest()
    req.set_ZoneId(zone), req.set_Remark("sk8s.io/home=x")
    assert error(lambda: emu.call(req)).get_error_code() == "Zone.Remark"


def test_binding_goes_through_the_directory_and_the_backend_serves_the_records(emu):
    zone = add_zone(emu)
    add_record(emu, zone, "web.default.svc", "A", "10.0.1.5", ttl=5)
    add_record(emu, zone, "web.default.svc", "A", "10.0.1.6", ttl=30)
    add_record(emu, zone, "_http._tcp.web.default.svc", "SRV", "0 100 80 web.default.svc.cluster.local")
    assert error(lambda: bind(emu, zone, "vpc-a", "vpc-nope")).get_error_code() == "InvalidVpcId.NotFound"
    bind(emu, zone, "vpc-a", "vpc-b")
    name, keys, records = emu.zones.served[zone]
    assert name == "cluster.local" and keys == ["uid-a", "uid-b"]
    assert {"rr": "web.default.svc", "type": "A", "values": ["10.0.1.5", "10.0.1.6"], "ttl": 5} in records
    assert {"rr": "_http._tcp.web.default.svc", "type": "SRV", "values": ["0 100 80 web.default.svc.cluster.local"],
            "ttl": 60} in records
    req = DescribeZoneInfoRequest()
    req.set_ZoneId(zone)
    info = emu.call(req)
    assert [v["VpcId"] for v in info["BindVpcs"]["Vpc"]] == ["vpc-a", "vpc-b"] and info["RecordCount"] == 3
    req = DescribeZonesRequest()
    req.set_QueryVpcId("vpc-b")
    assert [z["ZoneId"] for z in emu.call(req)["Zones"]["Zone"]] == [zone]


def test_a_bound_zone_is_not_deleted_until_unbound(emu):
    zone = add_zone(emu)
    bind(emu, zone, "vpc-a")
    req = DeleteZoneRequest()
    req.set_ZoneId(zone)
    assert error(lambda: emu.call(req)).get_error_code() == "Zone.VpcExists"
    bind(emu, zone)  # no VPCs: unbinds all
    assert emu.zones.served[zone][1] == []
    emu.call(req)
    assert zone not in emu.zones.served and emu.control("inventory")["PrivateZone"] == []
    assert error(lambda: emu.call(req)).get_error_code() == "Zone.NotExists"


def test_records_update_delete_page_and_conflict(emu):
    zone = add_zone(emu)
    ids = [add_record(emu, zone, f"s{i}.default.svc", "A", f"10.0.0.{i}") for i in range(1, 8)]
    assert error(lambda: add_record(emu, zone, "s1.default.svc", "A", "10.0.0.1")).get_error_code() \
        == "Record.Invalid.Conflict"
    assert error(lambda: add_record(emu, zone, "s1.default.svc", "CNAME", "x.example.com")).get_error_code() \
        == "Record.Invalid.Conflict"
    assert error(lambda: add_record(emu, zone, "bad", "A", "not-an-ip")).get_error_code() == "Record.Invalid.Value"
    assert error(lambda: add_record(emu, zone, "bad", "NS", "x")).get_error_code() == "Record.Invalid.Type"
    req = UpdateZoneRecordRequest()
    req.set_RecordId(ids[0]), req.set_Rr("s1.default.svc"), req.set_Type("A"), req.set_Value("10.0.9.9"), req.set_Ttl(5)
    emu.call(req)
    req = DeleteZoneRecordRequest()
    req.set_RecordId(ids[1])
    emu.call(req)
    assert error(lambda: emu.call(req)).get_error_code() == "Record.NotExists"
    seen = []
    for number in (1, 2):
        req = DescribeZoneRecordsRequest()
        req.set_ZoneId(zone), req.set_PageSize(4), req.set_PageNumber(number)
        page = emu.call(req)
        assert page["TotalItems"] == 6 and page["TotalPages"] == 2
        seen += page["Records"]["Record"]
    assert [r["RecordId"] for r in seen] == [ids[0]] + ids[2:]
    assert (seen[0]["Value"], seen[0]["Ttl"], seen[0]["Status"]) == ("10.0.9.9", 5, "ENABLE")
    req = DescribeZoneRecordsRequest()
    req.set_ZoneId("no-such-zone")
    assert error(lambda: emu.call(req)).get_error_code() == "Zone.NotExists"


def test_a_pending_vpc_is_not_bound():
    class Pending(StubVpcs):
        def vpc(self, vpc_id, account=None):
            return {"VpcId": vpc_id, "Status": "Pending"} if vpc_id in self.keys else None

    zones = MemoryZones()
    e = EmulatorThread(services=(PvtzService(Pending({"vpc-a": "uid-a"}), zones),))
    try:
        zone = add_zone(e)
        assert error(lambda: bind(e, zone, "vpc-a")).get_error_code() == "IncorrectVpcStatus"
        assert zones.served == {}
    finally:
        e.stop()
