"""The `pods` runner (config.plane_runner): tenant control planes as workloads of the meta-cluster.

The operator keeps a plane's files in its own state directory as the host runner does
(its PKI, the kubeconfigs it uses itself), but nothing runs there: `create` applies the
objects podplane.py builds, `claim` creates the claim Secret the plane's waiting virtual
node reads, `destroy` deletes them. The meta-cluster's kubelet keeps the containers
running (`KubeletManaged`), so the health tick only checks the apiserver and the Node.

The meta-cluster is also where a plane's state survives the operator: its credentials
Secret holds the PKI and `plane.json`, the claim Secret names its cluster. An operator
Pod that starts with an empty state directory writes the planes back from them
(`restore`), so a rolled operator Deployment finds every cluster's plane again.
"""
from __future__ import annotations

import base64
import json
import logging
import os
from pathlib import Path

import yaml

from .. import config, kube
from ..datastore import auth as datastore
from ..embedded.kubeconfig import build_kubeconfig
from ..embedded.pki import load
from ..kubeclient.client import ApiError
from ..models.contracts import LABEL_CLAIMED_BY, LABEL_PLANE
from . import controlplane as cp
from . import planes, podplane

log = logging.getLogger(__name__)
FIELD_MANAGER = "sk8s-serverlesscluster"
PLANE_FILE = "plane.json"
META_KUBECONFIG = "meta.kubeconfig"  # cluster.write_meta_credentials' file, the claim's key
# Where each kind of object a plane has lives in the API (podplane.py makes no other).
_PATHS = {"ServiceAccount": ("/api/v1", "serviceaccounts"), "Secret": ("/api/v1", "secrets"),
          "ConfigMap": ("/api/v1", "configmaps"), "Service": ("/api/v1", "services"),
          "Role": ("/apis/rbac.authorization.k8s.io/v1", "roles"),
          "RoleBinding": ("/apis/rbac.authorization.k8s.io/v1", "rolebindings"),
          "Deployment": ("/apis/apps/v1", "deployments")}
# Deleted in this order: the Deployment first, so no Pod is left mounting what goes next.
DELETE_ORDER = ("Deployment", "Service", "ConfigMap", "Secret", "RoleBinding", "Role", "ServiceAccount")


class KubeletManaged:
    """A plane's containers, as the health tick sees them: the kubelet restarts what dies,
    so nothing is started or stopped here, and the Node's lease says whether the virtual
    node lives (an age past any grace: its lease is always checked)."""

    def running(self, name: str) -> bool:
        return True

    def age(self, name: str) -> float:
        return float("inf")

    def stop(self, name: str, timeout: float = 10.0) -> None:
        pass

    def stop_all(self, order=(), timeout: float = 10.0) -> None:
        pass


def object_path(obj: dict, name: str | None = None) -> str:
    base, plural = _PATHS[obj["kind"]]
    ns = obj["metadata"]["namespace"]
    return f"{base}/namespaces/{ns}/{plural}" + (f"/{name}" if name else "")


def pki_files(t: cp.Tenant) -> dict[str, bytes]:
    """The plane's PKI directory as Secret data (its regular files only)."""
    return {p.name: p.read_bytes() for p in sorted(t.pki.iterdir()) if p.is_file()}


def pod_kubeconfigs(t: cp.Tenant) -> dict[str, dict]:
    """The components' kubeconfigs as they run in the Pod: the apiserver at the Pod's loopback."""
    ca = (t.pki / "ca.crt").read_bytes()
    server = f"https://127.0.0.1:{podplane.APISERVER_PORT}"
    users = [u for u in podplane.KUBECONFIG_USERS if (t.pki / f"{u}.key").exists()]
    return {u: build_kubeconfig(name="sk8s-tenant", server=server, ca_pem=ca, cert_pem=load(t.pki, u).cert_pem,
                                key_pem=load(t.pki, u).key_pem, user=u) for u in users}


def plane_record(plane: planes.Plane) -> bytes:
    return (plane.directory / PLANE_FILE).read_bytes()


def images() -> podplane.PlaneImages:
    controlplane, operator = config.plane_images()
    return podplane.PlaneImages(controlplane=controlplane, operator=operator)


