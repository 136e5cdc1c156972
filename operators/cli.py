"""sk8s: run the embedded meta-cluster and talk to it.

    sk8s up | down | status | logs COMPONENT [-f] | kubeconfig | sandbox-logs NAME
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from . import API_VERSION
from .cli_power import add_power_parsers
from .config import Layout, default_kubeconfig, home_id, layout, write_containers_conf


def _alive(pid: int) -> bool:
    from .embedded.processes import alive
    return alive(pid)


def supervisor_pid(lay: Layout) -> int | None:
    try:
        pid = int(lay.supervisor_pid.read_text())
    except (FileNotFoundError, ValueError):
        return None
    return pid if _alive(pid) else None


def read_state(lay: Layout) -> dict:
    try:
        return json.loads(lay.state_file.read_text())
    except (FileNotFoundError, ValueError):
        return {}


def cmd_up(args) -> int:
    t0 = time.monotonic()
    lay = layout()
    lay.ensure()
    from .embedded.binaries import BuildError, ensure_binaries
    try:
        ensure_binaries()
    except BuildError as exc:
        print(f"sk8s up: {exc}", file=sys.stderr)
        return 1
    if supervisor_pid(lay) and read_state(lay).get("ready"):
        print(f"sk8s is already running (home {lay.home})")
        print(f"kubeconfig: {lay.kubeconfig}")
        return 0
    started = None
    if not supervisor_pid(lay):
        lay.state_file.unlink(missing_ok=True)
        logf = open(lay.log("supervisor"), "ab")
        started = subprocess.Popen([sys.executable, "-m", "operators.embedded.supervisor"], stdout=logf,
                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                         env=dict(os.environ, SK8S_HOME=str(lay.home)),
                         cwd=str(Path(__file__).resolve().parent.parent))
        logf.close()
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        if read_state(lay).get("ready"):
            print(f"sk8s is up in {time.monotonic() - t0:.2f}s (home {lay.home})")
            print(f"kubeconfig: {lay.kubeconfig}")
            print(f"  export KUBECONFIG={lay.kubeconfig}")
            return 0
        # Under load the supervisor may take seconds to write its pid: only its exit is final.
        if not supervisor_pid(lay) and (started.poll() is not None if started else time.monotonic() - t0 > 1):
            break
        time.sleep(0.05)
    print("sk8s up failed; last lines of the supervisor log:", file=sys.stderr)
    print(_tail(lay.log("supervisor"), 20), file=sys.stderr)
    return 1


def _tail(path: Path, n: int) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except FileNotFoundError:
        return f"(no log at {path})"


def cmd_down(args) -> int:
    lay = layout()
    pid = supervisor_pid(lay)
    state = read_state(lay)
    if pid and state.get("ready"):
        _mark_clusters_stopped(lay)
    if pid:
        _terminate(pid, 60)
    # Whatever a killed supervisor left behind, gone before `down` returns (a SIGKILL is
    # delivered, not waited for: a loaded machine showed one still alive just after).
    left = [c["pid"] for c in (state.get("components") or {}).values() if c.get("pid") and _alive(c["pid"])]
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in left) and time.monotonic() < deadline:
        time.sleep(0.05)
    stopped = _stop_planes(lay)
    _drop_wake_rule()
    _stop_emulator(lay)
    removed = asyncio.run(_remove_sandboxes(lay))
    lay.state_file.unlink(missing_ok=True)
    lay.supervisor_pid.unlink(missing_ok=True)
    print(f"sk8s is down; stopped {stopped} tenant control plane(s), removed {removed} sandbox(es)")
    return 0


def emulator_pid_file(lay: Layout) -> Path:
    return lay.run / "alibaba-emulator.pid"


def _stop_emulator(lay: Layout) -> None:
    """An Alibaba emulator running groups as this home's sandboxes goes first: its kubelets
    would start again the sandboxes removed next."""
    try:
        pid = int(emulator_pid_file(lay).read_text())
    except (OSError, ValueError):
        return
    if _alive(pid):
        _terminate(pid, 10)
    emulator_pid_file(lay).unlink(missing_ok=True)


def _terminate(pid: int, grace: float) -> None:
    """SIGTERM, then SIGKILL after `grace` seconds."""
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)


def _mark_clusters_stopped(lay: Layout) -> None:
    """Tenant clusters stop with sk8s: their status must not keep saying Ready meanwhile."""
    default_kubeconfig(lay.kubeconfig)
    from . import kube
    from .serverlesscluster.status import stopped_status

    async def mark() -> None:
        for sc in await kube.list_objects("serverlessclusters"):
            patch = stopped_status(sc.get("status") or {}, sc["metadata"].get("generation"))
            if patch is not None:
                await kube.patch_status("serverlessclusters", sc["metadata"]["namespace"], sc["metadata"]["name"],
                                        patch)
    try:
        kube.run(mark())
    except Exception as exc:  # best effort: down must go on
        print(f"note: could not mark clusters as stopped: {exc}", file=sys.stderr)


def _stop_planes(lay: Layout) -> int:
    """Tenant control planes outlive operator restarts by design, so stop them explicitly."""
    from .serverlesscluster.planes import stop_all
    stopped, strays = stop_all()
    if strays:
        print(f"note: stopped {len(strays)} plane process(es) that no pid file held: {strays}", file=sys.stderr)
    return stopped


def _drop_wake_rule() -> None:
    """Sleeping tenants' endpoints led to the operator, now stopped (its next start rebuilds it)."""
    from .serverlesscluster.power import drop_rules
    asyncio.run(drop_rules())


