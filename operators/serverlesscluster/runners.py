"""Where tenant planes run: one design, two runners (config.plane_runner), chosen in one place.

Both run the same components from controlplane.py's command lines; they differ in where
those run and in what the operator does to start, watch and stop them:

                  HostRunner (embedded, default)           PodRunner (SK8S_PLANE_RUNNER=pods)
  endpoint        127.0.0.1:<the plane's port>             the plane's Service in sk8s-planes
  components      processes of this host (ProcessSet)      containers of one Deployment
  start           the apiserver; once it holds its         the plane's objects (podplane.py)
                  bootstrap objects, the controller-       applied: the kubelet starts them all
                  manager and the waiting virtual node
  a dead one      started again by the health tick         restarted by the kubelet
  claim           the virtual node's arguments file        the claim Secret (podrunner.claim)
  destroy         its processes stopped                    its objects deleted
  sleep           the wake rule (power.py)                 not available
  connections     SO_MARK past the wake rule               no mark (a Pod lacks CAP_NET_ADMIN)

cluster.py asks `runner()` at each of these points and holds what both share (credentials,
bootstrap, the claim's meta credentials, the datastore); nothing else tells them apart.
"""
from __future__ import annotations

import json
import sys

from .. import config
from ..config import sk8s_home
from ..embedded.binaries import ensure_binaries
from ..embedded.kubeconfig import build_kubeconfig, write_kubeconfig
from ..embedded.processes import ProcessSet
from ..embedded.pki import load
from . import controlplane as cp
from . import idle, planes, podplane, podrunner, tenantstore, wakerules
from .egress import write_egress_config
from .onhost import REPO_ROOT, on_host
from .tenant_pki import ensure_front_proxy_pki, ensure_operator_client, ensure_scheduler_client, ensure_tenant_pki


def write_credentials(t: cp.Tenant) -> None:
    """The plane's PKI and its components' kubeconfigs (idempotent), for either runner."""
    ensure_tenant_pki(t.pki, "tenant", t.kubernetes_ip, runner().serving_names(t))
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


class HostRunner:
    """Planes as processes of this host, each in its directory under the home's planes/."""

    name = "host"
    socket_mark: int | None = wakerules.MARK
    sleep_unavailable: str | None = None

    def placement(self, plane: planes.Plane) -> dict:
        return {"ports": cp.TenantPorts(plane.apiserver_port, plane.kubelet_port)}

    def serving_names(self, t: cp.Tenant) -> tuple[str, ...]:
        return ()

    def processes(self, t: cp.Tenant) -> ProcessSet:
        return ProcessSet(t.directory)

    def logs_hint(self, t: cp.Tenant, component: str) -> str:
        return f"{t.directory}/logs/{component}.log"

    async def start(self, t: cp.Tenant) -> None:
        await self.start_apiserver(t)

    async def start_after_bootstrap(self, t: cp.Tenant) -> None:
        await self.start_controller_manager(t)
        await self.start_virtual_node(t)

    async def start_apiserver(self, t: cp.Tenant, env: dict[str, str] | None = None) -> None:
        await on_host(self._apiserver, t, env)

    async def start_controller_manager(self, t: cp.Tenant) -> None:
        await on_host(self._controller_manager, t)

    async def start_scheduler(self, t: cp.Tenant) -> None:
        if t.runs_scheduler:
            await on_host(self._scheduler, t)

    async def start_virtual_node(self, t: cp.Tenant) -> None:
        await on_host(self._virtual_node, t)

    async def start_named(self, t: cp.Tenant, name: str) -> None:
        """One component by name, whatever the tenant's spec says (a woken plane starts again
        what ran when it fell asleep)."""
        starters = {"kube-apiserver": self._apiserver, "kube-controller-manager": self._controller_manager,
                    "kube-scheduler": self._scheduler, "virtual-node": self._virtual_node}
        await on_host(starters[name], t)

    async def stop(self, plane: planes.Plane, t: cp.Tenant) -> None:
        await on_host(self.processes(t).stop_all, order=planes.STOP_ORDER, timeout=3)

    async def restore(self) -> int:
        return 0  # the planes' directories are this host's: nothing to write back

    def _apiserver(self, t: cp.Tenant, env: dict[str, str] | None = None) -> None:
        write_credentials(t)
        write_egress_config(t.directory)
        idle.write_policy(t.directory)
        self.processes(t).start("kube-apiserver", cp.apiserver_args(ensure_binaries(quiet=True), t),
                                env=env or cp.APISERVER_ENV)

    def _controller_manager(self, t: cp.Tenant) -> None:
        self.processes(t).start("kube-controller-manager",
                                cp.controller_manager_args(ensure_binaries(quiet=True), t), env=cp.KCM_ENV)

    def _scheduler(self, t: cp.Tenant) -> None:
        write_credentials(t)  # the scheduler's kubeconfig: a warm plane has none
        self.processes(t).start("kube-scheduler", cp.scheduler_args(ensure_binaries(quiet=True), t),
                                env=cp.SCHEDULER_ENV)

    def _virtual_node(self, t: cp.Tenant) -> None:
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
                    self.processes(t).stop("virtual-node")
        self.processes(t).start("virtual-node",
                                [sys.executable, "-m", "operators.virtualnode", f"--args-from={args_file}"],
                                env={"SK8S_HOME": str(sk8s_home())}, cwd=str(REPO_ROOT))


