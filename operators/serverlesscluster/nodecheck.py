"""Whether a tenant's virtual nodes are Ready, as its cluster's users should see it."""
from __future__ import annotations

import asyncio
import datetime as dt
import time

from ..kubeclient.client import STRATEGIC, KubeClient
from . import controlplane as cp
from . import node_health
from .cluster import processes, tenant_client


async def node_ready(t: cp.Tenant) -> bool:
    """Every one of the tenant's Nodes is Ready."""
    async with tenant_client(t) as tc:
        try:
            nodes = [await tc.get_or_none(f"/api/v1/nodes/{name}") for name in t.node_names]
        except Exception:
            return False
    return all(any(c.get("type") == "Ready" and c.get("status") == "True"
                   for c in ((node or {}).get("status") or {}).get("conditions") or []) for node in nodes)


def lease_path(node_name: str) -> str:
    return f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{node_name}"


async def check_node(t: cp.Tenant, vnode_age: float | None) -> tuple[bool, str]:
    """Whether every Node of the tenant is Ready, as its cluster's users should see it
    (the first problem found, for the status message)."""
    ok, why = True, ""
    async with tenant_client(t) as tc:
        for name in t.node_names:
            node_ok, node_why = await _check_one_node(tc, name, vnode_age)
            if not node_ok and ok:
                ok, why = False, node_why
    return ok, why


async def _check_one_node(tc: KubeClient, name: str, vnode_age: float | None) -> tuple[bool, str]:
    """A virtual node that is not running, or whose lease expired (hung), cannot say so
    itself: its Node's conditions go Unknown here, as the node lifecycle controller of a
    full cluster would write them, so that nobody trusts a frozen `Ready`.
    `vnode_age`: seconds since the virtual node was started, None if it is not running."""
    now = dt.datetime.now(dt.timezone.utc)
    vnode_running = vnode_age is not None
    # A node started less than a lease ago has not had its chance to renew it yet.
    check_lease = vnode_running and vnode_age > node_health.LEASE_GRACE
    try:
        node = await tc.get_or_none(f"/api/v1/nodes/{name}")
        lease = await tc.get_or_none(lease_path(name)) if check_lease else None
    except Exception as exc:
        return False, f"cannot read the Node: {exc}"
    if node is None:
        return False, "the virtual node has not registered its Node" + (f" {name}" if name != cp.NODE_NAME else "")
    conds = (node.get("status") or {}).get("conditions") or []
    why = ("the virtual node is not running" if not vnode_running else
           "the virtual node's lease expired" if check_lease and node_health.lease_expired(lease, now)
           else "")
    if why:
        patch = node_health.unknown_status_patch(conds)
        if patch:
            try:
                await tc.patch(f"/api/v1/nodes/{name}/status", patch, STRATEGIC)
            except Exception as exc:
                return False, f"{why}; marking its Node Unknown failed: {exc}"
        return False, why
    ready = next((c for c in conds if c.get("type") == "Ready"), {})
    if ready.get("status") == "True":
        return True, ""
    return False, f"Node {name} is not Ready: {ready.get('message') or ready.get('reason') or 'no status yet'}"


async def wait_node(t: cp.Tenant, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await node_ready(t):
            return True
        if not processes(t).running("virtual-node"):
            return False
        await asyncio.sleep(0.05)
    return False


