"""Domain logic of one tenant cluster: bring its control plane up, check it, tear it down.

Everything here runs on the operator's event loop. Work on the host that blocks
(starting and stopping processes, which waits for them; making PKI; removing a plane's
files) crosses to a thread at one place, `on_host`; the tenant apiserver and the meta
etcd are spoken to with aiohttp. Where the plane's components run, and how they are
started and stopped, is its runner's (runners.py: this host's processes, or a Deployment
of the meta-cluster); what follows is the same for both.
"""
from __future__ import annotations

import asyncio
import base64
import time
from pathlib import Path

import aiohttp
import yaml

from .. import GROUP, config, kube
from ..kubeclient.client import ApiError, KubeClient
from ..embedded.kubeconfig import build_kubeconfig, write_kubeconfig
from ..embedded.processes import ProcessSet
from ..embedded.pki import load
from ..models.contracts import LABEL_CLUSTER
from ..models.serverlesscluster import ServerlessClusterSpec
from ..providers import make_provider
from ..providers.lifecycle import SandboxLifecycle
from ..tenancy import sandbox_namespace
from . import controlplane as cp
from . import planes, podrunner, tenantstore
from .netplan import NetworkPlan, kube_dns_service
from .onhost import REPO_ROOT, on_host
from .runners import runner
from .tenant_pki import OPERATOR_CLIENT

VNODE_RBAC = REPO_ROOT / "operators" / "virtualnode" / "rbac.yaml"
COMPATIBILITY_POLICY = REPO_ROOT / "operators" / "serverlesscluster" / "compatibility.yaml"
PROVIDER_POLICIES = {"aliyun": (COMPATIBILITY_POLICY.with_name("compatibility-aliyun.yaml"),)}  # what ECI can't run
DEFAULT_QUOTAS = {"maxPods": 100, "cpu": "32", "memory": "128Gi"}
FIELD_MANAGER = "sk8s-serverlesscluster"
TENANT_TIMEOUT = aiohttp.ClientTimeout(total=10)  # of one request: a health tick must not hang on one


def tenant_client(t: cp.Tenant) -> KubeClient:
    """The tenant apiserver, as an admin of the plane's PKI: the operator's own identity (the
    tenant's audit log leaves it out: idle.py), marked past the wake rule (wakerules.py):
    nothing the operator asks wakes a sleeping tenant (it finds the port closed)."""
    user = OPERATOR_CLIENT if (t.pki / f"{OPERATOR_CLIENT}.key").exists() else "admin"
    return KubeClient.from_pki(t.endpoint, t.pki, user, socket_mark=runner().socket_mark,
                               name=f"tenant {t.name or t.directory.name}", user_agent=FIELD_MANAGER,
                               timeout=TENANT_TIMEOUT)


def logs_hint(t: cp.Tenant, component: str) -> str:
    """Where a component's log is, for a status message."""
    return runner().logs_hint(t, component)


def plane_tenant(plane: planes.Plane, **identity) -> cp.Tenant:
    where = runner().placement(plane)
    return cp.Tenant(directory=plane.directory, etcd_url=config.etcd_url(), etcd_prefix=plane.etcd_prefix,
                     network=NetworkPlan(plane.vpc_cidr) if plane.vpc_cidr else None, **where, **identity)


_providers: dict[str, SandboxLifecycle] = {}


def provider(name: str | None = None) -> SandboxLifecycle:
    """The provider whose VPCs the planes' address plans are cut from (and built by)."""
    name = name or config.provider_name()
    if name not in _providers:
        _providers[name] = make_provider(name)
    return _providers[name]


async def new_plane(claim_for: str | None = None) -> planes.Plane:
    """A plane with its own VPC range held by the provider: no other plane or network has it."""
    pid = planes.new_id()
    # Held for as long as the plane's directory exists (the provider's holds say why).
    cidr = await provider().reserve_network(str(planes.planes_root() / pid))
    try:
        return await on_host(planes.new_plane, claim_for, cidr, pid)
    except BaseException:
        if cidr:
            await provider().release_network(cidr)
        raise


