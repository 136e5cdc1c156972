"""Admin kubeconfigs with embedded credentials."""
from __future__ import annotations

import base64
from pathlib import Path

import yaml


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def build_kubeconfig(*, name: str, server: str, ca_pem: bytes, cert_pem: bytes, key_pem: bytes,
                     user: str = "admin") -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": {"server": server, "certificate-authority-data": _b64(ca_pem)}}],
        "users": [{"name": f"{name}-{user}", "user": {"client-certificate-data": _b64(cert_pem),
                                                   "client-key-data": _b64(key_pem)}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": f"{name}-{user}"}}],
        "current-context": name,
    }


def write_kubeconfig(path: Path, config: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(config, sort_keys=False))
    tmp.chmod(0o600)
    tmp.replace(path)
    return path
