"""Periodic health of a tenant: restart dead components, report conditions and usage."""
from __future__ import annotations

import kopf

from ... import kube
from .. import cluster, planes
from ..status import cluster_status, usage


async def check_cluster(body, patch: kopf.Patch, logger, **_) -> None:
    status = body.get("status") or {}
    if status.get("phase") != "Ready":  # the create handler owns every earlier state
        return
    plane = planes.find_claimed(body["metadata"]["uid"])
    if plane is None:
        return
    t = cluster.tenant_for(body, plane)
    procs = cluster.processes(t)
    if not procs.running("kube-apiserver"):
        logger.warning("tenant apiserver of %s is down; restarting it", t.name)
        kopf.warn(body, reason="ComponentRestarted", message="kube-apiserver was down; restarted")
        cluster.start_apiserver(t)
    api_ok = await cluster.wait_apiserver(t, 1.0)
    if api_ok:
        for name, start in (("kube-controller-manager", cluster.start_controller_manager),
                            ("virtual-node", cluster.start_virtual_node)):
            if not procs.running(name):
                kopf.warn(body, reason="ComponentRestarted", message=f"{name} was down; restarted")
                start(t)
    node_ok = api_ok and await cluster.node_ready(t)
    new = cluster_status(generation=body["metadata"].get("generation"), prev=status, control_plane=api_ok,
                         node=node_ok, endpoint=t.endpoint, secret=status.get("kubeconfigSecretName"),
                         sandbox_namespace=t.sandbox_namespace, version=status.get("version") or "")
    new.update(usage(await kube.list_namespaced("sandboxpods", t.sandbox_namespace)))
    if any(new.get(k) != status.get(k) for k in new):
        patch.status.update(new)
