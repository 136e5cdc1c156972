"""A tenant pod's network reach: its own VPC, nothing of the host's, no admin sandbox."""
from __future__ import annotations

import socket
import threading

import pytest

from .conftest import IMAGE, sandboxpod
from .tenant import delete_cluster, make_cluster

pytestmark = pytest.mark.e2e


def test_tenant_pods_reach_neither_the_host_nor_admin_sandboxes(meta, namespace):
    # A service on all of the host's addresses, as rpcbind or sshd would be.
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("0.0.0.0", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    accepted: list[tuple] = []

    def accept():
        while True:
            try:
                conn, addr = listener.accept()
            except OSError:
                return
            accepted.append(addr)
            conn.sendall(b"HOST-SERVICE\n")
            conn.close()
    threading.Thread(target=accept, daemon=True).start()

    # An admin's SandboxPod on the installation's own network, serving a page.
    meta.apply(sandboxpod("admin-web", [{"name": "web"}]), namespace)
    admin = meta.wait_for("sandboxpod", "admin-web", namespace,
                          lambda o: (o.get("status") or {}).get("phase") == "Running" and o["status"].get("podIP"))
    admin_ip = admin["status"]["podIP"]

    t = make_cluster(meta, "netreach", quotas={"maxPods": 4})
    try:
        script = (
            f'timeout 3 wget -qO- http://$HOST_IP:{port}/ 2>&1 | head -1; echo host:$?; '
            f'timeout 3 wget -qO- http://{admin_ip}/ 2>&1 | head -1; echo admin:$?; '
            # its own gateway address is the host too
            f'for ip in $(ip route | awk "/default/ {{print \\$3}}"); do timeout 3 wget -qO- http://$ip:{port}/ 2>&1 '
            f'| head -1; done; echo done')
        t.kubectl("run", "reach", f"--image={IMAGE}", "--image-pull-policy=IfNotPresent", "--restart=Never",
                  "--overrides", '{"spec":{"containers":[{"name":"reach","image":"%s","imagePullPolicy":"IfNotPresent",'
                  '"command":["sh","-c",%s],"env":[{"name":"HOST_IP","valueFrom":{"fieldRef":'
                  '{"fieldPath":"status.hostIP"}}}]}]}}' % (IMAGE, __import__("json").dumps(script)))
        pod = t.wait_pod("reach", lambda p: p["status"].get("phase") in ("Succeeded", "Failed"), timeout=90)
        out = t.kubectl("logs", "reach").stdout
        assert pod["status"]["phase"] == "Succeeded", out
        assert "HOST-SERVICE" not in out and accepted == [], (out, accepted)
        assert "Welcome to sk8s" not in out, out
        # the host itself still reaches the admin sandbox, and the listener works
        with socket.create_connection(("127.0.0.1", port), timeout=3) as c:
            assert c.recv(100).startswith(b"HOST-SERVICE")
    finally:
        listener.close()
        delete_cluster(meta, "netreach")
