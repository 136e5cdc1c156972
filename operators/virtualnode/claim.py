"""How a standby virtual node in a plane Pod learns which cluster it serves.

On a real meta-cluster a warm plane's Pod starts before any cluster claims it
(serverlesscluster/podplane.py). Its virtual node pays its imports, then polls for the
claim Secret: the operator creates it when a cluster claims the plane, with the node's
arguments and its meta-cluster kubeconfig. The Pod's ServiceAccount may `get` that one
Secret and nothing else, so the poll needs no other right; the files are written into the
plane's emptyDir, where the embedded runner's standby node finds its arguments too.
"""
from __future__ import annotations

import base64
import json
import os
import ssl
import time
import urllib.error
import urllib.request
from pathlib import Path

from ..config import in_cluster_apiserver

SA_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
POLL_SECONDS = 0.2
META_KUBECONFIG = "meta.kubeconfig"


def fetch_claim(name: str, server: str, sa_dir: Path = SA_DIR, timeout: float = 5) -> dict | None:
    """The claim Secret's data (decoded), or None while it does not exist."""
    namespace = (sa_dir / "namespace").read_text().strip()
    token = (sa_dir / "token").read_text().strip()
    ctx = ssl.create_default_context(cafile=str(sa_dir / "ca.crt"))
    req = urllib.request.Request(f"{server}/api/v1/namespaces/{namespace}/secrets/{name}",
                                 headers={"Authorization": f"Bearer {token}", "Accept": "application/json"})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=timeout) as resp:
            body = json.load(resp)
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise
    return {k: base64.b64decode(v) for k, v in (body.get("data") or {}).items()}


def write_private(path: Path, content: bytes) -> None:
    """Atomically, owner-only: the waiting reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(content)
    tmp.replace(path)


def install_claim(data: dict, args_path: Path) -> None:
    """The meta kubeconfig first: the arguments name it, and their file is what the node waits for."""
    if "args" not in data or META_KUBECONFIG not in data:
        raise ValueError("the claim Secret lacks `args` or `meta.kubeconfig`")
    json.loads(data["args"])  # a list of arguments, or the claim is refused here
    write_private(args_path.parent / META_KUBECONFIG, data[META_KUBECONFIG])
    write_private(args_path, data["args"])


def await_claim(name: str, args_path: Path, sa_dir: Path = SA_DIR) -> None:
    server = in_cluster_apiserver()
    if server is None:
        raise SystemExit("virtual node: --claim-secret needs to run in a Pod (no KUBERNETES_SERVICE_HOST)")
    while not args_path.exists():
        try:
            data = fetch_claim(name, server, sa_dir)
        except (OSError, urllib.error.URLError, ValueError) as exc:
            print(f"virtual node: reading claim {name}: {exc}", flush=True)
            data = None
        if data is not None:
            install_claim(data, args_path)
            return
        time.sleep(POLL_SECONDS)
