"""Defence in depth on the host: the meta etcd speaks TLS to certificates of its own CA
only, and no listener of the installation answers an unauthenticated request that
changes state (the load balancers' addresses serve tenants by design and are left out)."""
from __future__ import annotations

import base64
import ipaddress
import json
import os
import socket
import ssl
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from .tenant import cluster_uid, delete_cluster, make_cluster, plane_dir

pytestmark = pytest.mark.e2e

PROBE_KEY = f"/sk8s-e2e-probe-{uuid.uuid4().hex[:8]}"
PROBE_NS = f"probe-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def hostsec(meta):
    t = make_cluster(meta, "hostsec")
    yield t
    delete_cluster(meta, "hostsec")


def _plane_dir(meta, cluster: str) -> Path:
    return plane_dir(meta, cluster_uid(meta, cluster))


def _ports(meta) -> dict:
    return json.loads((meta.home / "ports.json").read_text())


def _ctx(ca: Path | None, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    if ca is None:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    else:
        ctx = ssl.create_default_context(cafile=str(ca))
    if cert:
        ctx.load_cert_chain(str(cert), str(key))
    return ctx


def _b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def _etcd(url: str, op: str, body: dict, ctx: ssl.SSLContext | None) -> dict:
    req = urllib.request.Request(f"{url}/v3/kv/{op}", data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5, context=ctx) as resp:
        return json.loads(resp.read() or b"{}")


def _etcd_dir(meta) -> Path:
    return meta.home / "pki" / "etcd"


def _probe_key_count(meta) -> int:
    d = _etcd_dir(meta)
    ctx = _ctx(d / "ca.crt", d / "healthcheck-client.crt", d / "healthcheck-client.key")
    url = f"https://127.0.0.1:{_ports(meta)['etcd_client']}"
    return int(_etcd(url, "range", {"key": _b64(PROBE_KEY), "count_only": True}, ctx).get("count", 0))


def _refused(fn) -> str:
    """Run a request that must fail; return how it failed."""
    try:
        result = fn()
    except ssl.SSLError as exc:
        return f"TLS: {exc.reason or exc}"
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
    raise AssertionError(f"the request was answered: {result}")


def test_etcd_refuses_plain_http_and_foreign_certificates(meta, hostsec):
    ports = _ports(meta)
    d = _etcd_dir(meta)
    plane = _plane_dir(meta, "hostsec") / "pki"
    put = {"key": _b64(PROBE_KEY), "value": _b64("written by a stranger")}
    client, peer = ports["etcd_client"], ports["etcd_peer"]
    for port in (client, peer):
        # Plain HTTP, as a probe from the host would send it (a read and a write).
        _refused(lambda: _etcd(f"http://127.0.0.1:{port}", "put", put, None))
        _refused(lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5).read())
        # TLS without a client certificate, trusting etcd's CA or not checking at all.
        for ctx in (_ctx(d / "ca.crt"), _ctx(None)):
            _refused(lambda: _etcd(f"https://127.0.0.1:{port}", "put", put, ctx))
        # TLS with certificates of a tenant's CA: its admin (system:masters there), the
        # tenant apiserver's kubelet client, the virtual node's.
        for stem in ("admin", "apiserver-kubelet-client", "virtual-node"):
            ctx = _ctx(None, plane / f"{stem}.crt", plane / f"{stem}.key")
            _refused(lambda: _etcd(f"https://127.0.0.1:{port}", "put", put, ctx))
        # The meta apiserver's own client certificate of its CA opens nothing here either.
        ctx = _ctx(None, meta.home / "pki" / "admin.crt", meta.home / "pki" / "admin.key")
        _refused(lambda: _etcd(f"https://127.0.0.1:{port}", "put", put, ctx))
    assert _probe_key_count(meta) == 0
    # The apiservers' own certificates are accepted: the meta apiserver's, and the tenant
    # plane's (which reads its own prefix).
    url = f"https://127.0.0.1:{client}"
    ctx = _ctx(d / "ca.crt", d / "apiserver-etcd-client.crt", d / "apiserver-etcd-client.key")
    meta_keys = _etcd(url, "range", {"key": _b64("/sk8s/meta/"), "range_end": _b64("/sk8s/meta0"),
                                     "count_only": True}, ctx)
    assert int(meta_keys["count"]) > 0
    prefix = json.loads((plane.parent / "plane.json").read_text())["etcdPrefix"]
    ctx = _ctx(plane / "etcd-ca.crt", plane / "etcd-client.crt", plane / "etcd-client.key")
    tenant_keys = _etcd(url, "range", {"key": _b64(prefix + "/"), "range_end": _b64(prefix + "0"),
                                       "count_only": True}, ctx)
    assert int(tenant_keys["count"]) > 0
    # And the apiservers really use them: the tenant's and the meta's apiserver serve writes.
    hostsec.kubectl("create", "configmap", "written-through-tls", "--from-literal=a=b")
    meta.kubectl("get", "serverlesscluster", "hostsec")


