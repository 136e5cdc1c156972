"""Whose is a meta-cluster object? Its namespace says, never the object itself.

A virtual node writes SandboxPods, ServiceLBs and PrivateZones with a meta-cluster token
limited to its tenant's namespace (`tenant-<name>-<uid>`, labelled by the ServerlessCluster
operator with the cluster's name and uid; the token has no right to change namespaces).
Everything inside such an object (labels, clusterRef, vpcID, vpcIDs) is the writer's to
choose, so a compromised virtual node could name another tenant's VPC there. The
operators therefore take the tenant from the namespace and refuse an object whose fields
name anything else: a refusal names the field, it does not quietly "fix" it.

Objects in other namespaces were written by meta-cluster admins (examples, tests) and are
trusted, but a VPC they name must still be a ServerlessCluster's: an unknown one would
create a network that no cluster deletion ever removes.
"""
from __future__ import annotations

from dataclasses import dataclass

from .models.contracts import LABEL_CLUSTER, LABEL_CLUSTER_UID, LABEL_PROVIDER


def sandbox_namespace(name: str, uid: str) -> str:
    """The meta namespace of a tenant cluster's objects (the ServerlessCluster operator's naming)."""
    return f"tenant-{name[:40]}-{uid[:8]}"


@dataclass(frozen=True)
class Tenant:
    cluster: str  # the ServerlessCluster's name
    uid: str      # its uid: also its VPC's id
    provider: str = "local"  # its provider: where its sandboxes, VPC, LBs and zones are


class TenancyError(Exception):
    """An object names a tenant, VPC or binding that is not its namespace's."""

    reason = "ForeignTenant"


def namespace_tenant(ns: dict | None) -> Tenant | None:
    """The tenant owning a namespace, from the labels its ServerlessCluster operator set, or
    None for a namespace of the meta-cluster's admins. The name must be the one the operator
    derives from those labels, so a label copied onto another namespace does not count."""
    meta = (ns or {}).get("metadata") or {}
    labels = meta.get("labels") or {}
    cluster, uid = labels.get(LABEL_CLUSTER), labels.get(LABEL_CLUSTER_UID)
    if cluster and uid and meta.get("name") == sandbox_namespace(cluster, uid):
        return Tenant(cluster, uid, labels.get(LABEL_PROVIDER) or "local")
    return None


def _label_refusals(body: dict, tenant: Tenant) -> list[str]:
    meta = body.get("metadata") or {}
    labels = meta.get("labels") or {}
    spec = body.get("spec") or {}
    out = []
    if LABEL_CLUSTER_UID in labels and labels[LABEL_CLUSTER_UID] != tenant.uid:
        out.append(f"metadata.labels[{LABEL_CLUSTER_UID}]: {labels[LABEL_CLUSTER_UID]!r} is not the uid of "
                   f"this namespace's cluster ({tenant.uid})")
    if LABEL_CLUSTER in labels and labels[LABEL_CLUSTER] != tenant.cluster:
        out.append(f"metadata.labels[{LABEL_CLUSTER}]: {labels[LABEL_CLUSTER]!r} is not this namespace's "
                   f"cluster ({tenant.cluster!r})")
    ref = (spec.get("clusterRef") or {}).get("name")
    if ref is not None and ref != tenant.cluster:
        out.append(f"spec.clusterRef.name: {ref!r} is not this namespace's cluster ({tenant.cluster!r})")
    return out


def refusals(kind: str, body: dict, tenant: Tenant) -> list[str]:
    """Why an object in `tenant`'s namespace names something that is not the tenant's (pure)."""
    out = _label_refusals(body, tenant)
    spec = body.get("spec") or {}
    if kind == "ServiceLB":
        vpc = spec.get("vpcID")
        if not vpc:
            out.append(f"spec.vpcID: required in a tenant namespace (this cluster's VPC is {tenant.uid})")
        elif vpc != tenant.uid:
            out.append(f"spec.vpcID: {vpc!r} is not this namespace's VPC ({tenant.uid})")
    elif kind == "PrivateZone":
        for i, vpc in enumerate(spec.get("vpcIDs") or []):
            if vpc != tenant.uid:
                out.append(f"spec.vpcIDs[{i}]: {vpc!r} is not this namespace's VPC ({tenant.uid})")
    if kind in ("SandboxPod", "ServiceLB", "PrivateZone") and (spec.get("provider") or "local") != tenant.provider:
        # A tenant's sandboxes, LBs and zones are where its cluster runs (its VPC is there),
        # never on another provider's account.
        out.append(f"spec.provider: {spec.get('provider') or 'local'!r} is not this namespace's cluster's "
                   f"provider ({tenant.provider!r})")
    return out


def named_vpcs(kind: str, body: dict) -> dict[str, str]:
    """The VPCs an object would make the provider create or join: field path -> VPC id."""
    spec = body.get("spec") or {}
    if kind == "SandboxPod":
        uid = ((body.get("metadata") or {}).get("labels") or {}).get(LABEL_CLUSTER_UID)
        return {f"metadata.labels[{LABEL_CLUSTER_UID}]": uid} if uid else {}
    if kind == "ServiceLB":
        return {"spec.vpcID": spec["vpcID"]} if spec.get("vpcID") else {}
    if kind == "PrivateZone":
        return {f"spec.vpcIDs[{i}]": v for i, v in enumerate(spec.get("vpcIDs") or [])}
    return {}


def unknown_vpcs(kind: str, body: dict, cluster_uids: set[str]) -> list[str]:
    """For an admin's object: VPCs it names that belong to no ServerlessCluster (pure)."""
    return [f"{path}: {vpc!r} is the VPC of no ServerlessCluster" for path, vpc in named_vpcs(kind, body).items()
            if vpc not in cluster_uids]


# --- lookups -------------------------------------------------------------------------
# A tenant namespace keeps its owner for life (its name carries the cluster's uid), so a
# positive answer is cached; an admin namespace is looked up again each time.
_tenants: dict[str, Tenant] = {}


async def _read_namespace(name: str) -> dict | None:
    from . import kube
    return await kube.read_namespace(name)


async def tenant_of(namespace: str) -> Tenant | None:
    if namespace in _tenants:
        return _tenants[namespace]
    tenant = namespace_tenant(await _read_namespace(namespace))
    if tenant is not None:
        _tenants[namespace] = tenant
    return tenant


async def cluster_uids() -> set[str]:
    from . import kube
    return {o["metadata"]["uid"] for o in await kube.list_objects("serverlessclusters")}


async def check(kind: str, body: dict) -> Tenant | None:
    """The tenant an object belongs to (None: an admin's), or TenancyError naming each
    field that points elsewhere."""
    tenant = await tenant_of(body["metadata"]["namespace"])
    if tenant is not None:
        problems = refusals(kind, body, tenant)
    elif named_vpcs(kind, body):
        problems = unknown_vpcs(kind, body, await cluster_uids())
    else:
        problems = []
    if problems:
        raise TenancyError("; ".join(problems))
    return tenant
