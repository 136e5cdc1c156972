"""Domain logic of one tenant cluster: bring its control plane up, check it, tear it down.

Everything here runs on the operator's event loop. Work on the host that blocks
(starting and stopping processes, which waits for them; making PKI; removing a plane's
files) crosses to a thread at one place, `on_host`; the tenant apiserver and the meta
etcd are spoken to with aiohttp.
"""
from __future__ import annotations

import asyncio
import base64
import json
import sys
import time
from pathlib import Path
from typing import Callable, TypeVar

import aiohttp
import yaml

from .. import GROUP, config, kube
from ..kubeclient.client import ApiError, KubeClient
from ..config import sk8s_home
from ..embedded.binaries import ensure_binaries
from ..embedded.kubeconfig import build_kubeconfig, write_kubeconfig
from ..embedded.processes import ProcessSet
from ..embedded.pki import load
from ..models.contracts import LABEL_CLUSTER
from ..models.serverlesscluster import ServerlessClusterSpec
from ..providers import make_provider
from ..providers.lifecycle import SandboxLifecycle
from ..tenancy import sandbox_namespace
from . import controlplane as cp
from . import idle, planes, podplane, podrunner, tenantstore, wakerules
from .egress import write_egress_config
from .netplan import NetworkPlan, kube_dns_service
from .tenant_pki import (OPERATOR_CLIENT, ensure_front_proxy_pki, ensure_operator_client, ensure_scheduler_client,
                         ensure_tenant_pki)

REPO_ROOT = Path(__file__).resolve().parents[2]
VNODE_RBAC = REPO_ROOT / "operators" / "virtualnode" / "rbac.yaml"
COMPATIBILITY_POLICY = REPO_ROOT / "operators" / "serverlesscluster" / "compatibility.yaml"
PROVIDER_POLICIES = {"aliyun": (COMPATIBILITY_POLICY.with_name("compatibility-aliyun.yaml"),)}  # what ECI can't run
DEFAULT_QUOTAS = {"maxPods": 100, "cpu": "32", "memory": "128Gi"}
FIELD_MANAGER = "sk8s-serverlesscluster"
TENANT_TIMEOUT = aiohttp.ClientTimeout(total=10)  # of one request: a health tick must not hang on one
T = TypeVar("T")


async def on_host(fn: Callable[..., T], *args, **kwargs) -> T:
    """The boundary between the event loop and blocking work on the host: `fn` runs in a
    thread. Every such call of this operator goes through here (see the module's doc)."""
    return await asyncio.to_thread(fn, *args, **kwargs)


def tenant_client(t: cp.Tenant) -> KubeClient:
    """The tenant apiserver, as an admin of the plane's PKI: the operator's own identity (the
    tenant's audit log leaves it out: idle.py), marked past the wake rule (wakerules.py):
    nothing the operator asks wakes a sleeping tenant (it finds the port closed)."""
    user = OPERATOR_CLIENT if (t.pki / f"{OPERATOR_CLIENT}.key").exists() else "admin"
    mark = None if in_pods() else wakerules.MARK  # SO_MARK needs CAP_NET_ADMIN, which a Pod lacks
    return KubeClient.from_pki(t.endpoint, t.pki, user, socket_mark=mark, name=f"tenant {t.name or t.directory.name}",
                               user_agent=FIELD_MANAGER, timeout=TENANT_TIMEOUT)


def in_pods() -> bool:
    """Planes run as meta-cluster workloads (podrunner.py), not as processes of this host."""
    return config.plane_runner() == "pods"


def logs_hint(t: cp.Tenant, component: str) -> str:
    """Where a component's log is, for a status message."""
    if in_pods():
        return (f"kubectl -n {config.plane_namespace()} logs deploy/{podplane.object_name(t.directory.name)} "
                f"-c {component}")
    return f"{t.directory}/logs/{component}.log"


def plane_tenant(plane: planes.Plane, **identity) -> cp.Tenant:
    where = dict(ports=cp.TenantPorts(podplane.SERVICE_PORT, podplane.KUBELET_PORT),
                 host=podplane.service_host(plane.id, config.plane_namespace())) if in_pods() else \
        dict(ports=cp.TenantPorts(plane.apiserver_port, plane.kubelet_port))
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
    return podrunner.KubeletManaged() if in_pods() else ProcessSet(t.directory)


def write_credentials(t: cp.Tenant) -> None:
    ensure_tenant_pki(t.pki, "tenant", t.kubernetes_ip, podplane.serving_names(t.host) if in_pods() else ())
    ensure_front_proxy_pki(t.pki)
    ensure_operator_client(t.pki)
    tenantstore.ensure_etcd_client(t)
    ca = (t.pki / "ca.crt").read_bytes()
    users = ["admin", "controller-manager", "virtual-node"]
    if t.runs_scheduler:
        ensure_scheduler_client(t.pki)
        users.append("scheduler")
    for user in users:
        pair = load(t.pki, user)
        path = t.kubeconfig(user)
        if not path.exists():
            write_kubeconfig(path, build_kubeconfig(name="sk8s-tenant", server=t.endpoint, ca_pem=ca,
                                                    cert_pem=pair.cert_pem, key_pem=pair.key_pem, user=user))