async def create(t: cp.Tenant, plane: planes.Plane) -> None:
    """Apply every object of a standby plane (idempotent: server-side apply)."""
    ns = config.plane_namespace()
    await kube.ensure_namespace(ns, {"app.kubernetes.io/part-of": "sk8s"})
    files = {**pki_files(t), PLANE_FILE: plane_record(plane)}
    flags = datastore.TENANT_APISERVER_FLAGS if config.etcd_auth() else ()
    for obj in podplane.build_plane_objects(t, plane.id, ns, t.etcd_url, files, pod_kubeconfigs(t), images(), flags):
        await kube.client().apply(object_path(obj, obj["metadata"]["name"]), obj, FIELD_MANAGER)


async def claim(t: cp.Tenant, plane: planes.Plane, meta_kubeconfig: Path) -> None:
    """Hand the plane's waiting virtual node its cluster. Creating the Secret is the claim: one
    that exists already is accepted only if it names this cluster."""
    ns = config.plane_namespace()
    secret = podplane.build_claim_secret(t, plane.id, ns, t.etcd_url, yaml.safe_load(meta_kubeconfig.read_text()))
    try:
        await kube.client().create(object_path(secret), secret)
    except ApiError as exc:
        if exc.status != 409:
            raise
        found = await kube.read_secret(ns, secret["metadata"]["name"]) or {}
        owner = ((found.get("metadata") or {}).get("labels") or {}).get(LABEL_CLAIMED_BY)
        if owner != t.uid:
            raise RuntimeError(f"plane {plane.id} is claimed by {owner!r}, not by cluster {t.uid}") from exc
        if found.get("data") != secret["data"]:  # arguments of an earlier version: the node restarts
            await kube.apply_secret(ns, secret)
            await delete_pods(plane.id)


async def delete_pods(plane_id: str) -> None:
    ns = config.plane_namespace()
    await kube.client().request("DELETE", f"/api/v1/namespaces/{ns}/pods",
                                params={"labelSelector": f"{LABEL_PLANE}={plane_id}"})


async def destroy(plane_id: str) -> None:
    """Delete every object of a plane (already gone is fine)."""
    ns = config.plane_namespace()
    names = {"Secret": [podplane.object_name(plane_id), podplane.claim_name(plane_id)]}
    for kind in DELETE_ORDER:
        for name in names.get(kind, [podplane.object_name(plane_id)]):
            path = object_path({"kind": kind, "metadata": {"namespace": ns}}, name)
            try:
                await kube.client().request("DELETE", path, params={"propagationPolicy": "Background"})
            except ApiError as exc:
                if exc.status != 404:
                    raise


async def restore() -> int:
    """Write back the planes the meta-cluster holds and this state directory lacks (an
    operator Pod starts with an empty one); the number written."""
    ns = config.plane_namespace()
    listing = await kube.client().get(f"/api/v1/namespaces/{ns}/secrets", labelSelector=LABEL_PLANE)
    secrets = listing.get("items") or []
    claims = {s["metadata"]["labels"][LABEL_PLANE]: s for s in secrets if s["metadata"]["name"].endswith("-claim")}
    restored = 0
    for s in secrets:
        data = _decoded(s)
        if s["metadata"]["name"].endswith("-claim") or PLANE_FILE not in data:
            continue
        claim = claims.get(s["metadata"]["labels"][LABEL_PLANE])
        owner = claim["metadata"]["labels"].get(LABEL_CLAIMED_BY) if claim else None
        if write_plane(planes.planes_root(), data, owner, _decoded(claim).get(META_KUBECONFIG) if claim else None):
            restored += 1
    return restored


def _decoded(secret: dict) -> dict[str, bytes]:
    return {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}


def write_plane(root: Path, data: dict[str, bytes], claimed_by: str | None, meta_kubeconfig: bytes | None = None) -> bool:
    """One plane's directory from its credentials Secret (and a claimed one's meta-cluster
    kubeconfig from its claim: the same token, so its virtual node's arguments stay the same
    and its Pod is not restarted); False if it is there already."""
    record = json.loads(data[PLANE_FILE])
    directory = root / planes.safe_id(record["id"])
    if (directory / PLANE_FILE).exists():
        return False
    pki = directory / "pki"
    pki.mkdir(parents=True, exist_ok=True)
    pki.chmod(0o700)
    for name, content in data.items():
        if name != PLANE_FILE and not name.endswith(".kubeconfig") and "/" not in name:
            (pki / name).write_bytes(content)
    if claimed_by:
        (directory / planes.CLAIM).write_text(claimed_by)
    if meta_kubeconfig:
        fd = os.open(directory / META_KUBECONFIG, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(meta_kubeconfig)
    (directory / "warm").touch()
    (directory / PLANE_FILE).write_bytes(data[PLANE_FILE])  # last: the directory is complete
    return True
