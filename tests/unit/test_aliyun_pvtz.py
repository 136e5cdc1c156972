"""The aliyun PrivateZones: its pure builders, and the provider through the real SDK against
the emulator's PrivateZone API (memory backend): one zone per PrivateZone found by its
remark among zones of the same name, records converged in place, paging, a lost AddZone
answer that leaves one zone, VPCs bound by their cloud ids, deletion."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

from operators.emulator.alibaba.faults import Decision, Faults
from operators.emulator.alibaba.pvtz import PvtzService
from operators.emulator.alibaba.pvtz_backends import MemoryZones
from operators.providers.aliyun import pvtz as provider_module
from operators.providers.aliyun.client import AliyunClient, Credentials
from operators.providers.aliyun.pvtz import AliyunPrivateZones
from operators.providers.aliyun.pvtz_records import (
    CloudRecord, bind_params, cloud_records, plan_records, zone_remark,
)
from operators.providers.errors import ProviderError

from .emulatorkit import AK, REGION, SK, EmulatorThread
from .test_emulator_pvtz import StubVpcs

UID = "6f1c2a4e-0b7d-4c1e-9f3a-2d5e8a7b9c10"
HOME = "a1b2c3d4e5"


# -- builders ---------------------------------------------------------------------------

def test_the_remark_names_the_installation_and_the_zone_within_the_clouds_limit():
    remark = zone_remark(HOME, UID)
    assert remark == "sk8s.a1b2c3d4e5.6f1c2a4e0b7d4c1e9f3a2d5e8a7b9c10" and len(remark) <= 50
    assert zone_remark("other", UID) != remark
    with pytest.raises(ValueError):
        zone_remark(HOME * 3, UID)


def test_record_sets_become_one_cloud_record_per_value():
    sets = [{"rr": "web.default.svc", "type": "A", "values": ["10.0.0.1", "10.0.0.2"], "ttl": 5},
            {"rr": "_http._tcp.web.default.svc", "type": "SRV", "values": ["0 100 80 web.default.svc.cluster.local"]}]
    assert cloud_records(sets) == [CloudRecord("web.default.svc", "A", "10.0.0.1", 5),
                                   CloudRecord("web.default.svc", "A", "10.0.0.2", 5),
                                   CloudRecord("_http._tcp.web.default.svc", "SRV",
                                               "0 100 80 web.default.svc.cluster.local", 5)]


def test_the_plan_rewrites_a_changed_address_in_place_and_deletes_the_rest():
    existing = [(1, CloudRecord("a", "A", "10.0.0.1", 5)), (2, CloudRecord("a", "A", "10.0.0.9", 5)),
                (3, CloudRecord("b", "A", "10.0.0.3", 5)), (4, CloudRecord("b", "A", "10.0.0.3", 5)),
                (5, CloudRecord("c", "TXT", "x", 30))]
    wanted = [CloudRecord("a", "A", "10.0.0.1", 5), CloudRecord("a", "A", "10.0.0.2", 5),
              CloudRecord("b", "A", "10.0.0.3", 5), CloudRecord("c", "TXT", "x", 5),
              CloudRecord("d", "CNAME", "a.example.com", 5)]
    plan = plan_records(wanted, existing)
    assert plan.delete == [4]  # the duplicate
    assert plan.update == [(5, CloudRecord("c", "TXT", "x", 5)), (2, CloudRecord("a", "A", "10.0.0.2", 5))]
    assert plan.add == [CloudRecord("d", "CNAME", "a.example.com", 5)]
    assert plan_records(wanted, [(i, r) for i, r in enumerate(wanted)]).empty


def test_bind_params_spell_the_whole_list():
    assert bind_params("z1", REGION, ["vpc-a", "vpc-b"]) == {
        "ZoneId": "z1", "Vpcs.1.RegionId": REGION, "Vpcs.1.VpcId": "vpc-a",
        "Vpcs.2.RegionId": REGION, "Vpcs.2.VpcId": "vpc-b"}
    assert bind_params("z1", REGION, []) == {"ZoneId": "z1"}


# -- the provider against the emulator ------------------------------------------------

@dataclass(frozen=True)
class Network:  # network.CloudNetwork's fields the zones use
    vpc_id: str
    cidr: str


NETWORKS = {"cluster-a": Network("vpc-a", "10.240.0.0/23"), "cluster-b": Network("vpc-b", "10.240.2.0/23")}


async def find_network(client, home_id, cluster_uid):
    return NETWORKS.get(cluster_uid)


class DropFirstAddZone(Faults):
    """AddZone's first call is applied and its answer lost."""

    def __init__(self, emulator):
        super().__init__()
        self.emulator, self.dropped = emulator, False

    def decide(self) -> Decision:
        if not self.dropped and self.emulator.calls["AddZone"] == 1:
            self.dropped = True
            return Decision(drop=True)
        return super().decide()


