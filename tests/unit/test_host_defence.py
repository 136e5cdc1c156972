"""Defence in depth on the host and tenant availability: etcd TLS, component command
lines, restart back-off, the Node of a dead virtual node, `sk8s status` rows (pure or on a temp dir)."""
import asyncio
import datetime as dt
import json
import ssl
from pathlib import Path

import pytest
from cryptography import x509

from operators.config import Layout, Ports
from operators.embedded import components, etcd_pki, pki
from operators.serverlesscluster import controlplane as cp
from operators.serverlesscluster import node_health, plane_status, planes
from operators.serverlesscluster.restarts import RestartBackoff

PORTS = Ports(etcd_client=22379, etcd_peer=22380, apiserver=22443)
LAY = Layout(Path("/h"))
T = cp.Tenant(directory=Path("/h/planes/p1"), ports=cp.TenantPorts(21000, 21001),
              etcd_url="https://127.0.0.1:22379", etcd_prefix="/sk8s/tenants/p1", name="c1")


def flags(argv: list[str]) -> dict[str, str]:
    return dict(a[2:].split("=", 1) for a in argv if a.startswith("--") and "=" in a)


def test_etcd_serves_tls_only_to_its_own_clients():
    comp = components.etcd(Path("/bin"), LAY, PORTS)
    f = flags(comp.argv)
    assert f["listen-client-urls"] == f["advertise-client-urls"] == "https://127.0.0.1:22379"
    assert f["listen-peer-urls"] == "https://127.0.0.1:22380"
    assert f["client-cert-auth"] == "true" and f["peer-client-cert-auth"] == "true"
    assert f["trusted-ca-file"] == f["peer-trusted-ca-file"] == "/h/pki/etcd/ca.crt"
    assert f["cert-file"] == "/h/pki/etcd/server.crt" and f["peer-cert-file"] == "/h/pki/etcd/peer.crt"
    assert f["listen-metrics-urls"] == ""
    assert not any("http://" in a for a in comp.argv)
    assert comp.health_url.startswith("https://") and comp.tls == "etcd"


def test_meta_apiserver_reaches_etcd_with_its_client_cert_and_refuses_anonymous():
    comp = components.apiserver(Path("/bin"), LAY, PORTS)
    f = flags(comp.argv)
    assert f["etcd-servers"] == "https://127.0.0.1:22379"
    assert f["etcd-cafile"] == "/h/pki/etcd/ca.crt"
    assert f["etcd-certfile"] == "/h/pki/etcd/apiserver-etcd-client.crt"
    assert f["etcd-keyfile"] == "/h/pki/etcd/apiserver-etcd-client.key"
    assert f["anonymous-auth"] == "false" and f["bind-address"] == "127.0.0.1"


def test_tenant_apiserver_has_its_own_etcd_client_cert():
    f = flags(cp.apiserver_args(Path("/bin"), T))
    assert f["etcd-servers"] == "https://127.0.0.1:22379"
    assert f["etcd-cafile"] == "/h/planes/p1/pki/etcd-ca.crt"
    assert f["etcd-certfile"] == "/h/planes/p1/pki/etcd-client.crt"
    assert f["etcd-keyfile"] == "/h/planes/p1/pki/etcd-client.key"
    # Anonymous requests keep upstream's meaning in a tenant: RBAC lets them read health only.
    assert f["anonymous-auth"] == "true" and f["bind-address"] == "127.0.0.1"
    assert T.etcd_cn == "sk8s-plane-p1"


def test_controller_managers_serve_no_port():
    for argv in (components.controller_manager(Path("/bin"), LAY).argv, cp.controller_manager_args(Path("/bin"), T)):
        f = flags(argv)
        assert f["secure-port"] == "0" and f["bind-address"] == "127.0.0.1"


def test_operators_liveness_and_etcd_url_are_loopback():
    for comp in components.operators(LAY, PORTS):
        assert comp.health_url.startswith("http://127.0.0.1:")
        assert comp.env["SK8S_ETCD_URL"] == "https://127.0.0.1:22379"


def _verify(ca_pem: bytes, cert_pem: bytes) -> bool:
    ca = x509.load_pem_x509_certificate(ca_pem)
    cert = x509.load_pem_x509_certificate(cert_pem)
    try:
        cert.verify_directly_issued_by(ca)
        return True
    except Exception:
        return False


def test_etcd_pki_is_its_own_ca_and_is_made_for_an_old_home(tmp_path):
    meta = tmp_path / "pki"
    pki.ensure_control_plane_pki(meta, name="m", sans_dns=["localhost"], sans_ip=["127.0.0.1"])
    d = etcd_pki.etcd_pki_dir(meta)
    assert etcd_pki.ensure_etcd_pki(d) is True  # an old home: only the control-plane set existed
    assert etcd_pki.ensure_etcd_pki(d) is False  # idempotent
    ca = (d / "ca.crt").read_bytes()
    assert ca != (meta / "ca.crt").read_bytes()
    for stem in ("server", "peer", "apiserver-etcd-client", "healthcheck-client"):
        assert _verify(ca, (d / f"{stem}.crt").read_bytes()), stem
        assert (d / f"{stem}.key").stat().st_mode & 0o077 == 0
    # The meta apiserver's own client certs are not etcd's.
    assert not _verify(ca, (meta / "admin.crt").read_bytes())
    # A serving cert usable by the gateway (server and client usage), for 127.0.0.1.
    server = x509.load_pem_x509_certificate((d / "server.crt").read_bytes())
    eku = server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert len(list(eku)) == 2
    # A half-made set (interrupted) is completed with the same CA.
    (d / "healthcheck-client.key").unlink()
    assert etcd_pki.ensure_etcd_pki(d) is True and (d / "ca.crt").read_bytes() == ca
    ssl.create_default_context(cafile=str(d / "ca.crt")).load_cert_chain(
        str(d / "healthcheck-client.crt"), str(d / "healthcheck-client.key"))