async def _remove_sandboxes(lay: Layout) -> int:
    from .providers.local.provider import LocalProvider
    provider = LocalProvider(home_id=home_id(lay.home), containers_conf=str(write_containers_conf(lay)))
    refs = await provider.list()
    await provider.teardown()
    return len(refs)


async def _cluster_names(lay: Layout, state: dict) -> dict[str, str]:
    """ServerlessCluster uid -> namespace/name, from the meta apiserver (empty if it does not answer)."""
    import aiohttp
    from .embedded.supervisor import client_context
    from .kubeclient.client import Credentials, KubeClient
    url = ((state.get("components") or {}).get("kube-apiserver") or {}).get("url") or ""
    if not url:
        return {}
    base = url.rsplit("/", 1)[0]
    try:
        async with KubeClient(Credentials(base, client_context("apiserver", lay), {}), "meta", "sk8s-cli") as c:
            found = await c.request("GET", f"/apis/{API_VERSION}/serverlessclusters",
                                    timeout=aiohttp.ClientTimeout(total=2))
    except Exception:
        return {}
    return {i["metadata"]["uid"]: f"{i['metadata']['namespace']}/{i['metadata']['name']}"
            for i in found.get("items") or []}


def _probe_tls(name: str, comp: dict) -> str:
    """The probe's client certificate; a state file of an older version did not record it."""
    return comp.get("tls") or {"kube-apiserver": "apiserver", "etcd": "etcd"}.get(name, "")


async def _survey(lay: Layout, state: dict) -> tuple[list[dict], list]:
    """The meta-cluster's components and the tenant planes, probed concurrently."""
    from .embedded.components import Component
    from .embedded.supervisor import probe_async
    from .serverlesscluster.plane_status import all_rows
    comps = (state.get("components") or {}).items()

    async def one(name: str, comp: dict) -> dict:
        alive = _alive(comp["pid"])
        ok = alive and await probe_async(Component(name, [], comp.get("url") or "", tls=_probe_tls(name, comp)), lay)
        return {"component": name, "pid": comp["pid"], "health": "healthy" if ok else (
            "running" if alive else "down"), "restarts": comp.get("restarts", 0), "endpoint": comp.get("url") or ""}
    meta = await asyncio.gather(*(one(name, comp) for name, comp in comps))
    return list(meta), await all_rows(await _cluster_names(lay, state))


def cmd_status(args) -> int:
    lay = layout()
    pid = supervisor_pid(lay)
    state = read_state(lay)
    if not pid:
        if args.output == "json":
            print(json.dumps({"running": False, "home": str(lay.home)}))
        else:
            print(f"sk8s is not running (home {lay.home})")
        return 3
    meta, tenants = asyncio.run(_survey(lay, state))
    healthy_all = all(m["health"] == "healthy" for m in meta)
    rc = 0 if healthy_all and state.get("ready") else 1
    if args.output == "json":
        print(json.dumps({"running": True, "home": str(lay.home), "kubeconfig": str(lay.kubeconfig),
                          "supervisor": pid, "ready": bool(state.get("ready")), "components": meta,
                          "tenants": [r.as_dict() for r in tenants]}, indent=2))
        return rc
    print(f"home:        {lay.home}")
    print(f"kubeconfig:  {lay.kubeconfig}")
    print(f"supervisor:  pid {pid}, {'ready' if state.get('ready') else 'starting'}")
    print(f"{'COMPONENT':28} {'PID':>7} {'HEALTH':9} {'RESTARTS':>8}  ENDPOINT")
    for m in meta:
        print(f"{m['component']:28} {m['pid']:>7} {m['health']:9} {m['restarts']:>8}  {m['endpoint'] or '-'}")
    if tenants:
        # Tenant control planes (the health timer of the serverlesscluster operator restarts them).
        print()
        print(f"{'CLUSTER':32} {'PLANE':12} {'COMPONENT':24} {'PID':>7} {'HEALTH':9}  ENDPOINT")
        for r in tenants:
            print(f"{r.cluster[:32]:32} {r.plane:12} {r.component:24} {r.pid or '-':>7} {r.health:9}  "
                  f"{r.endpoint or '-'}")
    return rc


