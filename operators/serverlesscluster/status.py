"""ServerlessCluster status: conditions and summary (pure).

Every writer of a ServerlessCluster's status builds it here: the operator's handlers and
health timer, and `sk8s down` (which marks Ready clusters stopped before it stops them).
"""
from __future__ import annotations

from ..conditions import condition
from ..models.contracts import (CONDITION_CONTROL_PLANE_READY, CONDITION_PROVIDER_READY, CONDITION_READY,
                                CONDITION_VIRTUAL_NODE_READY, REASON_SLEEPING, VIRTUAL_NODE_NAME)

# The Ready condition's reason while sk8s is down (the planes stop with it).
REASON_STOPPED = "Stopped"


def cluster_status(*, generation: int | None, prev: dict, control_plane: bool, node: bool,
                   endpoint: str | None, secret: str | None, sandbox_namespace: str, version: str,
                   message: str = "", failed: str | None = None, node_names: list[str] | None = None,
                   provider: dict | None = None, waiting: str | None = None) -> dict:
    """`node_names`: the tenant's Nodes (default: the one virtual node); nodeName is the first.
    `provider`: the ProviderReady condition (provider_condition) if this writer learnt it,
    else the previous one is kept. `waiting`: the Ready reason while not ready, if not the
    control plane's or node's."""
    node_names = node_names or [VIRTUAL_NODE_NAME]
    conds_prev = prev.get("conditions") or []
    ready = control_plane and node and failed is None
    phase = "Failed" if failed else ("Ready" if ready else "Provisioning")
    reason_ready = "ClusterReady" if ready else (failed or waiting or ("WaitingForVirtualNode" if control_plane
                                                                      else "WaitingForControlPlane"))
    provider = provider or next((c for c in conds_prev if c.get("type") == CONDITION_PROVIDER_READY), None)
    return {
        "phase": phase,
        "endpoint": endpoint,
        "kubeconfigSecretName": secret,
        "sandboxNamespace": sandbox_namespace,
        "nodeName": node_names[0],
        "nodeNames": list(node_names),
        "version": version,
        "observedGeneration": generation,
        "message": message or None,
        "conditions": [
            condition(CONDITION_CONTROL_PLANE_READY, control_plane, "APIServerReady" if control_plane else "Starting",
                      "" if control_plane else "tenant kube-apiserver is not answering yet",
                      generation=generation, previous=conds_prev),
            condition(CONDITION_VIRTUAL_NODE_READY, node, "NodeReady" if node else "NodeNotReady",
                      "" if node else "virtual node has not reported Ready", generation=generation,
                      previous=conds_prev),
            *([provider] if provider else []),
            condition(CONDITION_READY, ready, reason_ready, message, generation=generation, previous=conds_prev),
        ],
    }


def sleeping_status(prev: dict, generation: int | None, message: str) -> dict:
    """A sleeping tenant: phase Sleeping, its control plane and node stopped, yet Ready (True,
    reason Sleeping): its endpoint serves, after the wake its first request causes, and its
    pods and load balancers serve all along. The other fields stay as they were."""
    conds_prev = prev.get("conditions") or []
    kept = [c for c in conds_prev if c.get("type") not in (CONDITION_CONTROL_PLANE_READY, CONDITION_VIRTUAL_NODE_READY,
                                                           CONDITION_READY)]
    return {"phase": "Sleeping", "message": message, "observedGeneration": generation, "conditions": [
        condition(CONDITION_CONTROL_PLANE_READY, False, REASON_SLEEPING, "the tenant kube-apiserver sleeps",
                  generation=generation, previous=conds_prev),
        condition(CONDITION_VIRTUAL_NODE_READY, False, REASON_SLEEPING, "the virtual node sleeps",
                  generation=generation, previous=conds_prev),
        *kept,
        condition(CONDITION_READY, True, REASON_SLEEPING, message, generation=generation, previous=conds_prev),
    ]}


def provider_condition(prev: dict, ok: bool, reason: str, message: str, generation: int | None) -> dict:
    return condition(CONDITION_PROVIDER_READY, ok, reason, message, generation=generation,
                     previous=prev.get("conditions") or [])


def stopped_status(prev: dict, generation: int | None, message: str = "sk8s is down") -> dict | None:
    """The status patch of a Ready cluster whose control plane stops with sk8s: Provisioning,
    Ready False (Stopped), the other conditions as they were; None if it was not Ready."""
    if prev.get("phase") != "Ready":
        return None
    conds = [c for c in prev.get("conditions") or [] if c.get("type") != CONDITION_READY]
    conds.append(condition(CONDITION_READY, False, REASON_STOPPED, message, generation=generation,
                           previous=prev.get("conditions")))
    return {"phase": "Provisioning", "message": message, "conditions": conds}


def usage(sandboxpods: list[dict]) -> dict:
    """Pods and their requested cpu/memory, from the tenant's SandboxPods (limits stand in for requests)."""
    from ..quantity import cpu_cores, format_cpu, format_memory, memory_bytes
    cpu = 0.0
    mem = 0
    count = 0
    for sbp in sandboxpods:
        if (sbp.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            continue
        count += 1
        for c in (sbp.get("spec") or {}).get("containers") or []:
            res = c.get("resources") or {}
            want = {**(res.get("limits") or {}), **(res.get("requests") or {})}
            if "cpu" in want:
                cpu += cpu_cores(want["cpu"])
            if "memory" in want:
                mem += memory_bytes(want["memory"])
    return {"pods": count, "requestedCPU": format_cpu(cpu), "requestedMemory": format_memory(mem)}