def tenant_for(body, plane: planes.Plane) -> cp.Tenant:
    meta = body["metadata"]
    spec = ServerlessClusterSpec.model_validate(body.get("spec") or {})
    quotas = {**DEFAULT_QUOTAS, **(spec.quotas.to_wire() if spec.quotas else {})}
    return plane_tenant(
        plane, name=meta["name"], namespace=meta["namespace"], uid=meta["uid"],
        sandbox_namespace=sandbox_namespace(meta["name"], meta["uid"]),
        max_pods=int(quotas["maxPods"]), cpu=str(quotas["cpu"]), memory=str(quotas["memory"]),
        provider=spec.provider, virtual_nodes=spec.virtualNodes, region=spec.region or "")


def components(t: cp.Tenant) -> list[str]:
    """The processes this tenant's plane runs (kube-scheduler only with several nodes)."""
    return [n for n in planes.STOP_ORDER if n != "kube-scheduler" or t.runs_scheduler]


def processes(t: cp.Tenant) -> ProcessSet | podrunner.KubeletManaged:
    return runner().processes(t)


async def start_apiserver(t: cp.Tenant, env: dict[str, str] | None = None) -> None:
    await runner().start_apiserver(t, env)


async def start_controller_manager(t: cp.Tenant) -> None:
    await runner().start_controller_manager(t)


async def start_virtual_node(t: cp.Tenant) -> None:
    """Start the virtual node, or hand it its cluster."""
    await runner().start_virtual_node(t)


async def start_scheduler(t: cp.Tenant) -> None:
    """At claim, only for a cluster with several virtual nodes (a no-op otherwise)."""
    await runner().start_scheduler(t)


async def start_named(t: cp.Tenant, name: str) -> None:
    await runner().start_named(t, name)


async def stop_component(t: cp.Tenant, name: str) -> None:
    await on_host(processes(t).stop, name)


# The virtual node's rights in the meta-cluster: its own tenant's SandboxPods, load
# balancers and private zone (all in the tenant's namespace), nothing else.
VNODE_META_RULES = [{"apiGroups": [GROUP], "resources": ["sandboxpods", "servicelbs", "privatezones"],
                     "verbs": ["get", "list", "watch", "create", "patch", "delete"]},
                    # The sandboxes' kubelet events, mirrored onto the tenant pods.
                    {"apiGroups": [""], "resources": ["events"], "verbs": ["list", "watch"]},
                    # Pods' volume content (ConfigMap, Secret, downward API files).
                    {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "create", "patch", "delete"]}]