def cmd_logs(args) -> int:
    lay = layout()
    path = lay.log(args.component)
    if not path.exists():
        known = sorted(p.stem for p in lay.logs.glob("*.log"))
        print(f"no log for {args.component!r}; known: {', '.join(known) or 'none'}", file=sys.stderr)
        return 1
    if args.follow:
        return subprocess.call(["tail", "-n", str(args.tail), "-F", str(path)])
    print(_tail(path, args.tail))
    return 0


def cmd_kubeconfig(args) -> int:
    """Without a name: the meta-cluster's kubeconfig path. With one: a tenant's, written to a file."""
    lay = layout()
    if not args.name:
        print(lay.kubeconfig)
        return 0
    default_kubeconfig(lay.kubeconfig)
    import base64
    from . import kube
    secret = kube.run(kube.read_secret(args.namespace, f"{args.name}-kubeconfig"))
    if secret is None:
        print(f'no kubeconfig for cluster "{args.name}" in namespace "{args.namespace}" (is it Ready?)',
              file=sys.stderr)
        return 1
    out = Path(args.output or lay.home / "clusters" / f"{args.namespace}-{args.name}.kubeconfig")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(base64.b64decode(secret["data"]["kubeconfig"]))
    out.chmod(0o600)
    print(out)
    return 0


def cmd_cluster_create(args) -> int:
    """Create a ServerlessCluster, wait for Ready, print the time and the kubeconfig."""
    from .models.contracts import CONDITION_READY  # here: the models cost every command 0.3 s
    lay = layout()
    kubectl = [str(_bindir() / "kubectl"), f"--kubeconfig={lay.kubeconfig}"]
    manifest = {"apiVersion": API_VERSION, "kind": "ServerlessCluster",
                "metadata": {"name": args.name, "namespace": args.namespace},
                "spec": {"provider": args.provider}}
    if args.max_pods or args.cpu or args.memory:
        manifest["spec"]["quotas"] = {k: v for k, v in (("maxPods", args.max_pods), ("cpu", args.cpu),
                                                         ("memory", args.memory)) if v}
    t0 = time.monotonic()
    proc = subprocess.run(kubectl + ["apply", "-f", "-"], input=json.dumps(manifest), text=True,
                          capture_output=True)
    if proc.returncode != 0:
        print(proc.stderr.strip(), file=sys.stderr)
        return 1
    wait = subprocess.run(kubectl + ["wait", f"--for=condition={CONDITION_READY}",
                                     f"--timeout={int(args.timeout)}s",
                                     "-n", args.namespace, f"serverlesscluster/{args.name}"],
                          capture_output=True, text=True)
    if wait.returncode != 0:
        print(f"cluster {args.name} is not Ready: {wait.stderr.strip()}", file=sys.stderr)
        subprocess.run(kubectl + ["get", "-n", args.namespace, f"serverlesscluster/{args.name}", "-o", "wide"])
        return 1
    print(f"cluster {args.name} is Ready in {time.monotonic() - t0:.2f}s")
    args.output = None
    return cmd_kubeconfig(args)


def _bindir() -> Path:
    from .embedded.binaries import ensure_binaries
    return ensure_binaries(quiet=True)


def cmd_sandbox_logs(args) -> int:
    from . import kube
    from .providers import make_streams
    from .providers.logopts import ContainerLogOpts
    from .sandboxpod.sandbox import ref_of
    default_kubeconfig(layout().kubeconfig)

    async def stream() -> int:
        body = await kube.get_object("sandboxpods", args.namespace, args.name)
        if body is None:
            print(f'sandboxpod "{args.name}" not found in namespace "{args.namespace}"', file=sys.stderr)
            return 1
        containers = [c["name"] for c in body["spec"]["containers"]]
        container = args.container or containers[0]
        if container not in containers:
            print(f"container {container!r} is not valid for sandboxpod {args.name}; choose one of: "
                  f"{', '.join(containers)}", file=sys.stderr)
            return 1
        streams = make_streams((body.get("status") or {}).get("provider") or "local")
        opts = ContainerLogOpts(follow=args.follow, tail=None if args.tail is None or args.tail < 0 else args.tail)
        async for chunk in streams.logs(ref_of(body), container, opts):
            sys.stdout.buffer.write(chunk)
            sys.stdout.buffer.flush()
        return 0
    try:
        return kube.run(stream())
    except KeyboardInterrupt:
        return 0


