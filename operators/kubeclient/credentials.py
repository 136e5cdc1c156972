"""Where an apiserver is and how to prove who we are to it: a kubeconfig file, the
pod's service account (in-cluster), or a PKI directory of sk8s's own (ca.crt and a
client certificate pair, as tenant control planes keep theirs).

Everything is resolved once, into an ssl context and headers, so that a client never
reads a file while it serves requests.
"""
from __future__ import annotations

import base64
import os
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from ..config import in_cluster_apiserver, kubeconfig_path

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class KubeconfigError(Exception):
    pass


@dataclass
class Credentials:
    server: str
    ssl: ssl.SSLContext | bool
    headers: dict[str, str]
    ca: bytes | None = None  # the server's CA (PEM), for kubeconfigs written for others


def _material(entry: dict, key: str, base: str) -> bytes | None:
    """kubeconfig fields come as `<key>-data` (base64) or `<key>` (a path relative to the file)."""
    if entry.get(f"{key}-data"):
        return base64.b64decode(entry[f"{key}-data"])
    if entry.get(key):
        path = os.path.join(base, os.path.expanduser(entry[key]))
        with open(path, "rb") as f:
            return f.read()
    return None


def load_kubeconfig(path: str) -> Credentials:
    try:
        with open(path) as f:
            cfg = yaml.safe_load(f) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise KubeconfigError(f"{path}: {exc}") from exc
    base = os.path.dirname(os.path.abspath(path))

    def named(section: str, name: str | None) -> dict:
        for item in cfg.get(section) or []:
            if item.get("name") == name:
                return item.get(section[:-1]) or {}
        raise KubeconfigError(f"{path}: no {section[:-1]} named {name!r}")

    ctx_name = cfg.get("current-context") or ((cfg.get("contexts") or [{}])[0].get("name"))
    ctx = named("contexts", ctx_name)
    cluster = named("clusters", ctx.get("cluster"))
    user = named("users", ctx.get("user")) if ctx.get("user") else {}
    server = (cluster.get("server") or "").rstrip("/")
    if not server:
        raise KubeconfigError(f"{path}: cluster {ctx.get('cluster')!r} has no server")
    headers: dict[str, str] = {}
    sslctx: ssl.SSLContext | bool = False
    ca = None
    if urlsplit(server).scheme == "https":
        try:
            ca = _material(cluster, "certificate-authority", base)
            sslctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cadata=ca.decode() if ca else None)
            if cluster.get("insecure-skip-tls-verify"):
                sslctx.check_hostname = False
                sslctx.verify_mode = ssl.CERT_NONE
            cert, key = _material(user, "client-certificate", base), _material(user, "client-key", base)
            if cert and key:
                _load_chain(sslctx, cert, key)
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise KubeconfigError(f"{path}: {exc}") from exc
    token = user.get("token")
    if not token and user.get("tokenFile"):
        with open(os.path.join(base, user["tokenFile"])) as f:
            token = f.read().strip()
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return Credentials(server, sslctx, headers, ca)


def _load_chain(ctx: ssl.SSLContext, cert: bytes, key: bytes) -> None:
    # ssl only loads key material from files: write it to a private file for the call only.
    with tempfile.TemporaryDirectory(prefix="sk8s-vn-") as d:
        os.chmod(d, 0o700)
        cf, kf = os.path.join(d, "c.pem"), os.path.join(d, "k.pem")
        for p, data in ((cf, cert), (kf, key)):
            fd = os.open(p, os.O_WRONLY | os.O_CREAT, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        ctx.load_cert_chain(cf, kf)


def in_cluster(server: str, account: Path = SERVICE_ACCOUNT) -> Credentials:
    """The pod's service account, as client-go's rest.InClusterConfig reads it."""
    try:
        token = (account / "token").read_text().strip()
        ca = (account / "ca.crt").read_bytes()
    except OSError as exc:
        raise KubeconfigError(f"in-cluster service account: {exc}") from exc
    return Credentials(server, ssl.create_default_context(cadata=ca.decode()),
                       {"Authorization": f"Bearer {token}"}, ca)


def from_pki(server: str, pki: Path, user: str = "admin") -> Credentials:
    """A client certificate `<user>.crt`/`.key` and the CA `ca.crt` of one PKI directory."""
    ca = (pki / "ca.crt").read_bytes()
    ctx = ssl.create_default_context(cadata=ca.decode())
    ctx.load_cert_chain(str(pki / f"{user}.crt"), str(pki / f"{user}.key"))
    return Credentials(server.rstrip("/"), ctx, {}, ca)


def default_credentials() -> Credentials:
    """In-cluster when running as a pod without KUBECONFIG, else the default kubeconfig
    ($KUBECONFIG or ~/.kube/config), as the `kubernetes` package and kubectl choose."""
    server = in_cluster_apiserver()
    return in_cluster(server) if server else load_kubeconfig(str(kubeconfig_path()))