def test_a_plane_gets_a_client_cert_of_etcd_not_of_its_tenant_ca(tmp_path):
    d = tmp_path / "etcd"
    etcd_pki.ensure_etcd_pki(d)
    target = tmp_path / "plane" / "pki"
    etcd_pki.ensure_client(d, target, "sk8s-plane-p1")
    first = (target / "etcd-client.crt").read_bytes()
    etcd_pki.ensure_client(d, target, "sk8s-plane-p1")
    assert (target / "etcd-client.crt").read_bytes() == first
    assert (target / "etcd-ca.crt").read_bytes() == (d / "ca.crt").read_bytes()
    assert _verify((d / "ca.crt").read_bytes(), first)
    cert = x509.load_pem_x509_certificate(first)
    assert cert.subject.rfc4514_string() == "CN=sk8s-plane-p1"
    # etcd's CA replaced (its directory lost): the plane's certificate follows.
    import shutil
    shutil.rmtree(d)
    etcd_pki.ensure_etcd_pki(d)
    etcd_pki.ensure_client(d, target, "sk8s-plane-p1")
    assert _verify((d / "ca.crt").read_bytes(), (target / "etcd-client.crt").read_bytes())


def test_restart_backoff_doubles_and_forgives():
    b = RestartBackoff(base=10, cap=40, stable=120)
    assert b.due_in(0) == 0
    b.started(0)
    assert b.due_in(3) == 7   # died again at once: not before 10 s after the last start
    b.started(10)
    assert b.due_in(12) == 18  # then 20 s
    b.started(30)
    b.started(70)
    assert b.delay() == 40    # capped
    assert b.due_in(75) == 35
    b.started(110)
    assert b.due_in(300) == 0 and b.restarts == 0  # it stayed up 190 s: forgiven, restarted at once


def test_lease_expiry():
    now = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.timezone.utc)
    lease = {"spec": {"renewTime": "2026-01-01T11:59:30.000000Z", "leaseDurationSeconds": 40}}
    assert not node_health.lease_expired(lease, now)
    assert node_health.lease_expired(lease, now + dt.timedelta(seconds=11))
    assert not node_health.lease_expired(None, now) and not node_health.lease_expired({"spec": {}}, now)


def test_a_dead_virtual_nodes_conditions_go_unknown_once():
    ready = [{"type": "Ready", "status": "True", "lastHeartbeatTime": "h", "lastTransitionTime": "t"},
             {"type": "MemoryPressure", "status": "False", "lastHeartbeatTime": "h", "lastTransitionTime": "t"}]
    patch = node_health.unknown_status_patch(ready, now="N")
    conds = {c["type"]: c for c in patch["status"]["conditions"]}
    assert set(conds) == set(node_health.NODE_CONDITIONS)
    assert all(c["status"] == "Unknown" and c["reason"] == "NodeStatusUnknown" for c in conds.values())
    assert conds["Ready"]["lastTransitionTime"] == "N" and conds["Ready"]["lastHeartbeatTime"] == "h"
    assert node_health.unknown_status_patch(patch["status"]["conditions"]) is None


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("SK8S_HOME", str(tmp_path))
    return tmp_path


def test_status_rows_of_standby_and_claimed_planes(home):
    standby = planes.new_plane()
    claimed = planes.new_plane(claim_for="uid-1")
    (claimed.directory / "virtual-node.args").write_text(json.dumps(["--cluster=c1", "--port=1"]))
    rows = asyncio.run(plane_status.all_rows({"uid-1": "team/c1"}, timeout=0.1))
    assert len(rows) == 6
    by = {(r.plane, r.component): r for r in rows}
    assert by[(standby.id, "kube-apiserver")].cluster == "(standby)"
    assert by[(claimed.id, "virtual-node")].cluster == "team/c1"
    assert all(r.health == "down" and r.pid is None for r in rows)  # nothing runs in a temp dir
    assert by[(claimed.id, "kube-apiserver")].endpoint == f"https://127.0.0.1:{claimed.apiserver_port}"
    # Without the meta apiserver's answer, the name the virtual node was given.
    assert {r.cluster for r in asyncio.run(plane_status.all_rows({}, timeout=0.1)) if r.plane == claimed.id} == {"c1"}


def test_a_plane_process_of_an_older_command_line_is_replaced(tmp_path):
    import sys
    from operators.embedded.processes import ProcessSet, cmdline, same_program
    procs = ProcessSet(tmp_path)
    old = [sys.executable, "-c", "import time; time.sleep(60)", "old-flags"]
    new = [sys.executable, "-c", "import time; time.sleep(60)", "new-flags"]
    try:
        first = procs.start("c", old)
        assert procs.start("c", old) == first  # the same command line: left running
        second = procs.start("c", new)
        assert second != first and cmdline(second) == new
        assert procs.pid("c") == second
    finally:
        procs.stop_all(timeout=2)
    assert same_program(["/a/kube-apiserver", "--x"], ["/b/kube-apiserver", "--y"])
    assert not same_program(["/usr/bin/sleep", "9"], ["/b/kube-apiserver"])
    assert not same_program([sys.executable, "-m", "other"], [sys.executable, "-m", "operators.virtualnode"])
    assert not same_program([], ["/b/kube-apiserver"])
