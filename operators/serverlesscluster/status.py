"""ServerlessCluster status: conditions and summary (pure)."""
from __future__ import annotations

from ..conditions import condition


def cluster_status(*, generation: int | None, prev: dict, control_plane: bool, node: bool,
                   endpoint: str | None, secret: str | None, sandbox_namespace: str, version: str,
                   message: str = "", failed: str | None = None) -> dict:
    conds_prev = prev.get("conditions") or []
    ready = control_plane and node and failed is None
    phase = "Failed" if failed else ("Ready" if ready else "Provisioning")
    reason_ready = "ClusterReady" if ready else (failed or ("WaitingForVirtualNode" if control_plane
                                                           else "WaitingForControlPlane"))
    return {
        "phase": phase,
        "endpoint": endpoint,
        "kubeconfigSecretName": secret,
        "sandboxNamespace": sandbox_namespace,
        "nodeName": "virtual-node",
        "version": version,
        "observedGeneration": generation,
        "message": message or None,
        "conditions": [
            condition("ControlPlaneReady", control_plane, "APIServerReady" if control_plane else "Starting",
                      "" if control_plane else "tenant kube-apiserver is not answering yet",
                      generation=generation, previous=conds_prev),
            condition("VirtualNodeReady", node, "NodeReady" if node else "NodeNotReady",
                      "" if node else "virtual node has not reported Ready", generation=generation,
                      previous=conds_prev),
            condition("Ready", ready, reason_ready, message, generation=generation, previous=conds_prev),
        ],
    }


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
