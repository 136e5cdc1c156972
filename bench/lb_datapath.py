"""The load balancer's data paths against a fast backend, without a cluster.

    python bench/lb_datapath.py [--seconds 5] [--concurrency 16] [--streams 4] [--rounds 3]

Builds what the local provider builds for one tenant (a bridge, a backend's network
namespace, a VPC anchor's) and serves one backend through each data path the local
provider has, with the same client, in the same run:

- straight to the backend (the baseline);
- internet address, kernel path: lbrules.ruleset on a 127.x address (host, hook output);
- intranet address, kernel path: the same in the anchor's namespace (hook prerouting);
- internet address, the Python proxy (proxy.Listener, the fallback).

The backend is fast on purpose (an asyncio server in its own process: HTTP/1.0 one
connection per request, and a bulk stream of zeros), so that the figures are the data
path's, not busybox httpd's fork per request. Reports requests/s and MB/s with their
ratio to the baseline. Needs root (namespaces, nft); cleans up what it made.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from common import http_bulk  # noqa: E402
from operators.providers.local import lbrules, nft  # noqa: E402
from operators.providers.local.proxy import BackendSet, Listener  # noqa: E402

BR, NET = "sk8sbench0", "10.251.0"
BACKEND, ANCHOR, INTRANET, GATEWAY = f"{NET}.10", f"{NET}.254", "10.251.1.5", f"{NET}.1"
INTERNET, PROXIED = "127.251.0.1", "127.251.0.2"
TABLE = "sk8s-bench-lb"

SERVER = r'''
import asyncio, sys
CHUNK = b"\0" * (256 * 1024)
async def handle(r, w):
    line = await r.readline()
    while (await r.readline()) not in (b"\r\n", b""):
        pass
    if line.startswith(b"GET /bulk"):
        w.write(b"HTTP/1.0 200 OK\r\n\r\n")
        try:
            while True:
                w.write(CHUNK)
                await w.drain()
        except (ConnectionError, OSError):
            return
    w.write(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")
    await w.drain()
    w.close()
async def main():
    s = await asyncio.start_server(handle, "0.0.0.0", 80, backlog=1024)
    await s.serve_forever()
asyncio.run(main())
'''


def sh(*argv: str, check: bool = True, netns: str | None = None) -> None:
    full = list(argv) if netns is None else ["ip", "netns", "exec", netns, *argv]
    subprocess.run(full, check=check, capture_output=True)


def build() -> None:
    sh("ip", "link", "add", BR, "type", "bridge")
    sh("ip", "addr", "add", f"{GATEWAY}/23", "dev", BR)
    sh("ip", "link", "set", BR, "up")
    for name, addr in (("sk8sb-pod", BACKEND), ("sk8sb-anchor", ANCHOR)):
        sh("ip", "netns", "add", name)
        sh("ip", "link", "add", f"{name}-h", "type", "veth", "peer", "name", "eth0", "netns", name)
        sh("ip", "link", "set", f"{name}-h", "master", BR, "up")
        sh("ip", "link", "set", "lo", "up", netns=name)
        sh("ip", "link", "set", "eth0", "up", netns=name)
        sh("ip", "addr", "add", f"{addr}/23", "dev", "eth0", netns=name)
        sh("ip", "route", "add", "default", "via", GATEWAY, netns=name)
    sh("ip", "addr", "add", f"{INTRANET}/32", "dev", "eth0", netns="sk8sb-anchor")


def teardown() -> None:
    sh("nft", "delete", "table", "ip", TABLE, check=False)
    for name in ("sk8sb-pod", "sk8sb-anchor"):
        sh("ip", "netns", "del", name, check=False)
    sh("ip", "link", "del", BR, check=False)


async def kernel_rules() -> None:
    route = [lbrules.Route("TCP", 80, ((BACKEND, 80),))]
    await nft.open_localnet(GATEWAY)
    await nft.open_anchor("/run/netns/sk8sb-anchor")
    for ns, addr, hook in ((None, INTERNET, "output"), ("/run/netns/sk8sb-anchor", INTRANET, "prerouting")):
        rc, out = await nft.apply(lbrules.ruleset(TABLE, addr, hook, route), ns)
        if rc != 0:
            raise SystemExit(f"nft: {out}")


async def requests(host: str, seconds: float, concurrency: int) -> float:
    done = 0
    stop = time.monotonic() + seconds
    req = b"GET / HTTP/1.0\r\n\r\n"

    async def worker() -> None:
        nonlocal done
        while time.monotonic() < stop:
            r, w = await asyncio.open_connection(host, 80)
            w.write(req)
            if (await r.read()).endswith(b"ok"):
                done += 1
            w.close()
    t0 = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done / (time.monotonic() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--streams", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root")
    teardown()
    build()
    server = subprocess.Popen(["ip", "netns", "exec", "sk8sb-pod", sys.executable, "-c", SERVER])
    try:
        time.sleep(1)
        asyncio.run(kernel_rules())
        paths = {"straight to the backend (baseline)": BACKEND, "internet LB, kernel (nft output)": INTERNET,
                 "intranet LB, kernel (anchor prerouting)": INTRANET, "internet LB, Python proxy": PROXIED}

        async def run_all() -> dict:
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((PROXIED, 80))
            sock.listen(1024)
            sock.setblocking(False)
            backends = BackendSet()
            backends.replace([(BACKEND, 80)])
            listener = Listener("TCP", sock, backends)
            await listener.start()
            out = {name: [] for name in paths}
            try:
                for _ in range(args.rounds):  # interleaved: drift on a shared machine hits every path alike
                    for name, host in paths.items():
                        out[name].append((await requests(host, args.seconds, args.concurrency),
                                          await asyncio.to_thread(http_bulk, host, 80, "/bulk", args.seconds, args.streams)))
            finally:
                await listener.close()
            return out
        res = asyncio.run(run_all())
    finally:
        server.terminate()
        server.wait()
        teardown()
    med = {name: (statistics.median(r for r, _ in runs), statistics.median(m for _, m in runs))
           for name, runs in res.items()}
    rps0, mbs0 = med[next(iter(paths))]
    print(f"\nfast backend (asyncio HTTP/1.0), {args.concurrency} clients; bulk: {args.streams} streams; "
          f"median of {args.rounds} interleaved rounds of {args.seconds:g} s\n")
    print(f"{'path':42} {'requests/s':>11} {'ratio':>6} {'MB/s':>9} {'ratio':>6}")
    for name, (rps, mbs) in med.items():
        print(f"{name:42} {rps:11.0f} {rps / rps0:6.2f} {mbs:9.0f} {mbs / mbs0:6.2f}")
    print("(target ratio >= 0.95)")

if __name__ == "__main__":
    main()