def cmd_emulator_alibaba(args) -> int:
    """The local Alibaba Cloud OpenAPI emulator (tests, demos): credentials from a directory
    laid out as the provider reads them (never on the command line, which `ps` shows)."""
    from .emulator.alibaba import server
    from .emulator.alibaba.faults import FaultConfig
    from .providers.aliyun.factory import read_credentials
    creds = read_credentials(args.credentials)
    backend = None
    if args.backend == "podman":  # container groups run as real sandboxes of this home
        from .emulator.alibaba.podman_backend import PodmanBackend
        backend = PodmanBackend.for_home()
        lay = layout()
        lay.run.mkdir(parents=True, exist_ok=True)
        emulator_pid_file(lay).write_text(str(os.getpid()))  # `sk8s down` stops it first
    faults = FaultConfig(throttle_rate=args.throttle_rate, error_rate=args.error_rate, latency=args.latency,
                         drop_rate=args.drop_rate, seed=args.seed)

    def ready(port: int) -> None:
        print(f"listening on 127.0.0.1:{port}", flush=True)
        if args.port_file:
            Path(args.port_file).write_text(str(port))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    server.run("127.0.0.1", args.port, {creds.access_key_id: creds.access_key_secret}, backend=backend,
               faults=faults, ready=ready, schedule_delay=args.schedule_delay, tick=args.tick)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sk8s", description="serverless Kubernetes, embedded")
    sub = parser.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="start the embedded meta-cluster and operators")
    up.add_argument("--timeout", type=float, default=180)
    up.set_defaults(func=cmd_up)
    sub.add_parser("down", help="stop everything and remove every sandbox").set_defaults(func=cmd_down)
    st = sub.add_parser("status", help="what runs (meta-cluster and tenant control planes), where, and whether "
                                       "it is healthy; exit code 0 when the meta-cluster is")
    st.add_argument("-o", "--output", choices=["text", "json"], default="text")
    st.set_defaults(func=cmd_status)
    logs = sub.add_parser("logs", help="a component's log")
    logs.add_argument("component")
    logs.add_argument("-f", "--follow", action="store_true")
    logs.add_argument("--tail", type=int, default=200)
    logs.set_defaults(func=cmd_logs)
    kc = sub.add_parser("kubeconfig", help="the meta-cluster's kubeconfig path, or write a tenant's")
    kc.add_argument("name", nargs="?", help="a ServerlessCluster")
    kc.add_argument("-n", "--namespace", default="default")
    kc.add_argument("-o", "--output", help="file to write (default under $SK8S_HOME/clusters)")
    kc.set_defaults(func=cmd_kubeconfig)
    cl = sub.add_parser("cluster", help="tenant clusters")
    clsub = cl.add_subparsers(dest="cluster_cmd", required=True)
    cc = clsub.add_parser("create", help="create a ServerlessCluster and wait until it is Ready")
    cc.add_argument("name")
    cc.add_argument("-n", "--namespace", default="default")
    cc.add_argument("--provider", default="local")
    cc.add_argument("--max-pods", type=int)
    cc.add_argument("--cpu")
    cc.add_argument("--memory")
    cc.add_argument("--timeout", type=float, default=120)
    cc.set_defaults(func=cmd_cluster_create)
    add_power_parsers(clsub)
    sl = sub.add_parser("sandbox-logs", help="a SandboxPod container's output")
    sl.add_argument("name")
    sl.add_argument("-n", "--namespace", default="default")
    sl.add_argument("-c", "--container")
    sl.add_argument("-f", "--follow", action="store_true")
    sl.add_argument("--tail", type=int)
    sl.set_defaults(func=cmd_sandbox_logs)
    em = sub.add_parser("emulator", help="local cloud API emulators (tests and demos)")
    emsub = em.add_subparsers(dest="emulator_cmd", required=True)
    ali = emsub.add_parser("alibaba", help="the Alibaba Cloud OpenAPI (ECI) on 127.0.0.1, signatures checked")
    ali.add_argument("--port", type=int, default=0, help="0: a free one (printed, and written to --port-file)")
    ali.add_argument("--port-file")
    ali.add_argument("--credentials", required=True,
                     help="a directory holding access-key-id and access-key-secret (the one account it accepts)")
    ali.add_argument("--backend", choices=["memory", "podman"], default="podman",
                     help="podman: groups run as real sandboxes of $SK8S_HOME; memory: containers only pretend")
    for flag in ("throttle-rate", "error-rate", "drop-rate", "latency"):
        ali.add_argument(f"--{flag}", type=float, default=0.0)
    ali.add_argument("--seed", type=int)
    ali.add_argument("--schedule-delay", type=float, default=0.1,
                     help="seconds a new group stays Scheduling (the cloud takes longer; latency figures are ours)")
    ali.add_argument("--tick", type=float, default=0.1, help="how often groups move to their next state")
    ali.set_defaults(func=cmd_emulator_alibaba)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
