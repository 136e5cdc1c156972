"""Every credential of one tenant control plane, signed by the tenant's own CA."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ..embedded import pki

VNODE_USER = "sk8s:virtual-node"
VNODE_GROUP = "sk8s:virtual-nodes"
# The ServerlessCluster operator towards a tenant apiserver: an admin like the tenant's own,
# under a name of its own, so that the tenant's audit log (idle.py) can leave it out.
OPERATOR_USER = "sk8s:serverlesscluster-operator"
OPERATOR_CLIENT = "operator"


def ensure_tenant_pki(directory: Path, cluster: str, kubernetes_ip: str, names: Sequence[str] = ()) -> None:
    """Idempotent: nothing is regenerated once the set is complete (sa.key is written last).
    `kubernetes_ip`: the `kubernetes` Service's ClusterIP, which pods connect to; `names`:
    more DNS names of the apiserver (a plane run as a Pod: its Service's)."""
    if (directory / "sa.key").exists():
        return
    ca = pki.make_ca(f"sk8s-tenant-{cluster}-ca")
    pki.write(ca, directory, "ca")
    pki.write(pki.issue(ca, "kube-apiserver", server=True,
                        dns=["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
                             "kubernetes.default.svc.cluster.local", *names],
                        ips=["127.0.0.1", kubernetes_ip]), directory, "apiserver")
    pki.write(pki.issue(ca, "admin", orgs=["system:masters"], client=True), directory, "admin")
    pki.write(pki.issue(ca, "system:kube-controller-manager", client=True), directory, "controller-manager")
    # The apiserver's identity towards the virtual node's kubelet endpoints (logs, exec).
    pki.write(pki.issue(ca, "kube-apiserver-kubelet-client", orgs=["system:masters"], client=True),
              directory, "apiserver-kubelet-client")
    pki.write(pki.issue(ca, VNODE_USER, orgs=[VNODE_GROUP], client=True), directory, "virtual-node")
    pki.write(pki.issue(ca, "virtual-node", server=True, dns=["localhost"], ips=["127.0.0.1"]),
              directory, "virtual-node-serving")
    pki.write(pki.service_account_key(), directory, "sa")


def ensure_scheduler_client(directory: Path) -> None:
    """kube-scheduler's client certificate (system:kube-scheduler, the name its bootstrap RBAC
    roles are bound to), issued by the plane's CA when a cluster with several virtual nodes
    claims the plane: a warm plane's PKI was made before anyone knew it would need one."""
    if (directory / "scheduler.key").exists():
        return
    ca = pki.load(directory, "ca")
    pki.write(pki.issue(ca, "system:kube-scheduler", client=True), directory, "scheduler")


def ensure_operator_client(directory: Path) -> None:
    """The operator's client certificate (planes made before it get theirs at their next start)."""
    if (directory / f"{OPERATOR_CLIENT}.key").exists():
        return
    ca = pki.load(directory, "ca")
    pki.write(pki.issue(ca, OPERATOR_USER, orgs=["system:masters"], client=True), directory, OPERATOR_CLIENT)


FRONT_PROXY_CLIENT = "front-proxy-client"


def ensure_front_proxy_pki(directory: Path) -> None:
    """The aggregator's identity towards aggregated API servers (kubeadm's front-proxy set):
    a CA of its own, so that no client certificate of the cluster CA can assert a user in
    X-Remote-* headers, and the one client it signs. Apart from ensure_tenant_pki so that
    planes made before it get theirs (front-proxy-client.key is written last)."""
    if (directory / f"{FRONT_PROXY_CLIENT}.key").exists():
        return
    ca = pki.make_ca("sk8s-front-proxy-ca")
    pki.write(ca, directory, "front-proxy-ca")
    pki.write(pki.issue(ca, FRONT_PROXY_CLIENT, client=True), directory, FRONT_PROXY_CLIENT)
