"""kubectl exec, attach and port-forward through the virtual node, as a user runs them (plain
kubectl, piped or under a terminal), against real sandboxes."""
from __future__ import annotations

import fcntl
import os
import re
import select
import struct
import subprocess
import termios
import time
import urllib.request

import pytest

from .tenant import Tenant, delete_cluster, make_cluster

POD_TWO = """
apiVersion: v1
kind: Pod
metadata: {name: two}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {name: box, image: localhost/sk8s-busybox:latest, imagePullPolicy: IfNotPresent,
     command: [sleep, "3600"], env: [{name: WHO, value: box}]}
  - {name: side, image: localhost/sk8s-busybox:latest, imagePullPolicy: IfNotPresent,
     command: [sleep, "3600"], env: [{name: WHO, value: side}]}
---
apiVersion: v1
kind: Pod
metadata: {name: console}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {name: sh, image: localhost/sk8s-busybox:latest, imagePullPolicy: IfNotPresent,
     command: [sh], stdin: true, tty: true}
---
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {name: httpd, image: localhost/sk8s-busybox:latest, imagePullPolicy: IfNotPresent}
  - {name: loopback-only, image: localhost/sk8s-busybox:latest, imagePullPolicy: IfNotPresent,
     command: [httpd, -f, -p, "127.0.0.1:8081", -h, /www]}
  - {name: ticker, image: localhost/sk8s-busybox:latest, imagePullPolicy: IfNotPresent,
     command: [sh, -c, 'i=0; while true; do echo "tick $i"; echo "tock $i" >&2; i=$((i+1)); sleep 0.2; done']}
"""


def _running(pod: dict) -> bool:
    statuses = pod.get("status", {}).get("containerStatuses") or []
    return bool(statuses) and all("running" in (s.get("state") or {}) for s in statuses)


@pytest.fixture(scope="module")
def tenant(meta):
    t = make_cluster(meta, "execs")
    t.kubectl("apply", "-f", "-", input=POD_TWO)
    for name in ("two", "console", "web"):
        t.wait_pod(name, _running, timeout=90)
    yield t
    delete_cluster(meta, "execs")


class Terminal:
    """kubectl under a pseudo-terminal of its own, as in an interactive shell."""

    def __init__(self, tenant: Tenant, *args: str, rows: int = 33, cols: int = 101):
        self.master, slave = os.openpty()
        self.resize(rows, cols)
        self.proc = subprocess.Popen(
            ["setsid", "--ctty", str(tenant.meta.bindir / "kubectl"), f"--kubeconfig={tenant.kubeconfig}", *args],
            stdin=slave, stdout=slave, stderr=slave, close_fds=True)
        os.close(slave)
        self.seen = b""

    def resize(self, rows: int, cols: int) -> None:
        # Like a terminal emulator: the kernel then signals kubectl (SIGWINCH).
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def send(self, text: str) -> None:
        os.write(self.master, text.encode())

    def expect(self, pattern: str, timeout: float = 20) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(pattern.encode(), self.seen)
            if m:
                self.seen = self.seen[m.end():]
                return m
            ready, _, _ = select.select([self.master], [], [], 0.1)
            if ready:
                try:
                    self.seen += os.read(self.master, 65536)
                except OSError:
                    break
        raise AssertionError(f"{pattern!r} not seen; terminal shows {self.seen[-500:]!r}")

    def wait(self, timeout: float = 20) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            os.close(self.master)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def test_exec_prints_the_output(tenant):
    res = tenant.kubectl("exec", "two", "--", "echo", "hi")
    assert res.stdout == "hi\n"
    # kubectl picks the first container, as anywhere.
    assert 'Defaulted container "box" out of: box, side' in res.stderr


def test_exec_reads_piped_stdin(tenant):
    data = "".join(f"line {i}\n" for i in range(2000))
    res = tenant.kubectl("exec", "-i", "two", "-c", "box", "--", "cat", input=data)
    assert res.stdout == data


def test_exec_keeps_stderr_apart_and_propagates_the_exit_code(tenant):
    res = tenant.kubectl("exec", "two", "-c", "box", "--", "sh", "-c", "echo out; echo err >&2; exit 3", check=False)
    assert res.returncode == 3
    assert res.stdout == "out\n"
    assert res.stderr.startswith("err\n")
    assert "command terminated with exit code 3" in res.stderr