# --- every listener of the installation -------------------------------------------------

def _pids(meta) -> dict[int, str]:
    status = json.loads(meta.sk8s("status", "-o", "json").stdout)
    pids = {status["supervisor"]: "supervisor"}
    pids.update({c["pid"]: c["component"] for c in status["components"]})
    pids.update({r["pid"]: f"{r['cluster']} {r['component']}" for r in status["tenants"] if r["pid"]})
    return pids


def _decode(hexaddr: str) -> tuple[str, int]:
    host, port = hexaddr.split(":")
    raw = bytes.fromhex(host)
    if len(raw) == 4:
        addr = socket.inet_ntop(socket.AF_INET, raw[::-1])
    else:  # four little-endian 32-bit words
        addr = socket.inet_ntop(socket.AF_INET6, b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4)))
    return addr, int(port, 16)


def listeners(pids: dict[int, str]) -> list[tuple[str, str, int, str]]:
    """(protocol, address, port, owner) of every listening socket these processes hold in
    the host's network namespace (sockets in a VPC's namespace are not in these tables)."""
    owner: dict[str, str] = {}
    for pid, name in pids.items():
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                owner[target[8:-1]] = name
    found = []
    for proto, state in (("tcp", "0A"), ("tcp6", "0A"), ("udp", "07"), ("udp6", "07")):
        for line in Path(f"/proc/net/{proto}").read_text().splitlines()[1:]:
            f = line.split()
            if f[3] == state and f[9] in owner:
                addr, port = _decode(f[1])
                found.append((proto, addr, port, owner[f[9]]))
    return found


STATE_CHANGES = [
    ("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": PROBE_NS}}),
    ("POST", "/v3/kv/put", {"key": _b64(PROBE_KEY), "value": _b64("x")}),
    ("PUT", f"/api/v1/namespaces/{PROBE_NS}", {"apiVersion": "v1", "kind": "Namespace",
                                              "metadata": {"name": PROBE_NS}}),
    ("DELETE", "/api/v1/namespaces/default", None),
    ("PATCH", "/api/v1/nodes/virtual-node", {"metadata": {"labels": {"probe": "x"}}}),
    ("POST", "/exec/default/x/y?command=id&output=1", None),
    ("POST", "/run/default/x/y?cmd=id", None),
    ("POST", "/healthz", {}),
    ("DELETE", "/", None),
]