# With the metapod provider its sandboxes are Pods of that namespace: their logs and streams
# go through the meta apiserver (providers/metapod/streams.py).
VNODE_METAPOD_RULES = [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
                       {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
                       {"apiGroups": [""], "resources": ["pods/exec", "pods/attach", "pods/portforward"],
                        "verbs": ["get", "create"]}]


def vnode_meta_rules(provider_name: str) -> list[dict]:
    return VNODE_META_RULES + (VNODE_METAPOD_RULES if provider_name == "metapod" else [])


VNODE_TOKEN_SECONDS = 365 * 24 * 3600


async def write_meta_credentials(t: cp.Tenant) -> Path:
    """A kubeconfig for the meta-cluster that a compromised virtual node cannot abuse."""
    path = t.directory / "meta.kubeconfig"
    if path.exists():
        await kube.apply_role(t.sandbox_namespace, "virtual-node", vnode_meta_rules(t.provider))  # rights of this version
        return path
    rules = vnode_meta_rules(t.provider)
    token = await kube.scoped_token(t.sandbox_namespace, "virtual-node", rules, VNODE_TOKEN_SECONDS)
    server, ca = kube.server_and_ca()
    config = {"apiVersion": "v1", "kind": "Config",
              "clusters": [{"name": "meta", "cluster": {"server": server,
                                                        "certificate-authority-data": base64.b64encode(ca).decode()}}],
              "users": [{"name": "virtual-node", "user": {"token": token}}],
              "contexts": [{"name": "meta", "context": {"cluster": "meta", "user": "virtual-node",
                                                        "namespace": t.sandbox_namespace}}],
              "current-context": "meta"}
    return write_kubeconfig(path, config)


async def wait_apiserver(t: cp.Tenant, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    async with tenant_client(t) as tc:
        while time.monotonic() < deadline:
            if await tc.ready():
                return True
            if not processes(t).running("kube-apiserver"):
                return False
            await asyncio.sleep(0.05)
    return False


_PLURALS = {"ClusterRole": "clusterroles", "ClusterRoleBinding": "clusterrolebindings", "Role": "roles",
            "RoleBinding": "rolebindings", "ValidatingAdmissionPolicy": "validatingadmissionpolicies",
            "ValidatingAdmissionPolicyBinding": "validatingadmissionpolicybindings"}


def bootstrap_path(doc: dict) -> str:
    ns = doc["metadata"].get("namespace")
    scope = f"namespaces/{ns}/" if ns else ""
    return f"/apis/{doc['apiVersion']}/{scope}{_PLURALS[doc['kind']]}/{doc['metadata']['name']}"


# Bootstrap objects of earlier versions, removed from a plane that still has them:
# sk8s-pod-updates refused image changes, which the virtual node now carries out.
RETIRED = [
    {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
     "metadata": {"name": "sk8s-pod-updates"}},
    {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
     "metadata": {"name": "sk8s-pod-updates"}},
]


async def bootstrap(t: cp.Tenant) -> None:
    """Before its virtual node starts: the node's RBAC, the policies refusing what sk8s or its provider cannot run."""
    async with tenant_client(t) as tc:
        for source in (VNODE_RBAC, COMPATIBILITY_POLICY, *PROVIDER_POLICIES.get(t.provider, ())):
            for doc in yaml.safe_load_all(source.read_text()):
                if doc:
                    await tc.apply(bootstrap_path(doc), doc, FIELD_MANAGER)
        for doc in RETIRED:
            try:
                await tc.delete(bootstrap_path(doc))
            except ApiError as exc:
                if exc.status != 404:
                    raise


async def build_network(t: cp.Tenant, provider_name: str) -> str | None:
    """At claim: the provider builds the tenant's VPC with the plane's range; the VPC
    resolver's address. Nothing for a plane without a plan (its VPC is made when first needed).
    Where the sandbox namespace is the tenant's boundary (metapod), it is fenced first."""
    await provider(provider_name).isolate_namespace(t.sandbox_namespace)
    if t.network is None:
        return None
    return await provider(provider_name).ensure_cluster_network(t.uid, t.network.vpc_cidr)


async def reserve_resolver(t: cp.Tenant, resolver: str) -> None:
    """kube-system/kube-dns takes the resolver's address, so the apiserver never gives it
    to another Service (whose load balancer could not have it)."""
    async with tenant_client(t) as tc:
        if await tc.get_or_none("/api/v1/namespaces/kube-system/services/kube-dns") is None:
            await tc.create("/api/v1/namespaces/kube-system/services", kube_dns_service(resolver))


async def warm_up(t: cp.Tenant, timeout: float = 90) -> bool:
    """Everything that does not depend on which cluster will own the plane."""
    await runner().start(t)
    if not await wait_apiserver(t, timeout):
        return False
    await bootstrap(t)
    await runner().start_after_bootstrap(t)
    return True


def kubeconfig_secret(t: cp.Tenant) -> dict:
    pair = load(t.pki, "admin")
    config = build_kubeconfig(name=t.name, server=t.endpoint, ca_pem=(t.pki / "ca.crt").read_bytes(),
                              cert_pem=pair.cert_pem, key_pem=pair.key_pem)
    text = yaml.safe_dump(config, sort_keys=False)
    return {
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": f"{t.name}-kubeconfig", "labels": {LABEL_CLUSTER: t.name}},
        "data": {"kubeconfig": base64.b64encode(text.encode()).decode(),
                 "endpoint": base64.b64encode(t.endpoint.encode()).decode()},
    }


async def destroy_plane(plane: planes.Plane) -> None:
    """Stop a plane's processes and remove its stored data and files."""
    t = plane_tenant(plane)
    await runner().stop(plane, t)
    await tenantstore.delete_prefix(t)
    await tenantstore.revoke(t)
    await on_host(planes.remove, plane)
    if plane.vpc_cidr:  # a claimed plane's VPC network keeps its range until released
        await provider().release_network(plane.vpc_cidr)
