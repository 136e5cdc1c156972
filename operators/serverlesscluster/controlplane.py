"""Command lines of one tenant's control plane: pure builders, unit-tested.

Embedded mode runs them as processes on this host; on a real meta-cluster the same
argument lists become the containers of a per-tenant Deployment.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from ..quantity import cpu_cores, memory_bytes

NODE_NAME = "virtual-node"
SERVICE_CIDR = "10.96.0.0/16"
# Go runtime limits keep an idle tenant control plane small (target <= 350 MiB in all).
APISERVER_ENV = {"GOMEMLIMIT": "200MiB", "GOGC": "50"}
KCM_ENV = {"GOMEMLIMIT": "64MiB", "GOGC": "50"}


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

    @property
    def pki(self) -> Path:
        return self.directory / "pki"

    @property
    def endpoint(self) -> str:
        return f"https://127.0.0.1:{self.ports.apiserver}"

    def kubeconfig(self, user: str) -> Path:
        return self.directory / f"{user}.kubeconfig"


def sandbox_namespace(name: str, uid: str) -> str:
    return f"tenant-{name[:40]}-{uid[:8]}"


def apiserver_args(bindir: Path, t: Tenant) -> list[str]:
    p = t.pki
    return [
        str(bindir / "kube-apiserver"),
        f"--etcd-servers={t.etcd_url}",
        f"--etcd-prefix={t.etcd_prefix}",
        "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
        f"--secure-port={t.ports.apiserver}",
        f"--tls-cert-file={p / 'apiserver.crt'}", f"--tls-private-key-file={p / 'apiserver.key'}",
        f"--client-ca-file={p / 'ca.crt'}",
        f"--service-account-key-file={p / 'sa.crt'}",
        f"--service-account-signing-key-file={p / 'sa.key'}",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        f"--kubelet-client-certificate={p / 'apiserver-kubelet-client.crt'}",
        f"--kubelet-client-key={p / 'apiserver-kubelet-client.key'}",
        f"--kubelet-certificate-authority={p / 'ca.crt'}",
        "--kubelet-preferred-address-types=InternalIP",
        "--authorization-mode=RBAC",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--allow-privileged=false",
        "--profiling=false",
        "--enable-priority-and-fairness=false",
        "--endpoint-reconciler-type=none",
        "--v=1",
    ]


def controller_manager_args(bindir: Path, t: Tenant) -> list[str]:
    kc = t.kubeconfig("controller-manager")
    return [
        str(bindir / "kube-controller-manager"),
        f"--kubeconfig={kc}", f"--authentication-kubeconfig={kc}", f"--authorization-kubeconfig={kc}",
        "--leader-elect=false",
        "--use-service-account-credentials=true",
        "--bind-address=127.0.0.1", "--secure-port=0",
        f"--service-account-private-key-file={t.pki / 'sa.key'}",
        f"--root-ca-file={t.pki / 'ca.crt'}",
        # No node lifecycle: the virtual node's pods live in sandboxes, not on the node, so
        # a late heartbeat must not evict them or flip their readiness. No IPAM/routes/cloud.
        "--controllers=*,-node-lifecycle-controller,-taint-eviction-controller,-node-ipam-controller,"
        "-persistentvolume-attach-detach-controller",
        "--concurrent-deployment-syncs=10", "--concurrent-replicaset-syncs=10",
        "--kube-api-qps=200", "--kube-api-burst=400",
        "--v=1",
    ]


def virtual_node_args(t: Tenant, meta_kubeconfig: Path) -> list[str]:
    p = t.pki
    return [
        sys.executable, "-m", "operators.virtualnode",
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
    ]


def validate_quotas(cpu: str, memory: str) -> None:
    cpu_cores(cpu)
    memory_bytes(memory)