def test_exec_chooses_the_container(tenant):
    assert tenant.kubectl("exec", "two", "-c", "side", "--", "sh", "-c", "echo $WHO").stdout == "side\n"
    res = tenant.kubectl("exec", "two", "-c", "nope", "--", "true", check=False)
    assert res.returncode != 0 and 'container nope is not valid for pod two' in res.stderr


def test_exec_from_the_python_client(tenant):
    # Another client implementation (websocket-client, v5 with v4 offered): stdin, its end, the exit code.
    from kubernetes import client, config
    from kubernetes.stream import stream
    api = client.CoreV1Api(config.new_client_from_config(config_file=str(tenant.kubeconfig)))
    ws = stream(api.connect_get_namespaced_pod_exec, "two", "default", container="box",
                command=["sh", "-c", "cat; echo bye >&2; exit 6"], stdin=True, stdout=True, stderr=True,
                tty=False, _preload_content=False)
    ws.write_stdin("from python\n")
    ws.close_channel(0)  # v5: the end of stdin
    ws.run_forever(timeout=20)
    assert ws.read_stdout() == "from python\n" and ws.read_stderr() == "bye\n"
    assert ws.returncode == 6


@pytest.mark.parametrize("protocol", ["channel.k8s.io", "base64.channel.k8s.io"])
def test_exec_over_the_pre_v4_websocket_protocols(tenant, protocol):
    # Old client libraries: the same channels, and only a failure's text on the error channel.
    import base64
    import ssl

    import websocket
    from kubernetes import client, config
    cfg = client.Configuration()
    config.load_kube_config(config_file=str(tenant.kubeconfig), client_configuration=cfg)
    url = (cfg.host.replace("https://", "wss://") + "/api/v1/namespaces/default/pods/two/exec"
           "?container=box&command=sh&command=-c&command=echo%20old%3B%20exit%205&stdout=1&stderr=1")
    ws = websocket.create_connection(url, subprotocols=[protocol], timeout=20, sslopt={
        "cert_reqs": ssl.CERT_REQUIRED, "ca_certs": cfg.ssl_ca_cert, "certfile": cfg.cert_file,
        "keyfile": cfg.key_file})
    assert ws.subprotocol == protocol
    got: dict[int, bytes] = {}
    try:
        while True:
            msg = ws.recv()
            if not msg:
                break
            if protocol.startswith("base64"):
                channel, data = int(msg[0]), base64.b64decode(msg[1:])
            else:
                msg = msg if isinstance(msg, bytes) else msg.encode()
                channel, data = msg[0], msg[1:]
            got[channel] = got.get(channel, b"") + data
    except websocket.WebSocketConnectionClosedException:
        pass
    finally:
        ws.close()
    assert got[1] == b"old\n"
    assert got[3] == b"command terminated with non-zero exit code: command terminated with exit code 5"


def test_kubectl_cp_both_ways(tenant, tmp_path):
    # kubectl cp is tar over exec: binary stdin and stdout, end of input, exit code.
    payload = os.urandom(300_000)
    (tmp_path / "blob").write_bytes(payload)
    tenant.kubectl("cp", str(tmp_path / "blob"), "two:/tmp/blob", "-c", "box")
    assert tenant.kubectl("exec", "two", "-c", "box", "--", "wc", "-c", "/tmp/blob").stdout.split()[0] == "300000"
    tenant.kubectl("cp", "two:/tmp/blob", str(tmp_path / "back"), "-c", "box")
    assert (tmp_path / "back").read_bytes() == payload


def test_exec_interactive_terminal_with_resize(tenant):
    term = Terminal(tenant, "exec", "-it", "two", "-c", "box", "--", "sh")
    try:
        term.send("stty size\r")
        term.expect(r"33 101")
        term.resize(40, 120)
        time.sleep(0.5)
        term.send("stty size; echo $((6*7))\r")
        term.expect(r"40 120\s+42")
        term.send("exit 5\r")
        term.expect(r"command terminated with exit code 5")
        assert term.wait() == 5
    finally:
        term.kill()


def test_attach_to_a_console_container(tenant):
    term = Terminal(tenant, "attach", "-it", "console")
    try:
        term.expect(r"If you don't see a command prompt, try pressing enter.")
        term.send("echo attached-$((40+2))\r")
        term.expect(r"attached-42")
        term.send("stty size\r")
        term.expect(r"33 101")
    finally:
        term.kill()
    # Leaving kubectl leaves the container running.
    time.sleep(1)
    assert _running(tenant.pod("console"))
    assert tenant.pod("console")["status"]["containerStatuses"][0]["restartCount"] == 0