@pytest.fixture
def emu():
    zones = MemoryZones()
    e = EmulatorThread(services=(PvtzService(StubVpcs({"vpc-a": "cluster-a", "vpc-b": "cluster-b"}), zones),))
    e.zones = zones
    yield e
    e.stop()


def zones_for(emu, home: str = HOME) -> AliyunPrivateZones:
    client = AliyunClient(Credentials(AK, SK), REGION, endpoint=f"127.0.0.1:{emu.port}")
    return AliyunPrivateZones(client, home, find_network=find_network)


def inventory(emu) -> list[dict]:
    return emu.control("inventory")["PrivateZone"]


RECORDS = [{"rr": "web.default.svc", "type": "A", "values": ["10.240.1.10", "10.240.1.11"], "ttl": 5},
           {"rr": "_http._tcp.web.default.svc", "type": "SRV", "values": ["0 50 80 web.default.svc.cluster.local"],
            "ttl": 5}]


def test_a_zone_is_made_once_bound_by_cloud_vpc_ids_and_gives_the_vpc_resolvers(emu):
    async def main():
        other = zones_for(emu, home="f0f0f0f0f0")  # another installation's zone of the same name
        await other.ensure("11111111-2222-3333-4444-555555555555", "cluster.local", ["cluster-b"], [])
        zones = zones_for(emu)
        assert await zones.ensure(UID, "cluster.local", ["cluster-a"], RECORDS) == ["10.240.1.254"]
        assert await zones.vpc_resolver("cluster-b") == "10.240.3.254"
        again = zones_for(emu)  # a restarted operator finds its zone by the remark
        assert await again.ensure(UID, "cluster.local", ["cluster-a", "cluster-b"], RECORDS) == \
            ["10.240.1.254", "10.240.3.254"]

    asyncio.run(main())
    mine = [z for z in inventory(emu) if z["Remark"] == zone_remark(HOME, UID)]
    assert len(inventory(emu)) == 2 and len(mine) == 1
    assert [v["VpcId"] for v in mine[0]["Vpcs"]] == ["vpc-a", "vpc-b"]
    assert emu.zones.served[mine[0]["ZoneId"]][:2] == ("cluster.local", ["cluster-a", "cluster-b"])


def test_ensure_converges_records_in_place_and_delete_removes_the_zone(emu, monkeypatch):
    monkeypatch.setattr(provider_module, "PAGE", 2)  # several pages of zones and of records

    async def main():
        zones = zones_for(emu)
        for i in range(3):
            await zones_for(emu, home=f"{i:010d}").ensure(f"uid-{i}", "cluster.local", ["cluster-b"], [])
        await zones.ensure(UID, "cluster.local", ["cluster-a"], RECORDS)
        mine = [z for z in inventory(emu) if z["Remark"] == zone_remark(HOME, UID)]
        assert len(inventory(emu)) == 4 and len(mine) == 1
        assert mine[0]["Vpcs"] == [{"RegionId": REGION, "VpcId": "vpc-a"}]
        first_ids = {r["Value"]: r["RecordId"] for r in mine[0]["Records"]}
        assert set(first_ids) == {"10.240.1.10", "10.240.1.11", "0 50 80 web.default.svc.cluster.local"}
        name, keys, served = emu.zones.served[mine[0]["ZoneId"]]
        assert keys == ["cluster-a"] and {"rr": "web.default.svc", "type": "A", "ttl": 5,
                                          "values": ["10.240.1.10", "10.240.1.11"]} in served

        changed = [{**RECORDS[0], "values": ["10.240.1.10", "10.240.1.12"]}]
        await zones_for(emu).ensure(UID, "cluster.local", ["cluster-a"], changed)  # a fresh process: paged reads
        records = [z for z in inventory(emu) if z["Remark"] == zone_remark(HOME, UID)][0]["Records"]
        assert {r["Value"]: r["RecordId"] for r in records} == {"10.240.1.10": first_ids["10.240.1.10"],
                                                                "10.240.1.12": first_ids["10.240.1.11"]}

        await zones_for(emu).delete(UID)
        assert [z for z in inventory(emu) if z["Remark"] == zone_remark(HOME, UID)] == []
        assert len(inventory(emu)) == 3
        await zones.delete(UID)  # gone: done

    asyncio.run(main())


