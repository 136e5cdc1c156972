"""Service figures, each next to a baseline from the same run.

    python bench/services.py [--lbs 10] [--seconds 5] [--concurrency 16]

- LoadBalancer Service created -> EXTERNAL-IP answering HTTP: p50/p99 over --lbs Services.
- requests per second through the load balancer next to straight to the pod it balances
  to (same pod, same client, interleaved; target ratio >= 0.95). busybox httpd forks per
  request, which bounds both: bench/lb_datapath.py measures the data paths with a fast
  backend.
- bulk TCP throughput (MB/s, 4 parallel downloads of a 256 MiB file that httpd sends with
  sendfile) through the load balancer next to straight to the pod (target ratio >= 0.95).
- DNS answers per second from the tenant's VPC resolver, next to the client's own ceiling
  (a bare UDP echo on loopback, same client code).
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import json
import socket
import time

from cluster_start import create_cluster, kubectl
from common import IMAGE, http_bulk, private_home, row, sk8s, summary
from dnslib import DNSRecord


async def http_load(host: str, port: int, seconds: float, concurrency: int) -> float:
    """HTTP/1.0 GETs (one connection each, as busybox httpd serves them) per second."""
    done = 0
    errors = 0
    stop = time.monotonic() + seconds
    request = f"GET / HTTP/1.0\r\nHost: {host}\r\n\r\n".encode()

    async def worker() -> None:
        nonlocal done, errors
        while time.monotonic() < stop:
            try:
                reader, writer = await asyncio.open_connection(host, port)
                writer.write(request)
                body = await reader.read()
                writer.close()
                if b"200 OK" in body[:64]:
                    done += 1
                else:
                    errors += 1
            except OSError:
                errors += 1
    t0 = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    if errors:
        print(f"  ({errors} failed requests against {host}:{port})")
    return done / (time.monotonic() - t0)


async def udp_load(addr: tuple[str, int], payload: bytes, seconds: float, in_flight: int) -> float:
    """Queries per second with `in_flight` outstanding requests."""
    loop = asyncio.get_running_loop()
    answered = 0
    stop = time.monotonic() + seconds
    sem = asyncio.Semaphore(in_flight)
    waiting: dict[int, asyncio.Future] = {}

    class Client(asyncio.DatagramProtocol):
        def datagram_received(self, data, _):
            fut = waiting.pop(int.from_bytes(data[:2], "big"), None)
            if fut and not fut.done():
                fut.set_result(None)
    transport, _ = await loop.create_datagram_endpoint(Client, remote_addr=addr)
    qid = 0

    async def one(i: int) -> None:
        nonlocal answered
        fut = loop.create_future()
        waiting[i] = fut
        transport.sendto(i.to_bytes(2, "big") + payload[2:])
        try:
            await asyncio.wait_for(fut, 1)
            answered += 1
        except asyncio.TimeoutError:
            waiting.pop(i, None)
        finally:
            sem.release()
    t0 = time.monotonic()
    tasks = set()
    while time.monotonic() < stop:
        await sem.acquire()
        qid = (qid + 1) % 65536
        t = asyncio.create_task(one(qid))
        tasks.add(t)
        t.add_done_callback(tasks.discard)
    await asyncio.gather(*tasks)
    transport.close()
    return answered / (time.monotonic() - t0)


async def udp_echo() -> tuple[asyncio.DatagramTransport, tuple[str, int]]:
    class Echo(asyncio.DatagramProtocol):
        def connection_made(self, t):
            self.t = t

        def datagram_received(self, data, addr):
            self.t.sendto(data, addr)
    t, _ = await asyncio.get_running_loop().create_datagram_endpoint(Echo, local_addr=("127.0.0.1", 0))
    return t, t.get_extra_info("sockname")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lbs", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--concurrency", type=int, default=16)
    args = ap.parse_args()

    env = private_home()
    took, _ = sk8s(env, "up")
    env["KUBECONFIG"] = f"{env['SK8S_HOME']}/kubeconfig"
    import os
    os.environ.update(env)
    from kubernetes import client, config
    config.load_kube_config(env["KUBECONFIG"])
    try:
        create_cluster(env, "bench")
        secret = json.loads(kubectl(env, "get", "secret", "bench-kubeconfig", "-o", "json"))
        tkc = f"{env['SK8S_HOME']}/bench.kubeconfig"
        with open(tkc, "wb") as f:
            f.write(base64.b64decode(secret["data"]["kubeconfig"]))
        tk = lambda *a, **kw: kubectl(env, *a, kubeconfig=tkc, **kw)  # noqa: E731
        tk("create", "deployment", "web", f"--image={IMAGE}")
        tk("rollout", "status", "deployment/web", "--timeout=180s")
        tenant = client.CoreV1Api(config.new_client_from_config(tkc))

        # 1. LoadBalancer created -> answering
        times = []
        for i in range(args.lbs):
            t0 = time.monotonic()
            tk("expose", "deployment", "web", f"--name=lb{i}", "--port=80", "--type=LoadBalancer")
            ip = None
            while time.monotonic() - t0 < 60:
                if ip is None:
                    ing = (tenant.read_namespaced_service(f"lb{i}", "default").status.load_balancer.ingress or [])
                    ip = ing[0].ip if ing else None
                if ip:
                    try:
                        with socket.create_connection((ip, 80), timeout=1) as s:
                            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
                            if b"200 OK" in s.recv(64):
                                break
                    except OSError:
                        pass
                time.sleep(0.01)
            else:
                raise SystemExit(f"lb{i} not answering within 60 s")
            times.append(time.monotonic() - t0)
        for i in range(1, args.lbs):
            tk("delete", "svc", f"lb{i}", "--wait=false")

        # 2. requests per second: through the LB vs straight to its one backend
        pod_ip = tk("get", "pods", "-l", "app=web", "-o", "jsonpath={.items[0].status.podIP}").strip()
        tk("scale", "deployment/web", "--replicas=1")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ips = tk("get", "pods", "-l", "app=web", "-o", "jsonpath={.items[*].status.podIP}").split()
            if ips == [pod_ip] or len(ips) == 1:
                pod_ip = ips[0]
                break
            time.sleep(0.5)
        lb_ip = tenant.read_namespaced_service("lb0", "default").status.load_balancer.ingress[0].ip
        time.sleep(3)  # the LB's backends follow the scale-down
        direct = asyncio.run(http_load(pod_ip, 80, args.seconds, args.concurrency))
        via_lb = asyncio.run(http_load(lb_ip, 80, args.seconds, args.concurrency))
        direct2 = asyncio.run(http_load(pod_ip, 80, args.seconds, args.concurrency))

        # 2b. bulk MB/s: the same, interleaved
        pod = tk("get", "pods", "-l", "app=web", "-o", "jsonpath={.items[0].metadata.name}").strip()
        tk("exec", pod, "--", "dd", "if=/dev/zero", "of=/www/bulk", "bs=1M", "count=256")
        bulk_direct = [http_bulk(pod_ip, 80, "/bulk", args.seconds, 4)]
        bulk_lb = http_bulk(lb_ip, 80, "/bulk", args.seconds, 4)
        bulk_direct.append(http_bulk(pod_ip, 80, "/bulk", args.seconds, 4))

        # 3. DNS answers per second
        ns = json.loads(kubectl(env, "get", "serverlesscluster", "bench", "-o", "json"))["status"]["sandboxNamespace"]
        zone = json.loads(kubectl(env, "get", "privatezone", "cluster.local", "-n", ns, "-o", "json"))
        resolver = zone["status"]["resolvers"][0]
        query = DNSRecord.question("lb0.default.svc.cluster.local").pack()

        async def dns() -> tuple[float, float]:
            qps = await udp_load((resolver, 53), query, args.seconds, 64)
            t, addr = await udp_echo()
            ceiling = await udp_load(addr, query, args.seconds, 64)
            t.close()
            return qps, ceiling
        qps, ceiling = asyncio.run(dns())
    finally:
        sk8s(env, "down")

    print(f"\nsk8s up: {took:.1f}s; tenant cluster 'bench' with a 1-replica busybox httpd Deployment\n")
    print(row("LoadBalancer Service -> EXTERNAL-IP answering", summary(times)))
    print(f"{'requests/s straight to the pod (baseline)':44} {(direct + direct2) / 2:8.0f}/s  "
          f"(before {direct:.0f}, after {direct2:.0f})")
    print(f"{'requests/s through the load balancer':44} {via_lb:8.0f}/s  ratio {via_lb / ((direct + direct2) / 2):.2f} "
          f"(target >= 0.95)")
    b0 = sum(bulk_direct) / 2
    print(f"{'MB/s straight to the pod (baseline)':44} {b0:8.0f}  (before {bulk_direct[0]:.0f}, after {bulk_direct[1]:.0f})")
    print(f"{'MB/s through the load balancer':44} {bulk_lb:8.0f}  ratio {bulk_lb / b0:.2f} (target >= 0.95)")
    print(f"{'DNS answers/s from the VPC resolver':44} {qps:8.0f}/s")
    print(f"{'UDP echo on loopback, same client (ceiling)':44} {ceiling:8.0f}/s  ratio {qps / ceiling:.2f}")


if __name__ == "__main__":
    main()