def test_attach_streams_the_output_of_a_running_container(tenant):
    proc = subprocess.Popen([str(tenant.meta.bindir / "kubectl"), f"--kubeconfig={tenant.kubeconfig}", "attach",
                             "web", "-c", "ticker"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = [proc.stdout.readline() for _ in range(3)]
        assert all(re.fullmatch(r"tick \d+\n", line) for line in lines), lines
        # stderr stays apart: it has kubectl's notice, then the container's own stderr
        assert any(proc.stderr.readline().startswith("tock ") for _ in range(5))
    finally:
        proc.kill()
        proc.wait()


def test_exec_in_a_pod_that_is_not_running_is_refused(tenant):
    tenant.kubectl("run", "done", "--image=localhost/sk8s-busybox:latest", "--image-pull-policy=IfNotPresent",
                   "--restart=Never", "--command", "--", "true")
    tenant.wait_pod("done", lambda p: p.get("status", {}).get("phase") == "Succeeded")
    res = tenant.kubectl("exec", "done", "--", "true", check=False)
    assert res.returncode != 0
    assert "cannot exec into a container in a completed pod; current phase is Succeeded" in res.stderr


def _forward(tenant: Tenant, *ports: str, env: dict | None = None) -> tuple[subprocess.Popen, list[int]]:
    proc = subprocess.Popen([str(tenant.meta.bindir / "kubectl"), f"--kubeconfig={tenant.kubeconfig}",
                             "port-forward", "--address=127.0.0.1", "pod/web", *ports],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    local = []
    for _ in ports:
        line = proc.stdout.readline()  # "Forwarding from 127.0.0.1:PORT -> 80"
        m = re.match(r"Forwarding from 127\.0\.0\.1:(\d+) -> \d+", line)
        assert m, line + proc.stderr.read() if proc.poll() is not None else line
        local.append(int(m.group(1)))
    return proc, local


def test_port_forward_reaches_the_pods_ports_and_its_localhost(tenant):
    proc, (http, loopback) = _forward(tenant, ":80", ":8081")
    try:
        for _ in range(3):  # one SPDY connection, one stream pair per request
            body = urllib.request.urlopen(f"http://127.0.0.1:{http}/", timeout=10).read()
            assert b"Welcome to sk8s" in body
        # Listening on the pod's 127.0.0.1 only: reachable as with a kubelet, not via the pod IP.
        assert b"Welcome to sk8s" in urllib.request.urlopen(f"http://127.0.0.1:{loopback}/", timeout=10).read()
    finally:
        proc.kill()
        proc.wait()


def test_port_forward_to_a_closed_port_says_why(tenant):
    proc, (port,) = _forward(tenant, ":9999")
    try:
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10).read()
        proc.wait(20)  # kubectl gives up the connection after a forwarding error
        err = proc.stderr.read()
        assert "An error occurred forwarding" in err and "remotePort=9999" in err
        assert "failed to connect to localhost:9999 inside the pod" in err and "Connection refused" in err
        assert "lost connection to pod" in err
    finally:
        proc.kill()
        proc.wait()


# kubectl's own switches back to SPDY: what older clients and client-go's SPDY executor speak,
# passed through by the apiserver to the virtual node as they are.
SPDY_ENV = dict(os.environ, KUBECTL_REMOTE_COMMAND_WEBSOCKETS="false", KUBECTL_PORT_FORWARD_WEBSOCKETS="false")


def test_exec_over_spdy(tenant):
    res = subprocess.run([str(tenant.meta.bindir / "kubectl"), f"--kubeconfig={tenant.kubeconfig}", "exec", "-i",
                          "two", "-c", "box", "--", "sh", "-c", "cat; echo err >&2; exit 4"],
                         input="spdy in\n", text=True, capture_output=True, timeout=60, env=SPDY_ENV)
    assert (res.returncode, res.stdout) == (4, "spdy in\n")
    assert res.stderr.startswith("err\n") and "command terminated with exit code 4" in res.stderr


def test_port_forward_over_spdy(tenant):
    proc, (port,) = _forward(tenant, ":80", env=SPDY_ENV)
    try:
        assert b"Welcome to sk8s" in urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10).read()
    finally:
        proc.kill()
        proc.wait()
