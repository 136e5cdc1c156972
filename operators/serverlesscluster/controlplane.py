"""Command lines of one tenant's control plane: pure builders, unit-tested.

Embedded mode runs them as processes on this host; on a real meta-cluster the same
argument lists become the containers of a per-tenant Deployment.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .. import config
from ..embedded import etcd_pki
from ..embedded.components import EtcdClient, apiserver_argv, controller_manager_argv
from ..models.contracts import VIRTUAL_NODE_NAME, virtual_node_names
from . import egress, idle
from .netplan import LEGACY_KUBERNETES_IP, NetworkPlan
from .tenant_pki import FRONT_PROXY_CLIENT

NODE_NAME = VIRTUAL_NODE_NAME


def apiserver_env(lean: bool) -> dict[str, str]:
    """The Go runtime of a tenant kube-apiserver. An idle one's live heap is ~90 MiB (about half of
    it the OpenAPI v2/v3 specs it serves, which no flag turns off), so the heap it keeps is
    what GOGC adds on top of that: GOGC=25 collects at 1.25x live instead of 1.5x (measured:
    ~25 MiB less anonymous memory, idle CPU still ~2-3%). Safe: GOGC trades only GC CPU for
    memory; GOMEMLIMIT stays where it was, well above the live heap, so no GC thrash."""
    return {"GOMEMLIMIT": "200MiB", "GOGC": "25" if lean else "50"}


def controller_manager_env(lean: bool) -> dict[str, str]:
    """The same trade for kube-controller-manager (its heap is its informers' caches)."""
    return {"GOMEMLIMIT": "64MiB", "GOGC": "25" if lean else "50"}


# Go runtime limits keep an idle tenant control plane small (figures: README, Benchmarks).
APISERVER_ENV = apiserver_env(config.lean_planes())
# A woken apiserver's start is what a waiting client waits for: at GOGC=25 its start-up does
# ~45 collections and ~2.5 s of CPU, at GOGC=100 ~13 and ~1.5 s (measured with gctrace). It
# keeps the larger heap until the tenant sleeps again (~+50 MiB while awake).
WAKE_APISERVER_ENV = {"GOMEMLIMIT": "200MiB", "GOGC": "100"}
KCM_ENV = controller_manager_env(config.lean_planes())
SCHEDULER_ENV = {"GOMEMLIMIT": "48MiB", "GOGC": "50"}


@dataclass(frozen=True)
class TenantPorts:
    apiserver: int
    kubelet: int


@dataclass(frozen=True)
class Tenant:
    """Everything the builders need to know about one tenant (or a standby plane: no name yet)."""

    directory: Path      # PKI, kubeconfigs, logs and pid files live here
    ports: TenantPorts
    etcd_url: str
    etcd_prefix: str     # storage isolation: only this tenant's apiserver uses this prefix
    name: str = ""       # ServerlessCluster name
    namespace: str = ""  # its namespace in the meta-cluster
    uid: str = ""
    sandbox_namespace: str = ""
    max_pods: int = 100
    cpu: str = "32"
    memory: str = "128Gi"
    provider: str = "local"
    network: NetworkPlan | None = None  # None: a plane made before address plans (10.96.0.0/16)
    virtual_nodes: int = 1  # spec.virtualNodes: above 1, the plane also runs kube-scheduler
    region: str = ""        # names the zones of several nodes (<region>-a, ...; "local" without)
    host: str = "127.0.0.1"  # where the operator reaches the apiserver (the `pods` runner: its Service)

    @property
    def node_names(self) -> list[str]:
        return virtual_node_names(self.virtual_nodes, NODE_NAME)

    @property
    def runs_scheduler(self) -> bool:
        """One node binds its pods itself (nothing to choose, a process saved); several need
        kube-scheduler's choice (spread, anti-affinity, fit)."""
        return self.virtual_nodes > 1

    @property
    def kubernetes_ip(self) -> str:
        return self.network.kubernetes_ip if self.network else LEGACY_KUBERNETES_IP

    @property
    def pki(self) -> Path:
        return self.directory / "pki"

    @property
    def endpoint(self) -> str:
        return f"https://{self.host}:{self.ports.apiserver}"

    def kubeconfig(self, user: str) -> Path:
        return self.directory / f"{user}.kubeconfig"

    @property
    def etcd_cn(self) -> str:
        """This plane's name towards etcd (its client certificate's CN)."""
        return f"sk8s-plane-{self.directory.name}"

    @property
    def etcd(self) -> EtcdClient:
        """The plane's own client certificate of the meta etcd's CA, in its PKI directory."""
        p = self.pki
        return EtcdClient(self.etcd_url, p / etcd_pki.CLIENT_CA_FILE, p / f"{etcd_pki.CLIENT_STEM}.crt",
                          p / f"{etcd_pki.CLIENT_STEM}.key")


def apiserver_args(bindir: Path, t: Tenant) -> list[str]:
    p = t.pki
    # With a plan: ClusterIPs from the VPC's service range, and the `kubernetes` Endpoints at
    # its ClusterIP, where the VPC's load balancer forwards to this apiserver.
    plan = {"service_cidr": t.network.service_cidr, "advertise_address": t.network.kubernetes_ip} \
        if t.network else {}
    return apiserver_argv(bindir, p, etcd=t.etcd, etcd_prefix=t.etcd_prefix, port=t.ports.apiserver, **plan) + [
        # The apiserver's way to the virtual node's kubelet endpoints (logs, exec).
        f"--kubelet-client-certificate={p / 'apiserver-kubelet-client.crt'}",
        f"--kubelet-client-key={p / 'apiserver-kubelet-client.key'}",
        f"--kubelet-certificate-authority={p / 'ca.crt'}",
        "--kubelet-preferred-address-types=InternalIP",
        # Webhooks, conversion webhooks and aggregated APIs at their endpoints (pod IPs, in the
        # VPC) rather than at a ClusterIP, and every connection into the cluster through the
        # tenant's egress proxy, which allows its own VPC and kubelet only (egress.py).
        "--enable-aggregator-routing=true",
        f"--egress-selector-config-file={t.directory / egress.CONFIG_FILE}",
        # The aggregator proxies as front-proxy-client with the caller in X-Remote-* headers;
        # the apiserver publishes this CA in kube-system/extension-apiserver-authentication,
        # where aggregated API servers (metrics-server, ...) learn whom to trust.
        f"--proxy-client-cert-file={p / (FRONT_PROXY_CLIENT + '.crt')}",
        f"--proxy-client-key-file={p / (FRONT_PROXY_CLIENT + '.key')}",
        f"--requestheader-client-ca-file={p / 'front-proxy-ca.crt'}",
        f"--requestheader-allowed-names={FRONT_PROXY_CLIENT}",
        "--requestheader-username-headers=X-Remote-User",
        "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        # Activity only (the plane's own traffic left out): the tenant's idle clock (idle.py).
        *idle.audit_flags(t.directory),
    ]


# The controllers of upstream's default set that need no node, kubelet or cloud. Left out
# (README, "Tenant clusters"): node lifecycle and taint eviction (a sandbox does not live on
# the node, so a late heartbeat must not evict pods or flip their readiness; the virtual
# node keeps the condition taints), node IPAM and TTL, attach/detach and expansion (nothing
# is attached to a node), CSR signing and approval (the signing key would be the tenant CA
# that the apiserver and the virtual node trust; no kubelet bootstraps), DRA (no drivers),
# the storage-version migrator, and what upstream leaves off by default or behind gates that
# are off. Every controller left out is informers and memory saved.
TENANT_CONTROLLERS = (
    "deployment-controller", "replicaset-controller", "replicationcontroller-controller",
    "statefulset-controller", "daemonset-controller", "job-controller", "cronjob-controller",
    "ttl-after-finished-controller", "garbage-collector-controller", "namespace-controller",
    "serviceaccount-controller", "serviceaccount-token-controller", "root-ca-certificate-publisher-controller",
    "legacy-serviceaccount-token-cleaner-controller", "clusterrole-aggregation-controller",
    "endpoints-controller", "endpointslice-controller", "endpointslice-mirroring-controller",
    "service-cidr-controller", "resourcequota-controller", "disruption-controller",
    "horizontal-pod-autoscaler-controller", "pod-garbage-collector-controller",
    # Storage objects as the API promises them, though pods may not mount claims yet.
    "persistentvolume-binder-controller", "persistentvolumeclaim-protection-controller",
    "persistentvolume-protection-controller", "volumeattributesclass-protection-controller",
    "ephemeral-volume-controller",
    "validatingadmissionpolicy-status-controller", "certificatesigningrequest-cleaner-controller",
    "podcertificaterequest-cleaner-controller", "kube-apiserver-serving-clustertrustbundle-publisher-controller",
)


def controller_manager_args(bindir: Path, t: Tenant) -> list[str]:
    return controller_manager_argv(bindir, t.pki, t.kubeconfig("controller-manager"),
                                   ",".join(TENANT_CONTROLLERS)) + [
        "--concurrent-deployment-syncs=10", "--concurrent-replicaset-syncs=10",
        "--kube-api-qps=200", "--kube-api-burst=400",
    ]


def scheduler_args(bindir: Path, t: Tenant) -> list[str]:
    """kube-scheduler of a tenant with several virtual nodes, as system:kube-scheduler (its
    bootstrap RBAC roles) with a client certificate of the plane's CA. `--secure-port=0`: it
    serves nothing at all (no metrics or health port to guard or to collide with another
    plane's on this host; its liveness is its process, like the controller-manager's), so
    no authentication or authorization kubeconfigs either. One replica: no leader election."""
    return [
        str(bindir / "kube-scheduler"),
        f"--kubeconfig={t.kubeconfig('scheduler')}",
        "--leader-elect=false",
        "--secure-port=0",
        "--kube-api-qps=100", "--kube-api-burst=200",
        "--v=1",
    ]


def virtual_node_args(t: Tenant, meta_kubeconfig: Path) -> list[str]:
    """The flags of `python -m operators.virtualnode` for this tenant."""
    p = t.pki
    return [
        f"--tenant-kubeconfig={t.kubeconfig('virtual-node')}",
        f"--meta-kubeconfig={meta_kubeconfig}",
        f"--meta-namespace={t.sandbox_namespace}",
        f"--cluster={t.name}", f"--cluster-uid={t.uid}",
        f"--node-name={NODE_NAME}",
        "--address=127.0.0.1", f"--port={t.ports.kubelet}",
        f"--tls-cert={p / 'virtual-node-serving.crt'}", f"--tls-key={p / 'virtual-node-serving.key'}",
        f"--client-ca={p / 'ca.crt'}",
        f"--max-pods={t.max_pods}", f"--cpu={t.cpu}", f"--memory={t.memory}",
        f"--provider={t.provider}",
        f"--egress-socket={egress.socket_path(t.directory)}",
        *([f"--service-cidr={t.network.service_cidr}"] if t.network else []),
        # Several nodes: the plane's kube-scheduler binds pods (a single node's args are as before).
        *([f"--virtual-nodes={t.virtual_nodes}", f"--zone-base={t.region or 'local'}", "--scheduler=external"]
          if t.runs_scheduler else []),
    ]
