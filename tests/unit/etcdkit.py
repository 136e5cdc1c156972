"""A real etcd for datastore tests: TLS on loopback ports, client certificates required,
certificates of a datastore CA (operators.datastore.pki) made in a temporary directory.

Uses the etcd that hack/build-components.sh caches (never triggers a build); tests skip
when there is none. Started as the StatefulSet starts it (manifests.etcd_flags), but with
loopback URLs and without fsync."""
from __future__ import annotations

import contextlib
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from operators.config import free_port, sk8s_cache
from operators.datastore import pki as dpki
from operators.datastore.client import EtcdAuthClient
from operators.datastore.manifests import etcd_flags
from operators.embedded import pki


def cached_etcd() -> Path | None:
    found = sorted((sk8s_cache() / "bin").glob("k8s-*/etcd"), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


@dataclass
class Etcd:
    url: str
    directory: Path
    ca: pki.KeyPair

    def credentials(self, user: str) -> tuple[Path, Path, Path]:
        """(CA, certificate, key) of a client certificate with CN `user`, made on first use."""
        crt = self.directory / f"{user}.crt"
        if not crt.exists():
            pki.write(pki.issue(self.ca, user, client=True), self.directory, user)
        return self.directory / "ca.crt", crt, self.directory / f"{user}.key"

    def client(self, user: str) -> EtcdAuthClient:
        return EtcdAuthClient(self.url, *self.credentials(user))


def _wait_for_tls(port: int, context: ssl.SSLContext, proc: subprocess.Popen, deadline: float) -> None:
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                with context.wrap_socket(sock, server_hostname="127.0.0.1"):
                    return
        except (OSError, ssl.SSLError):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"etcd did not come up (exit {proc.poll()})") from None
            time.sleep(0.05)


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def running_etcd(binary: Path, directory: Path):
    ca = dpki.make_ca()
    pki.write(ca, directory, "ca")
    pki.write(dpki.issue_member(ca, "sk8s-system"), directory, "member")
    client, peer = free_port(), free_port()
    client = free_port({client, peer}) if client == peer else client
    argv = [str(binary), *etcd_flags(
        name="test", data_dir=str(directory / "data"), tls_dir=str(directory), cert_stem="member",
        client_url=f"https://127.0.0.1:{client}", peer_url=f"https://127.0.0.1:{peer}",
        listen_client=f"https://127.0.0.1:{client}", listen_peer=f"https://127.0.0.1:{peer}",
        initial_cluster=f"test=https://127.0.0.1:{peer}", metrics_url=""), "--unsafe-no-fsync=true"]
    log = (directory / "etcd.log").open("wb")
    proc = subprocess.Popen(argv, stdout=log, stderr=log)
    try:
        etcd = Etcd(f"https://127.0.0.1:{client}", directory, ca)
        ctx = ssl.create_default_context(cafile=str(directory / "ca.crt"))
        ctx.load_cert_chain(*map(str, etcd.credentials("root")[1:]))
        _wait_for_tls(client, ctx, proc, time.monotonic() + 30)
        yield etcd
    finally:
        stop(proc)
        log.close()
