"""The emulator's networks: the VPC and ECS (security group) modules, and ECI placing its
container groups in them.

A group whose VSwitchId is an emulator VSwitch needs an Available VSwitch and a security
group of the same VPC; it is then given "VpcId" and "LocalVpc" ({"Key": the VPC's local
key, "CidrBlock": the VPC's, "VSwitchCidr": the VSwitch's}), which the podman backend
places its sandbox by. An unknown id of the emulator's shape is refused as the cloud
refuses it (Invalid{VSwitch,SecurityGroup}Id.NotFound); any other id is an account's
pre-existing VSwitch or group the emulator does not hold (the default placement of
launch.PLACEMENT_ENV) and is taken as given, as before there were VPCs here. Only the
caller's account's VSwitches and groups are found: another account's is an unknown id.

While a group is listed, its VSwitch and security group are in use: DeleteVSwitch and
DeleteSecurityGroup answer DependencyViolation."""
from __future__ import annotations

from typing import Any

from .backends import GroupBackend
from .ecs import EcsService
from .eci import EciService
from .errors import ApiError
from .resources import not_found, own_shape
from .vpc import MemoryVpcs, VpcBackend, VpcService


class Placement:
    def __init__(self, vpc: VpcService, ecs: EcsService):
        self.vpc, self.ecs = vpc, ecs

    def place(self, group: dict[str, Any], account: str) -> None:
        vsw_id, sg_id = str(group.get("VSwitchId")), str(group.get("SecurityGroupId"))
        vsw = self.vpc.vswitch(vsw_id, account)
        sg = self.ecs.security_group(sg_id, account)
        if vsw is None and own_shape(vsw_id, "vsw"):
            raise not_found("VSwitch", vsw_id, "VSwitch")
        if sg is None and (own_shape(sg_id, "sg") or vsw is not None):
            raise not_found("SecurityGroup", sg_id, "security group")
        if vsw is None:
            return  # an account's own VSwitch (the default placement): taken as given
        if vsw["Status"] != "Available":
            raise ApiError(400, "IncorrectVSwitchStatus", "The current status of the VSwitch does not support this "
                           "operation.")
        if sg["VpcId"] != vsw["VpcId"]:
            raise ApiError(400, "InvalidSecurityGroup.NotInVpc",
                           f"The security group {sg_id} is not in the VPC of the VSwitch {vsw_id}.")
        vpc = self.vpc.vpc(vsw["VpcId"], account)
        group["VpcId"] = vsw["VpcId"]
        group["LocalVpc"] = {"Key": self.vpc.local_key(vsw["VpcId"], account), "CidrBlock": vpc["CidrBlock"],
                             "VSwitchCidr": vsw["CidrBlock"]}


def vpc_backend(groups: GroupBackend) -> VpcBackend:
    """The VPC networks where the groups run: real local networks for real sandboxes."""
    make = getattr(groups, "vpc_backend", None)
    return make() if make is not None else MemoryVpcs()


def networking(eci: EciService, groups: GroupBackend, settle: float = 0.5) -> tuple[VpcService, EcsService]:
    """The VPC and ECS modules, ECI placing its groups in them."""
    vpc = VpcService(vpc_backend(groups), settle=settle)
    ecs = EcsService(vpc)
    eci.network = Placement(vpc, ecs)

    def members(field: str):
        return lambda rid: "ContainerGroup" if any(
            r.group.get(field) == rid for r in eci.groups.values()) else None
    vpc.users.append(members("VSwitchId"))
    ecs.users.append(members("SecurityGroupId"))
    return vpc, ecs
