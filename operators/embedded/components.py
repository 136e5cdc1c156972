"""Command lines of the meta-cluster's components: pure builders, unit-tested."""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..config import Layout, Ports, free_port
from ..models.contracts import SERVICE_CIDR
from . import etcd_pki

# One entry per independent operator: each runs as its own process.
OPERATORS: dict[str, str] = {
    "sandboxpod-operator": "operators.sandboxpod.operator",
    "serverlesscluster-operator": "operators.serverlesscluster.operator",
    "servicelb-operator": "operators.servicelb.operator",
    "privatezone-operator": "operators.privatezone.operator",
}


@dataclass
class Component:
    name: str
    argv: list[str]
    health_url: str
    env: dict[str, str] = field(default_factory=dict)
    # The client certificate its health probe shows: "" none (plain HTTP), "apiserver"
    # the meta admin's, "etcd" etcd's health-check client.
    tls: str = ""


@dataclass(frozen=True)
class EtcdClient:
    """How an apiserver reaches the meta etcd: TLS with a client certificate of etcd's CA."""
    url: str
    ca: Path
    cert: Path
    key: Path

    def flags(self) -> list[str]:
        return [f"--etcd-servers={self.url}", f"--etcd-cafile={self.ca}",
                f"--etcd-certfile={self.cert}", f"--etcd-keyfile={self.key}"]


def etcd_url(ports: Ports) -> str:
    return f"https://127.0.0.1:{ports.etcd_client}"


def etcd(bindir: Path, lay: Layout, ports: Ports) -> Component:
    client = etcd_url(ports)
    peer = f"https://127.0.0.1:{ports.etcd_peer}"
    k = etcd_pki.etcd_pki_dir(lay.pki)
    return Component("etcd", [
        str(bindir / "etcd"),
        "--name=sk8s-meta",
        f"--data-dir={lay.etcd_data}",
        f"--listen-client-urls={client}", f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}", f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=sk8s-meta={peer}",
        # TLS only, and only for certificates of etcd's own CA: on both ports, a process
        # of this host without one cannot complete a handshake, let alone read or write.
        "--client-cert-auth=true", f"--trusted-ca-file={k / 'ca.crt'}",
        f"--cert-file={k / 'server.crt'}", f"--key-file={k / 'server.key'}",
        "--peer-client-cert-auth=true", f"--peer-trusted-ca-file={k / 'ca.crt'}",
        f"--peer-cert-file={k / 'peer.crt'}", f"--peer-key-file={k / 'peer.key'}",
        "--listen-metrics-urls=",
        # A single-member, host-local store: fsync latency dominates start-up and writes.
        "--unsafe-no-fsync=true",
        "--quota-backend-bytes=8589934592",
        "--log-level=warn",
    ], health_url=f"{client}/health", tls="etcd")


def apiserver_argv(bindir: Path, pki: Path, *, etcd: EtcdClient, etcd_prefix: str, port: int,
                   anonymous: bool = True, service_cidr: str = SERVICE_CIDR,
                   advertise_address: str | None = None) -> list[str]:
    """The kube-apiserver command line that the meta-cluster and every tenant share.
    `advertise_address`: where pods reach it (a tenant's `kubernetes` ClusterIP); the
    `kubernetes` Endpoints are then kept (they cannot hold a loopback address)."""
    return [
        str(bindir / "kube-apiserver"),
        *etcd.flags(),
        f"--etcd-prefix={etcd_prefix}",
        "--bind-address=127.0.0.1", f"--advertise-address={advertise_address or '127.0.0.1'}",
        f"--secure-port={port}",
        f"--tls-cert-file={pki / 'apiserver.crt'}", f"--tls-private-key-file={pki / 'apiserver.key'}",
        f"--client-ca-file={pki / 'ca.crt'}",
        # Anonymous requests (when allowed) get only what RBAC gives system:unauthenticated:
        # health and version, nothing that changes state.
        f"--anonymous-auth={'true' if anonymous else 'false'}",
        f"--service-account-key-file={pki / 'sa.crt'}",  # holds the public key
        f"--service-account-signing-key-file={pki / 'sa.key'}",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        "--authorization-mode=RBAC",
        f"--service-cluster-ip-range={service_cidr}",
        "--allow-privileged=false",
        "--profiling=false",
        # Fairness queues cost memory and latency and protect nothing on a one-user host.
        "--enable-priority-and-fairness=false",
        f"--endpoint-reconciler-type={'lease' if advertise_address else 'none'}",
        "--v=1",
    ]