def test_a_lost_add_zone_answer_leaves_one_zone(emu):
    emu.emulator.faults = DropFirstAddZone(emu.emulator)

    async def main():
        await zones_for(emu, home="f0f0f0f0f0").ensure("other-uid", "cluster.local", ["cluster-b"], [])
        emu.emulator.calls.clear()  # the next AddZone is the first again: ours, dropped
        emu.emulator.faults.dropped = False
        await zones_for(emu).ensure(UID, "cluster.local", ["cluster-a"], RECORDS)
        assert emu.emulator.faults.dropped and emu.emulator.calls["AddZone"] == 1
        mine = [z for z in inventory(emu) if z["Remark"] == zone_remark(HOME, UID)]
        assert len(inventory(emu)) == 2 and len(mine) == 1 and len(mine[0]["Records"]) == 3

    asyncio.run(main())


def test_a_cluster_without_its_network_is_a_retryable_error_and_nothing_is_made(emu):
    async def main():
        with pytest.raises(ProviderError) as e:
            await zones_for(emu).ensure(UID, "cluster.local", ["cluster-unknown"], RECORDS)
        assert e.value.retryable and e.value.reason == "VpcNotFound"

    asyncio.run(main())
    assert inventory(emu) == []


def test_ensure_and_delete_converge_while_the_cloud_is_busy(emu):
    emu.control("faults", {"throttle_rate": 0.3, "throttle_code": "System.Busy", "error_rate": 0.1, "seed": 7})

    async def main():
        zones = zones_for(emu)
        assert await zones.ensure(UID, "cluster.local", ["cluster-a"], RECORDS) == ["10.240.1.254"]
        mine = [z for z in inventory(emu) if z["Remark"] == zone_remark(HOME, UID)]
        assert len(inventory(emu)) == 1 and len(mine[0]["Records"]) == 3
        await zones.delete(UID)

    asyncio.run(main())
    counts = emu.control("calls")
    assert counts["errors"].get("System.Busy", 0) > 0
    assert inventory(emu) == []


def test_a_renamed_zone_is_made_anew_and_the_old_name_stops_answering(emu):
    async def main():
        await zones_for(emu).ensure(UID, "cluster.local", ["cluster-a"], RECORDS)
        await zones_for(emu, home="f0f0f0f0f0").ensure(UID, "cluster.local", ["cluster-b"], [])  # not ours
        zones = zones_for(emu)  # a fresh process: nothing cached
        await zones.ensure(UID, "tenant.example", ["cluster-a"], RECORDS)
        await zones.ensure(UID, "tenant.example", ["cluster-a"], RECORDS)

    asyncio.run(main())
    mine = [z for z in inventory(emu) if z["Remark"] == zone_remark(HOME, UID)]
    assert [(z["ZoneName"], len(z["Records"])) for z in mine] == [("tenant.example", 3)]
    assert sorted(z["ZoneName"] for z in inventory(emu)) == ["cluster.local", "tenant.example"]
    assert [v[0] for v in emu.zones.served.values()] == ["cluster.local", "tenant.example"]


def test_the_zone_is_bound_to_the_vpc_the_network_provider_made_for_the_cluster():
    from operators.emulator.alibaba.ecs import EcsService
    from operators.emulator.alibaba.vpc import VpcService
    from operators.providers.aliyun import network

    vpcs = VpcService(settle=0.0)
    served = MemoryZones()
    emu = EmulatorThread(services=(vpcs, EcsService(vpcs), PvtzService(vpcs, served)))
    client = AliyunClient(Credentials(AK, SK), REGION, endpoint=f"127.0.0.1:{emu.port}")

    async def main():
        net = await network.ensure_network(client, HOME, "cluster-x", "10.240.4.0/23", zone_id="cn-hangzhou-h")
        zones = AliyunPrivateZones(client, HOME)  # the real find_network: by the cluster's tags
        assert await zones.ensure(UID, "cluster.local", ["cluster-x"], RECORDS) == [net.resolver] == ["10.240.5.254"]
        return net

    try:
        net = asyncio.run(main())
        zone = inventory(emu)[0]
        assert zone["Vpcs"] == [{"RegionId": REGION, "VpcId": net.vpc_id}]
        assert served.served[zone["ZoneId"]][1] == ["cluster-x"]  # the VPC's local key: the cluster's uid
    finally:
        emu.stop()
