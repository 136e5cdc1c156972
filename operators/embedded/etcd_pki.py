"""The meta etcd's own CA: TLS on its client and peer ports, and a client certificate for
every apiserver that stores data in it (the meta apiserver and each tenant plane's).

etcd refuses any connection without a certificate of this CA (`--client-cert-auth`), so
a process on this host that reaches its port (a probe, a tenant's request smuggled
through some proxy) can neither read nor write a key. The tenant CAs are different CAs:
a tenant's own certificates open nothing here.
"""
from __future__ import annotations

from pathlib import Path

from . import pki

CA = "ca"
SERVER = "server"
PEER = "peer"
APISERVER_CLIENT = "apiserver-etcd-client"
HEALTHCHECK_CLIENT = "healthcheck-client"
# The file names of a client set copied into another directory (a tenant plane's PKI).
CLIENT_CA_FILE = "etcd-ca.crt"
CLIENT_STEM = "etcd-client"


def etcd_pki_dir(meta_pki: Path) -> Path:
    return meta_pki / "etcd"


def ensure_etcd_pki(directory: Path) -> bool:
    """CA, serving certs and the meta-side client certs. Idempotent; an installation made
    before etcd had TLS gets them at its next `sk8s up`. True when something was made."""
    if (directory / f"{HEALTHCHECK_CLIENT}.key").exists():
        return False
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    if (directory / f"{CA}.key").exists():
        ca = pki.load(directory, CA)
    else:
        ca = pki.make_ca("sk8s-etcd-ca")
        pki.write(ca, directory, CA)
    local = dict(dns=["localhost"], ips=["127.0.0.1"])
    # etcd's HTTP/JSON gateway dials etcd's own gRPC port with the serving certificate,
    # which therefore also needs the client usage.
    pki.write(pki.issue(ca, "etcd-server", server=True, client=True, **local), directory, SERVER)
    pki.write(pki.issue(ca, "etcd-peer", server=True, client=True, **local), directory, PEER)
    pki.write(pki.issue(ca, "kube-apiserver-etcd-client", client=True), directory, APISERVER_CLIENT)
    # Written last: its presence marks a complete set.
    pki.write(pki.issue(ca, "sk8s-etcd-healthcheck", client=True), directory, HEALTHCHECK_CLIENT)
    return True


def ensure_client(etcd_dir: Path, target: Path, cn: str) -> None:
    """A client certificate of this etcd in `target` (etcd-ca.crt, etcd-client.crt/.key).

    Idempotent; a tenant plane made before etcd had TLS gets one when its apiserver is
    next started."""
    ca = pki.load(etcd_dir, CA)
    try:
        current = (target / CLIENT_CA_FILE).read_bytes() == ca.cert_pem
    except FileNotFoundError:
        current = False
    if current and (target / f"{CLIENT_STEM}.key").exists():
        return  # (one of a CA that was since replaced is issued anew)
    target.mkdir(parents=True, exist_ok=True)
    (target / CLIENT_CA_FILE).write_bytes(ca.cert_pem)
    pki.write(pki.issue(ca, cn, client=True), target, CLIENT_STEM)
