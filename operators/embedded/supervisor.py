"""Runs the meta-cluster's components as child processes and keeps them running.

`sk8s up` starts this supervisor detached; it starts etcd, kube-apiserver, the CRDs,
kube-controller-manager and every operator (each its own process), restarts whatever
dies (with back-off), and stops them all in reverse order on SIGTERM.
"""
from __future__ import annotations

import asyncio
import json
import os
import signal
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .. import GROUP
from ..config import REPO_ROOT, Layout, aliyun_settings, vpc_pool, write_containers_conf
from ..kubeclient.client import answers
from ..models.contracts import SERVICE_CIDR
from . import components, etcd_pki, hostroutes, pki
from .binaries import ensure_binaries
from .kubeconfig import build_kubeconfig, write_kubeconfig

CRD_DIR = REPO_ROOT / "crds"
# Objects in a tenant's meta namespace name only that tenant (refused at admission otherwise).
TENANCY_POLICY = REPO_ROOT / "manifests" / "tenancy" / "tenancy-policy.yaml"


def log(msg: str) -> None:
    print(f"[supervisor {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def client_context(kind: str, lay: Layout) -> ssl.SSLContext | None:
    """The TLS context of a health probe: which CA to trust and which certificate to show."""
    if kind == "apiserver":
        directory, stem = lay.pki, "admin"
    elif kind == "etcd":
        directory, stem = etcd_pki.etcd_pki_dir(lay.pki), etcd_pki.HEALTHCHECK_CLIENT
    else:
        return None
    ctx = ssl.create_default_context(cafile=str(directory / "ca.crt"))
    ctx.load_cert_chain(str(directory / f"{stem}.crt"), str(directory / f"{stem}.key"))
    return ctx


async def probe_async(component: components.Component, lay: Layout, timeout: float = 1.0) -> bool:
    """Whether a component's health endpoint answers 200, with the client certificate it trusts."""
    if not component.health_url:
        return True
    try:
        ctx = client_context(component.tls, lay)
    except (OSError, ssl.SSLError):
        return False
    return await answers(component.health_url, ctx, timeout)


def probe(component: components.Component, lay: Layout, timeout: float = 1.0) -> bool:
    """probe_async for the supervisor, which is synchronous: it has no event loop to block."""
    return asyncio.run(probe_async(component, lay, timeout))


@dataclass
class Running:
    component: components.Component
    proc: subprocess.Popen
    started: float
    restarts: int = 0
    backoff: float = 1.0
    healthy: bool = False
    next_start: float = 0.0


@dataclass
class Supervisor:
    lay: Layout
    children: dict[str, Running] = field(default_factory=dict)
    stopping: bool = False
    ready: bool = False
    started_at: float = field(default_factory=time.time)

    def spawn(self, comp: components.Component) -> subprocess.Popen:
        logf = open(self.lay.log(comp.name), "ab")
        env = dict(os.environ, **comp.env)
        proc = subprocess.Popen(comp.argv, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, cwd=str(REPO_ROOT))
        logf.close()
        log(f"started {comp.name} (pid {proc.pid})")
        return proc

    def start(self, comp: components.Component) -> None:
        self.children[comp.name] = Running(comp, self.spawn(comp), time.time())
        self.write_state()

    def wait_healthy(self, names: list[str], timeout: float) -> None:
        deadline = time.time() + timeout
        pending = set(names)
        while pending:
            for name in list(pending):
                run = self.children[name]
                if run.proc.poll() is not None:
                    raise RuntimeError(f"{name} exited with code {run.proc.returncode}; "
                                       f"see {self.lay.log(name)}")
                if probe(run.component, self.lay):
                    run.healthy = True
                    pending.discard(name)
            if time.time() > deadline:
                raise RuntimeError(f"timed out waiting for {', '.join(sorted(pending))} to become healthy")
            if pending:
                time.sleep(0.05)
        self.write_state()

    def write_state(self) -> None:
        state = {
            "supervisor": os.getpid(),
            "ready": self.ready,
            "startedAt": self.started_at,
            "kubeconfig": str(self.lay.kubeconfig),
            "components": {
                name: {"pid": r.proc.pid, "alive": r.proc.poll() is None, "healthy": r.healthy,
                       "restarts": r.restarts, "log": str(self.lay.log(name)), "url": r.component.health_url,
                       "tls": r.component.tls}
                for name, r in self.children.items()
            },
        }
        tmp = self.lay.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(self.lay.state_file)

    def write_kubeconfigs(self, port: int) -> None:
        server = f"https://127.0.0.1:{port}"
        ca = (self.lay.pki / "ca.crt").read_bytes()
        for stem, path in (("admin", self.lay.kubeconfig),
                           ("controller-manager", self.lay.home / "controller-manager.kubeconfig")):
            pair = pki.load(self.lay.pki, stem)
            write_kubeconfig(path, build_kubeconfig(name="sk8s", server=server, ca_pem=ca,
                                                    cert_pem=pair.cert_pem, key_pem=pair.key_pem, user=stem))

    def install_crds(self, bindir: Path) -> None:
        kubectl = [str(bindir / "kubectl"), f"--kubeconfig={self.lay.kubeconfig}"]
        files = [f"--filename={p}" for p in sorted(CRD_DIR.glob(f"{GROUP}_*.yaml"))] + [f"--filename={TENANCY_POLICY}"]
        subprocess.run(kubectl + ["apply", "--server-side", "--force-conflicts", *files],
                       check=True, stdout=subprocess.DEVNULL)
        subprocess.run(kubectl + ["wait", "--for=condition=Established", "--timeout=30s", "crd", "--all"],
                       check=True, stdout=subprocess.DEVNULL)

    def boot(self) -> None:
        lay = self.lay
        bindir = ensure_binaries(quiet=True)
        ports = lay.ports()
        write_containers_conf(lay)
        hostroutes.reject_locally([SERVICE_CIDR, vpc_pool()])
        pki.ensure_control_plane_pki(lay.pki, name="sk8s-meta", sans_dns=["localhost", "kubernetes",
                                     "kubernetes.default", "kubernetes.default.svc"],
                                     sans_ip=["127.0.0.1", "10.96.0.1"])
        if etcd_pki.ensure_etcd_pki(etcd_pki.etcd_pki_dir(lay.pki)):
            log("made etcd's CA and certificates (etcd serves TLS to its own clients only)")
        self.write_kubeconfigs(ports.apiserver)
        self.start(components.etcd(bindir, lay, ports))
        self.wait_healthy(["etcd"], 30)
        self.start(components.apiserver(bindir, lay, ports))
        self.wait_healthy(["kube-apiserver"], 60)
        self.install_crds(bindir)
        self.start(components.controller_manager(bindir, lay))
        ops = components.operators(lay, ports, extra_providers=["aliyun"] if aliyun_settings()["credentials"]
                                   else [])
        for comp in ops:
            self.start(comp)
        self.wait_healthy(["kube-controller-manager"] + [c.name for c in ops], 60)
        self.ready = True
        self.write_state()
        log(f"ready in {time.time() - self.started_at:.2f}s")

    def monitor(self) -> None:
        while not self.stopping:
            now = time.time()
            for name, run in self.children.items():
                if run.proc.poll() is None:
                    if now - run.started > 30:
                        run.backoff = 1.0  # a child that stayed up is forgiven its past crashes
                    continue
                if run.next_start == 0.0:
                    run.healthy = False
                    run.next_start = now + run.backoff
                    log(f"{name} exited with code {run.proc.returncode}; restarting in {run.backoff:.0f}s")
                    self.write_state()
                elif now >= run.next_start:
                    run.proc = self.spawn(run.component)
                    run.started, run.next_start = now, 0.0
                    run.restarts += 1
                    run.backoff = min(run.backoff * 2, 30.0)
                    run.healthy = True
                    self.write_state()
            time.sleep(0.2)

    def stop(self) -> None:
        self.stopping = True
        for name in reversed(list(self.children)):
            run = self.children[name]
            if run.proc.poll() is None:
                run.proc.terminate()
                try:
                    run.proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    run.proc.kill()
                    run.proc.wait()
            log(f"stopped {name}")
        self.lay.state_file.unlink(missing_ok=True)


def main() -> int:
    from ..config import layout
    lay = layout()
    lay.ensure()
    sup = Supervisor(lay)
    lay.supervisor_pid.write_text(str(os.getpid()))

    def on_term(signum, frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    try:
        sup.boot()
        sup.monitor()
    except SystemExit:
        pass
    except Exception as exc:  # start-up failed: say why, leave nothing running
        log(f"FAILED: {exc}")
        sup.stop()
        from .processes import stop_process_sets
        stopped, _ = stop_process_sets(lay.home / "planes")  # standby planes the operator had started
        if stopped:
            log(f"stopped {stopped} tenant control plane(s)")
        lay.supervisor_pid.unlink(missing_ok=True)
        return 1
    sup.stop()
    lay.supervisor_pid.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
