"""A ServiceLB in SLB terms (pure): the parameters of each SLB call the aliyun load
balancers make, and the diffs between what the cloud holds and what the spec wants.

Mapping, and where SLB's default server group limits it:
- one SLB per ServiceLB, tagged with the installation (LABEL_HOME), the cluster
  (LABEL_CLUSTER_UID) and the ServiceLB's uid (TAG_UID), found by those tags; an intranet
  SLB sits in the cluster's service VSwitch on its ClusterIP (spec.loadBalancerIP, else the
  address recorded before);
- one TCP or UDP listener per Service port, forwarding to its targetPort
  (BackendServerPort), with TCP (or UDP) health checks;
- the backends are ECI container groups (Type eci, ServerId the group, ServerIp its
  address). The default server group sends every listener's traffic to every backend on
  the listener's BackendServerPort: a backend that does not serve every listener on that
  port (a named targetPort with other numbers on other pods, a slice listing only some
  ports) cannot be expressed and is left out, reported unhealthy with the reason;
- sessionAffinity ClientIP is the TCP listeners' PersistenceTimeout, at most 3600 s (the
  cloud's limit; Kubernetes' default is 10800); UDP listeners have no persistence in SLB.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from ...models.contracts import LABEL_CLUSTER_UID, LABEL_HOME, LABEL_SANDBOX_UID as TAG_UID
from ..services import BackendHealth, LBListener, LBSpec, LBState
from .eci_status import tag_value, untag_value

LB_SPEC = "slb.s1.small"  # performance-guaranteed: the only kind that takes eci backends
MAX_PERSISTENCE = 3600
SERVERS_PER_CALL = 20
HEALTH = {"HealthyThreshold": "2", "UnhealthyThreshold": "2", "HealthCheckConnectTimeout": "2",
          "healthCheckInterval": "2"}
Key = tuple[str, int]  # ("tcp" | "udp", listener port), as SLB spells the protocol


def tags(home_id: str, cluster_uid: str | None, uid: str | None = None) -> dict[str, str]:
    """Tag.N of CreateLoadBalancer, or DescribeLoadBalancers' filters (uid None: every SLB
    of the installation)."""
    pairs = [(LABEL_HOME, home_id)] + ([(LABEL_CLUSTER_UID, cluster_uid)] if cluster_uid else []) \
        + ([(TAG_UID, uid)] if uid else [])
    out: dict[str, str] = {}
    for i, (key, value) in enumerate(pairs, 1):
        out[f"Tag.{i}.Key"], out[f"Tag.{i}.Value"] = key, tag_value(value)
    return out


def uid_of(lb: dict) -> str | None:
    """The ServiceLB uid an SLB (a DescribeLoadBalancers element) is tagged with."""
    for t in ((lb.get("Tags") or {}).get("Tag") or []):
        if t.get("TagKey") == TAG_UID:
            return untag_value(t.get("TagValue"))
    return None


def create_params(spec: LBSpec, home_id: str, *, vswitch_id: str | None, vpc_id: str | None,
                  address: str | None) -> dict[str, str]:
    """CreateLoadBalancer's parameters. The ClientToken names the ServiceLB and these very
    parameters: a retry after a lost answer gets the SLB made, and a later create with
    other parameters (a new address after a delete) is a create of its own."""
    params = {"AddressType": spec.address_type, "LoadBalancerName": f"sk8s-{spec.id}", "LoadBalancerSpec": LB_SPEC,
              **tags(home_id, spec.vpc_id, spec.id)}
    if spec.address_type == "intranet":
        params.update({"VSwitchId": vswitch_id or "", "VpcId": vpc_id or ""})
        if address:
            params["Address"] = address
    digest = hashlib.sha256(json.dumps(sorted(params.items())).encode()).hexdigest()[:8]
    return {**params, "ClientToken": f"sk8s-{spec.id}-{digest}"}


def persistence(spec: LBSpec) -> int:
    return min(spec.affinity_seconds, MAX_PERSISTENCE) if spec.affinity_seconds else 0


def listener_params(lb_id: str, lst: LBListener, spec: LBSpec) -> dict[str, str]:
    """Create*Listener's parameters: the port, its target, health checks, persistence."""
    params = {"LoadBalancerId": lb_id, "ListenerPort": str(lst.port), "BackendServerPort": str(lst.target_port),
              "Bandwidth": "-1", "Scheduler": "wrr", "Description": f"sk8s/{lst.protocol}/{lst.port}", **HEALTH}
    if lst.protocol == "TCP":
        params.update({"HealthCheckType": "tcp", "PersistenceTimeout": str(persistence(spec))})
    else:
        params["HealthCheckSwitch"] = "on"
    return params