def _raw(addr: str, port: int, method: str, path: str, body: dict | None, tls: bool) -> str:
    """One request, no credentials; the status line of the answer, or how it failed."""
    data = json.dumps(body).encode() if body is not None else b""
    req = (f"{method} {path} HTTP/1.1\r\nHost: {addr}:{port}\r\nContent-Type: application/json\r\n"
           f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n").encode() + data
    try:
        with socket.create_connection((addr, port), timeout=5) as raw:
            sock = _ctx(None).wrap_socket(raw) if tls else raw
            sock.sendall(req)
            answer = b""
            while b"\r\n" not in answer:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                answer += chunk
    except (OSError, ssl.SSLError) as exc:
        return f"{type(exc).__name__}"
    return answer.split(b"\r\n", 1)[0].decode(errors="replace") or "closed"


def _is_2xx(status_line: str) -> bool:
    parts = status_line.split()
    return len(parts) >= 2 and parts[0].startswith("HTTP/") and parts[1].startswith("2")


def test_no_listener_answers_an_unauthenticated_state_change(meta, hostsec):
    from operators.config import home_id
    from operators.providers.local.loadbalancer import internet_range
    lb_range = internet_range(home_id(meta.home))
    found = listeners(_pids(meta))
    owners = {o for *_, o in found}
    # Every control-plane endpoint is on the host's loopback, none on a wildcard address.
    assert {"etcd", "kube-apiserver", "default/hostsec kube-apiserver", "default/hostsec virtual-node"} <= owners, found
    assert not any(o.endswith("kube-controller-manager") for o in owners), found  # --secure-port=0
    table = []
    for proto, addr, port, owner in found:
        if ipaddress.ip_address(addr) in lb_range:
            continue  # a load balancer's address: it serves tenants by design
        assert addr in ("127.0.0.1", "::1"), f"{owner} listens on {addr}:{port} ({proto})"
        if proto.startswith("udp"):
            raise AssertionError(f"{owner} has a UDP socket on the host's loopback {addr}:{port}")
        for method, path, body in STATE_CHANGES:
            for tls in (False, True):
                answer = _raw(addr, port, method, path, body, tls)
                table.append((owner, port, method, path, tls, answer))
                assert not _is_2xx(answer), f"{owner} at {addr}:{port} answered {method} {path}: {answer}"
    for row in table:
        print(*row)
    # Nothing was changed: no key, no namespace anywhere, no label on the node.
    assert _probe_key_count(meta) == 0
    assert meta.kubectl("get", "namespace", PROBE_NS, check=False).returncode != 0
    assert hostsec.kubectl("get", "namespace", PROBE_NS, check=False).returncode != 0
    assert meta.kubectl("get", "namespace", "default", check=False).returncode == 0
    assert hostsec.kubectl("get", "namespace", "default", check=False).returncode == 0
    node = json.loads(hostsec.kubectl("get", "node", "virtual-node", "-o", "json").stdout)
    assert "probe" not in node["metadata"].get("labels", {})


def test_meta_apiserver_refuses_anonymous_and_tenant_apiserver_lets_it_read_health_only(meta, hostsec):
    meta_port = _ports(meta)["apiserver"]
    assert _raw("127.0.0.1", meta_port, "GET", "/version", None, True).split()[1] == "401"
    assert _raw("127.0.0.1", meta_port, "GET", "/readyz", None, True).split()[1] == "401"
    endpoint = meta.get("serverlesscluster", "hostsec", "default")["status"]["endpoint"]
    port = int(endpoint.rsplit(":", 1)[1])
    assert _raw("127.0.0.1", port, "GET", "/readyz", None, True).split()[1] == "200"
    assert _raw("127.0.0.1", port, "GET", "/api/v1/secrets", None, True).split()[1] == "403"
    assert _raw("127.0.0.1", port, "POST", "/api/v1/namespaces", STATE_CHANGES[0][2], True).split()[1] == "403"


@pytest.mark.long  # an upgrade run (a second installation): make test-long
def test_an_installation_made_before_etcd_had_tls_comes_up_with_it(meta, tmp_path):
    """An older home: etcd data written over plain HTTP, no etcd CA. `sk8s up` makes what
    is missing, and etcd serves the old data over TLS, to its own certificates only."""
    import subprocess
    import sys
    import time
    from operators.config import Layout
    from .conftest import REPO
    home = tmp_path / "old-home"
    lay = Layout(home)
    lay.ensure()
    ports = lay.ports()
    client, peer = f"http://127.0.0.1:{ports.etcd_client}", f"http://127.0.0.1:{ports.etcd_peer}"
    old = subprocess.Popen([str(meta.bindir / "etcd"), "--name=sk8s-meta", f"--data-dir={lay.etcd_data}",
                            f"--listen-client-urls={client}", f"--advertise-client-urls={client}",
                            f"--listen-peer-urls={peer}", f"--initial-advertise-peer-urls={peer}",
                            f"--initial-cluster=sk8s-meta={peer}", "--listen-metrics-urls=", "--log-level=warn"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                _etcd(client, "put", {"key": _b64("/kept-from-before"), "value": _b64("old")}, None)
                break
            except OSError:
                assert time.monotonic() < deadline, "the old etcd did not start"
                time.sleep(0.2)
    finally:
        old.terminate()
        old.wait(timeout=30)
    assert not (home / "pki" / "etcd").exists()
    env = dict(meta.env, SK8S_HOME=str(home), SK8S_STANDBY_PLANES="0",
               CONTAINERS_CONF=str(home / "containers.conf"))
    env.pop("KUBECONFIG", None)

    def sk8s(*args):
        return subprocess.run([sys.executable, "-m", "operators.cli", *args], env=env, cwd=str(REPO), text=True,
                              capture_output=True, timeout=300)
    try:
        up = sk8s("up")
        assert up.returncode == 0, up.stdout + up.stderr
        d = home / "pki" / "etcd"
        url = f"https://127.0.0.1:{ports.etcd_client}"
        _refused(lambda: _etcd(client, "range", {"key": _b64("/kept-from-before")}, None))
        _refused(lambda: _etcd(url, "range", {"key": _b64("/kept-from-before")}, _ctx(d / "ca.crt")))
        ctx = _ctx(d / "ca.crt", d / "healthcheck-client.crt", d / "healthcheck-client.key")
        kvs = _etcd(url, "range", {"key": _b64("/kept-from-before")}, ctx)["kvs"]
        assert base64.b64decode(kvs[0]["value"]) == b"old"
        got = subprocess.run([str(meta.bindir / "kubectl"), f"--kubeconfig={home / 'kubeconfig'}", "get", "ns",
                              "default"], text=True, capture_output=True, timeout=60)
        assert got.returncode == 0, got.stderr
    finally:
        sk8s("down")