class PodRunner:
    """Planes as workloads of the meta-cluster (podrunner.py, podplane.py). The operator keeps
    each plane's files (its PKI, its own kubeconfigs) in its state directory; nothing runs there."""

    name = "pods"
    socket_mark: int | None = None
    # A Pod's apiserver is reached through its Service, which no rule of ours holds.
    sleep_unavailable: str | None = "sleep mode is not available for control planes run as Pods " \
                                    "(SK8S_PLANE_RUNNER=pods)"

    def placement(self, plane: planes.Plane) -> dict:
        return {"ports": cp.TenantPorts(podplane.SERVICE_PORT, podplane.KUBELET_PORT),
                "host": podplane.service_host(plane.id, config.plane_namespace())}

    def serving_names(self, t: cp.Tenant) -> tuple[str, ...]:
        return tuple(podplane.serving_names(t.host))

    def processes(self, t: cp.Tenant) -> podrunner.KubeletManaged:
        return podrunner.KubeletManaged()

    def logs_hint(self, t: cp.Tenant, component: str) -> str:
        return (f"kubectl -n {config.plane_namespace()} logs deploy/{podplane.object_name(t.directory.name)} "
                f"-c {component}")

    async def start(self, t: cp.Tenant) -> None:
        """The plane's objects applied (again: a cluster of several nodes adds kube-scheduler
        at claim), with a datastore user whose role is the plane's prefix."""
        await on_host(write_credentials, t)
        await tenantstore.grant(t)
        await podrunner.create(t, planes.load(t.directory))

    async def start_after_bootstrap(self, t: cp.Tenant) -> None:
        pass  # the controller-manager and the waiting virtual node started with the apiserver

    async def start_apiserver(self, t: cp.Tenant, env: dict[str, str] | None = None) -> None:
        pass  # the kubelet's (KubeletManaged: the health tick never finds it stopped)

    async def start_controller_manager(self, t: cp.Tenant) -> None:
        pass

    async def start_scheduler(self, t: cp.Tenant) -> None:
        if t.runs_scheduler:  # at claim, for a cluster of several virtual nodes
            await self.start(t)

    async def start_virtual_node(self, t: cp.Tenant) -> None:
        """The waiting virtual node gets its cluster from the claim Secret."""
        if t.name:
            await podrunner.claim(t, planes.load(t.directory), t.directory / podrunner.META_KUBECONFIG)

    async def start_named(self, t: cp.Tenant, name: str) -> None:
        raise RuntimeError(self.sleep_unavailable)  # only a wake starts one by name

    async def stop(self, plane: planes.Plane, t: cp.Tenant) -> None:
        await podrunner.destroy(plane.id)

    async def restore(self) -> int:
        """The claimed planes' Pods ran on without this operator: their files written back."""
        return await podrunner.restore()


_RUNNERS = {"host": HostRunner(), "pods": PodRunner()}


def runner() -> HostRunner | PodRunner:
    """This operator's runner (read from the environment each time: tests switch it)."""
    return _RUNNERS[config.plane_runner()]