async def start_apiserver(t: cp.Tenant, env: dict[str, str] | None = None) -> None:
    await on_host(_start_apiserver, t, env)


async def start_controller_manager(t: cp.Tenant) -> None:
    if not in_pods():  # in a Pod: the kubelet's
        await on_host(_start_controller_manager, t)


async def start_virtual_node(t: cp.Tenant) -> None:
    """Start the virtual node, or hand it its cluster; in a Pod, the claim Secret does."""
    if not in_pods():
        await on_host(_start_virtual_node, t)
    elif t.name:
        await podrunner.claim(t, planes.load(t.directory), t.directory / "meta.kubeconfig")


async def start_scheduler(t: cp.Tenant) -> None:
    """At claim, only for a cluster with several virtual nodes (a no-op otherwise)."""
    if t.runs_scheduler and in_pods():
        await start_plane_pod(t)
    elif t.runs_scheduler:
        await on_host(_start_scheduler, t)


async def start_named(t: cp.Tenant, name: str) -> None:
    """Start one component by name, whatever the tenant's spec says (a woken plane starts
    again what ran when it fell asleep)."""
    starters = {"kube-apiserver": _start_apiserver, "kube-controller-manager": _start_controller_manager,
                "kube-scheduler": _start_scheduler, "virtual-node": _start_virtual_node}
    await on_host(starters[name], t)


async def stop_component(t: cp.Tenant, name: str) -> None:
    await on_host(processes(t).stop, name)


def _start_apiserver(t: cp.Tenant, env: dict[str, str] | None = None) -> None:
    write_credentials(t)
    write_egress_config(t.directory)
    idle.write_policy(t.directory)
    processes(t).start("kube-apiserver", cp.apiserver_args(ensure_binaries(quiet=True), t),
                       env=env or cp.APISERVER_ENV)


def _start_controller_manager(t: cp.Tenant) -> None:
    processes(t).start("kube-controller-manager", cp.controller_manager_args(ensure_binaries(quiet=True), t),
                       env=cp.KCM_ENV)


def _start_scheduler(t: cp.Tenant) -> None:
    write_credentials(t)  # the scheduler's kubeconfig: a warm plane has none
    processes(t).start("kube-scheduler", cp.scheduler_args(ensure_binaries(quiet=True), t), env=cp.SCHEDULER_ENV)


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


def _start_virtual_node(t: cp.Tenant) -> None:
    """Start (or hand its cluster to) the plane's virtual node.

    A standby plane's node is started without a cluster and waits for its arguments
    file; writing that file is all a claim has to do. Arguments written by an earlier
    version (say, before `--egress-socket`, which this version's apiserver dials) are
    rewritten, and a node running with them is restarted, as ProcessSet.start replaces a
    process whose flags changed.
    """
    args_file = t.directory / "virtual-node.args"
    if t.name:
        if not (t.directory / "meta.kubeconfig").exists():
            raise RuntimeError("the virtual node's meta credentials must be written before its arguments")
        wanted = json.dumps(cp.virtual_node_args(t, t.directory / "meta.kubeconfig"))
        try:
            current = args_file.read_text()
        except FileNotFoundError:
            current = None
        if current != wanted:
            tmp = args_file.with_suffix(".tmp")
            tmp.write_text(wanted)
            tmp.replace(args_file)  # atomic: the waiting node never reads half a file
            if current is not None:
                processes(t).stop("virtual-node")
    processes(t).start("virtual-node", [sys.executable, "-m", "operators.virtualnode", f"--args-from={args_file}"],
                       env={"SK8S_HOME": str(sk8s_home())}, cwd=str(REPO_ROOT))


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
    """Everything that does not depend on which cluster will own the plane. In a Pod the
    controller-manager and the waiting virtual node start with the apiserver."""
    if in_pods():
        await start_plane_pod(t)
    else:
        await start_apiserver(t)
    if not await wait_apiserver(t, timeout):
        return False
    await bootstrap(t)
    if not in_pods():
        await start_controller_manager(t)
        await start_virtual_node(t)
    return True


async def start_plane_pod(t: cp.Tenant) -> None:
    """The `pods` runner's plane: its objects applied (again: a cluster of several nodes adds
    kube-scheduler at claim), with a datastore user whose role is the plane's prefix."""
    await on_host(write_credentials, t)
    await tenantstore.grant(t)
    await podrunner.create(t, planes.load(t.directory))


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
    if in_pods():
        await podrunner.destroy(plane.id)
    else:
        await on_host(processes(t).stop_all, order=planes.STOP_ORDER, timeout=3)
    await tenantstore.delete_prefix(t)
    await tenantstore.revoke(t)
    await on_host(planes.remove, plane)
    if plane.vpc_cidr:  # a claimed plane's VPC network keeps its range until released
        await provider().release_network(plane.vpc_cidr)