def key_of(lst: LBListener) -> Key:
    return (lst.protocol.lower(), lst.port)


@dataclass
class ListenerPlan:
    delete: list[Key] = field(default_factory=list)
    create: list[LBListener] = field(default_factory=list)
    start: list[Key] = field(default_factory=list)


def plan_listeners(current: list[dict], spec: LBSpec) -> ListenerPlan:
    """From DescribeLoadBalancerListeners' Listeners to the spec's: a listener whose target
    or persistence differs is deleted and made again; a stopped one is started."""
    wanted = {key_of(lst): lst for lst in spec.listeners}
    plan = ListenerPlan()
    seen: set[Key] = set()
    for row in current:
        key = (str(row.get("ListenerProtocol", "")).lower(), int(row.get("ListenerPort", 0)))
        lst = wanted.get(key)
        config = row.get("TCPListenerConfig") or {}
        same = lst is not None and int(row.get("BackendServerPort") or 0) == lst.target_port and \
            (key[0] != "tcp" or int(config.get("PersistenceTimeout") or 0) == persistence(spec))
        if not same:
            plan.delete.append(key)
            continue
        seen.add(key)
        if row.get("Status") != "running":
            plan.start.append(key)
    for key, lst in wanted.items():
        if key not in seen:
            plan.create.append(lst)
            plan.start.append(key)
    return plan


def wanted_servers(spec: LBSpec, groups: dict[str, str]) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """(BackendServers entries, {ip: why it is left out}) from the ready backends and the
    cluster's groups by address."""
    servers, refused = [], {}
    for ip in spec.backends:
        gid = groups.get(ip)
        if gid is None:
            refused[ip] = "no ECI container group of the cluster has this address"
            continue
        odd = [f"{lst.protocol}/{lst.port}" for lst in spec.listeners
               if spec.targets(lst, [ip]) != [(ip, lst.target_port)]]
        if odd:
            refused[ip] = (f"does not serve {', '.join(odd)} on the listener's target port; an SLB's default "
                           "server group sends each listener to one port on every backend")
            continue
        servers.append({"ServerId": gid, "Type": "eci", "ServerIp": ip, "Weight": 100})
    return servers, refused


@dataclass
class ServerPlan:
    add: list[dict[str, Any]] = field(default_factory=list)
    remove: list[dict[str, Any]] = field(default_factory=list)
    set: list[dict[str, Any]] = field(default_factory=list)  # weights to change


def plan_servers(current: list[dict], wanted: list[dict]) -> ServerPlan:
    """From DescribeLoadBalancerAttribute's BackendServers to the wanted ones, by (ServerId, ServerIp)."""
    def key(s: dict) -> tuple[str, str]:
        return (s.get("ServerId", ""), s.get("ServerIp", ""))
    have = {key(s): s for s in current}
    want = {key(s): s for s in wanted}
    plan = ServerPlan(add=[s for k, s in want.items() if k not in have],
                      remove=[{"ServerId": s["ServerId"], "Type": s.get("Type") or "eci", "ServerIp": s.get("ServerIp", "")}
                              for k, s in have.items() if k not in want])
    plan.set = [s for k, s in want.items() if k in have and int(have[k].get("Weight", 100)) != s["Weight"]]
    return plan


def chunks(items: list[dict], size: int = SERVERS_PER_CALL) -> list[str]:
    """BackendServers values, at most `size` servers each (the cloud's limit per call)."""
    return [json.dumps(items[i:i + size]) for i in range(0, len(items), size)]


def state_from(address: str, spec: LBSpec, health: list[dict], refused: dict[str, str]) -> LBState:
    """LBState from DescribeHealthStatus' BackendServers: a backend is healthy when its
    check says normal; healthy counts per listener of the spec."""
    backends, counts = [], {}
    for row in health:
        ok = row.get("ServerHealthStatus") == "normal"
        key = (str(row.get("Protocol", "")).lower(), int(row.get("ListenerPort") or 0))
        counts[key] = counts.get(key, 0) + (1 if ok else 0)
        message = None if ok else f"health check {row.get('ServerHealthStatus', 'unknown')}"
        backends.append(BackendHealth(row.get("ServerIp", ""), int(row.get("Port") or 0), ok, message))
    for lst in spec.listeners:
        backends += [BackendHealth(ip, lst.target_port, False, why) for ip, why in sorted(refused.items())]
    seen, unique = set(), []
    for b in backends:  # one row per backend and port, whatever the number of listeners
        if (b.ip, b.port) not in seen:
            seen.add((b.ip, b.port))
            unique.append(b)
    return LBState(address, [(lst, counts.get(key_of(lst), 0)) for lst in spec.listeners], unique)