def controller_manager_argv(bindir: Path, pki: Path, kubeconfig: Path, controllers: str) -> list[str]:
    """The kube-controller-manager command line that the meta-cluster and every tenant share."""
    return [
        str(bindir / "kube-controller-manager"),
        f"--kubeconfig={kubeconfig}", f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        "--leader-elect=false",
        # Each controller acts as its own service account, with the RBAC bootstrap roles.
        "--use-service-account-credentials=true",
        "--bind-address=127.0.0.1", "--secure-port=0",
        f"--service-account-private-key-file={pki / 'sa.key'}",
        f"--root-ca-file={pki / 'ca.crt'}",
        f"--controllers={controllers}",
        "--v=1",
    ]


def apiserver(bindir: Path, lay: Layout, ports: Ports) -> Component:
    k = etcd_pki.etcd_pki_dir(lay.pki)
    client = EtcdClient(etcd_url(ports), k / "ca.crt", k / f"{etcd_pki.APISERVER_CLIENT}.crt",
                        k / f"{etcd_pki.APISERVER_CLIENT}.key")
    # Nobody has business with the meta-cluster without credentials: no anonymous requests.
    argv = apiserver_argv(bindir, lay.pki, etcd=client, etcd_prefix="/sk8s/meta", port=ports.apiserver,
                          anonymous=False)
    return Component("kube-apiserver", argv, health_url=f"https://127.0.0.1:{ports.apiserver}/readyz",
                     tls="apiserver")


def controller_manager(bindir: Path, lay: Layout) -> Component:
    # Namespace deletion and ownerReference garbage collection need these controllers.
    argv = controller_manager_argv(bindir, lay.pki, lay.home / "controller-manager.kubeconfig",
                                   "namespace-controller,garbage-collector-controller,"
                                   "serviceaccount-controller,serviceaccount-token-controller")
    return Component("kube-controller-manager", argv, health_url="")


def operator(name: str, module: str, lay: Layout, port: int, ports: Ports) -> Component:
    return Component(name, [
        sys.executable, "-m", "kopf", "run",
        "--standalone", "--all-namespaces",
        f"--liveness=http://127.0.0.1:{port}/healthz",
        "-m", module,
    ], health_url=f"http://127.0.0.1:{port}/healthz",
        env={"KUBECONFIG": str(lay.kubeconfig), "SK8S_HOME": str(lay.home),
             "CONTAINERS_CONF": str(lay.containers_conf),
             # Tenant control planes keep their data under their own prefix of this etcd,
             # each with its own client certificate of etcd's CA (under $SK8S_HOME/pki/etcd).
             "SK8S_ETCD_URL": etcd_url(ports)})


def operators(lay: Layout, ports: Ports, extra_providers: list[str] = ()) -> list[Component]:
    """Liveness ports are picked afresh at each boot: nothing outside needs them stable.
    Each provider besides the default one gets SandboxPod, ServiceLB and PrivateZone
    operators of its own (as each virtual-kubelet provider runs its own node), which take
    only the objects naming their provider."""
    taken = {ports.etcd_client, ports.etcd_peer, ports.apiserver}
    wanted = [(name, module, None) for name, module in OPERATORS.items()]
    wanted += [(f"{kind}-operator-{p}", OPERATORS[f"{kind}-operator"], p) for p in extra_providers
               for kind in ("sandboxpod", "servicelb", "privatezone")]
    comps = []
    for name, module, provider in wanted:
        port = free_port(taken)
        taken.add(port)
        comps.append(operator(name, module, lay, port, ports))
        if provider:
            comps[-1].env["SK8S_PROVIDER"] = provider
    return comps
