"""A tenant control plane as workloads of a real meta-cluster: pure builders, unit-tested.

Embedded mode runs the command lines of `controlplane.py` as processes of the operator's
host. On a platform team's Kubernetes the same argument lists, rendered for paths inside
a Pod (`pod_tenant`), become the containers of one Deployment per plane: one design, two
runners.

- One Pod holds kube-apiserver, kube-controller-manager (and kube-scheduler for a cluster
  of several virtual nodes) from the control-plane image, and the virtual node from the
  operator image. They share the Pod's loopback and one emptyDir (`PLANE_DIR`): the
  apiserver reaches the virtual node's kubelet endpoint at 127.0.0.1 and its egress proxy
  through the Unix socket there, so a tenant's webhook URL still goes nowhere but the
  tenant's own network (egress.py); the audit log (idle clock) is written there too.
- Credentials: the plane's PKI and its components' kubeconfigs in one Secret
  (`<plane>`), mounted read-only; the egress selector and audit policy in a ConfigMap.
- Endpoint: a ClusterIP Service, port 443 to the apiserver's 6443. The apiserver binds
  0.0.0.0 inside its Pod's network namespace (there is no host port to guard).
- Storage: the datastore (operators/datastore), an etcd of sk8s' own, with a user per plane
  whose role covers only its prefix.
- Standby: a warm plane's Deployment runs before any cluster exists; its virtual node
  waits for the claim Secret (`<plane>-claim`: its arguments and its meta-cluster
  kubeconfig), which only the plane's own ServiceAccount may read. Creating that Secret is
  the claim: a second claim of the same plane fails with AlreadyExists.
- A Deployment of one replica, Recreate: two virtual nodes of one tenant must never run at
  once. When its node is lost, the meta-cluster reschedules the Pod (tolerations of
  not-ready/unreachable nodes are short), and the tenant keeps its data in the datastore.
"""
from __future__ import annotations

import base64
import json
from dataclasses import dataclass, replace
from pathlib import Path

import yaml

from ..models.contracts import LABEL_CLAIMED_BY, LABEL_PLANE
from . import controlplane as cp
from . import egress, idle

PLANE_DIR = Path("/var/run/sk8s/plane")
BIN = Path("/usr/local/bin")
APISERVER_PORT = 6443
KUBELET_PORT = 10250
SERVICE_PORT = 443
LABEL_COMPONENT = "app.kubernetes.io/component"
RUN_AS = 10001
# A lost node: the Pod moves after this long instead of the default five minutes.
EVICT_AFTER_SECONDS = 15
KUBECONFIG_USERS = ("controller-manager", "virtual-node", "scheduler")


@dataclass(frozen=True)
class PlaneImages:
    controlplane: str = "localhost/sk8s-controlplane:latest"
    operator: str = "localhost/sk8s-operator:latest"
    pull_policy: str = "IfNotPresent"


def object_name(plane_id: str) -> str:
    """Every object of one plane has this name (the claim Secret adds `-claim`)."""
    return f"sk8s-plane-{plane_id}"


def claim_name(plane_id: str) -> str:
    return f"{object_name(plane_id)}-claim"


def service_host(plane_id: str, namespace: str) -> str:
    return f"{object_name(plane_id)}.{namespace}.svc"


def endpoint(plane_id: str, namespace: str) -> str:
    """Where the operator and in-cluster clients reach a plane's apiserver."""
    return f"https://{service_host(plane_id, namespace)}:{SERVICE_PORT}"


def serving_names(host: str) -> list[str]:
    """Extra DNS names of the apiserver's serving certificate: its Service's (`host` is
    <service>.<namespace>.svc), short and long."""
    service, namespace = host.split(".")[:2]
    return [service, f"{service}.{namespace}", host, f"{host}.cluster.local"]


def pod_tenant(t: cp.Tenant, etcd_url: str) -> cp.Tenant:
    """The same tenant as its Pod sees it: files under PLANE_DIR, the standard ports."""
    return replace(t, directory=PLANE_DIR, ports=cp.TenantPorts(APISERVER_PORT, KUBELET_PORT), etcd_url=etcd_url)


def _in_pod(argv: list[str]) -> list[str]:
    """The apiserver of a Pod listens on the Pod's address (its Service's backend)."""
    return ["--bind-address=0.0.0.0" if a == "--bind-address=127.0.0.1" else a for a in argv]


def _env(values: dict[str, str]) -> list[dict]:
    return [{"name": k, "value": v} for k, v in sorted(values.items())]


def _restricted() -> dict:
    return {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]}}


def _mounts(pt: cp.Tenant, name: str, users: tuple[str, ...]) -> list[dict]:
    mounts = [{"name": "plane", "mountPath": str(PLANE_DIR)},
              {"name": "credentials", "mountPath": str(pt.pki), "readOnly": True}]
    mounts += [{"name": "credentials", "mountPath": str(pt.kubeconfig(u)), "subPath": f"{u}.kubeconfig",
                "readOnly": True} for u in users]
    if name == "kube-apiserver":
        mounts += [{"name": "config", "mountPath": str(PLANE_DIR / f), "subPath": f, "readOnly": True}
                   for f in (egress.CONFIG_FILE, idle.AUDIT_POLICY)]
    return mounts


def _container(name: str, image: str, argv: list[str], env: dict[str, str], requests: dict,
               images: PlaneImages, mounts: list[dict]) -> dict:
    return {"name": name, "image": image, "imagePullPolicy": images.pull_policy,
            "command": argv, "env": _env(env), "resources": {"requests": requests},
            "securityContext": _restricted(), "volumeMounts": mounts}


def apiserver_container(pt: cp.Tenant, images: PlaneImages, flags: tuple[str, ...] = ()) -> dict:
    c = _container("kube-apiserver", images.controlplane, _in_pod(cp.apiserver_args(BIN, pt)) + list(flags),
                   cp.APISERVER_ENV,
                   {"cpu": "100m", "memory": "256Mi"}, images, _mounts(pt, "kube-apiserver", ()))
    probe = {"httpGet": {"path": "/readyz", "port": APISERVER_PORT, "scheme": "HTTPS"},
             "periodSeconds": 2, "timeoutSeconds": 2, "failureThreshold": 3}
    c["ports"] = [{"name": "https", "containerPort": APISERVER_PORT}]
    c["readinessProbe"] = probe
    c["startupProbe"] = {**probe, "httpGet": {**probe["httpGet"], "path": "/livez"}, "periodSeconds": 1,
                         "failureThreshold": 120}
    c["livenessProbe"] = {**probe, "httpGet": {**probe["httpGet"], "path": "/livez"}, "periodSeconds": 10,
                          "timeoutSeconds": 5, "failureThreshold": 6}
    return c


def controller_manager_container(pt: cp.Tenant, images: PlaneImages) -> dict:
    return _container("kube-controller-manager", images.controlplane, cp.controller_manager_args(BIN, pt),
                      cp.KCM_ENV, {"cpu": "50m", "memory": "64Mi"}, images,
                      _mounts(pt, "kube-controller-manager", ("controller-manager",)))


def scheduler_container(pt: cp.Tenant, images: PlaneImages) -> dict:
    return _container("kube-scheduler", images.controlplane, cp.scheduler_args(BIN, pt), cp.SCHEDULER_ENV,
                      {"cpu": "20m", "memory": "48Mi"}, images, _mounts(pt, "kube-scheduler", ("scheduler",)))


def virtual_node_container(pt: cp.Tenant, plane_id: str, images: PlaneImages) -> dict:
    """A standby virtual node: it pays its imports, then waits for the claim Secret."""
    argv = ["python", "-m", "operators.virtualnode", f"--args-from={PLANE_DIR / 'virtual-node.args'}",
            f"--claim-secret={claim_name(plane_id)}"]
    c = _container("virtual-node", images.operator, argv, {"SK8S_HOME": str(PLANE_DIR / "home")},
                   {"cpu": "20m", "memory": "96Mi"}, images, _mounts(pt, "virtual-node", ("virtual-node",)))
    c["volumeMounts"].append({"name": "tmp", "mountPath": "/tmp"})
    return c


def labels(plane_id: str) -> dict[str, str]:
    return {LABEL_PLANE: plane_id, LABEL_COMPONENT: "tenant-control-plane", "app.kubernetes.io/part-of": "sk8s"}


def build_deployment(t: cp.Tenant, plane_id: str, namespace: str, etcd_url: str,
                     images: PlaneImages = PlaneImages(), apiserver_flags: tuple[str, ...] = ()) -> dict:
    """`apiserver_flags`: more flags of its apiserver (the datastore's: no compaction of its own)."""
    pt = pod_tenant(t, etcd_url)
    name = object_name(plane_id)
    containers = [apiserver_container(pt, images, apiserver_flags), controller_manager_container(pt, images)]
    if t.runs_scheduler:
        containers.append(scheduler_container(pt, images))
    containers.append(virtual_node_container(pt, plane_id, images))
    tolerations = [{"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": EVICT_AFTER_SECONDS}
                   for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")]
    pod = {
        "serviceAccountName": name,
        "enableServiceLinks": False,
        "securityContext": {"runAsNonRoot": True, "runAsUser": RUN_AS, "runAsGroup": RUN_AS, "fsGroup": RUN_AS,
                            "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": containers,
        "tolerations": tolerations,
        "volumes": [
            {"name": "plane", "emptyDir": {}},
            {"name": "tmp", "emptyDir": {}},
            {"name": "credentials", "secret": {"secretName": name, "defaultMode": 0o440}},
            {"name": "config", "configMap": {"name": name}},
        ],
    }
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels(plane_id)},
        "spec": {"replicas": 1, "strategy": {"type": "Recreate"},
                 "selector": {"matchLabels": {LABEL_PLANE: plane_id}},
                 "template": {"metadata": {"labels": labels(plane_id)}, "spec": pod}},
    }


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def build_credentials_secret(plane_id: str, namespace: str, pki_files: dict[str, bytes],
                             kubeconfigs: dict[str, dict]) -> dict:
    """The plane's PKI (file name -> bytes) and its components' kubeconfigs, in one Secret."""
    data = {name: _b64(content) for name, content in sorted(pki_files.items())}
    data.update({f"{user}.kubeconfig": _b64(yaml.safe_dump(cfg, sort_keys=False).encode())
                 for user, cfg in sorted(kubeconfigs.items())})
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": object_name(plane_id), "namespace": namespace, "labels": labels(plane_id)},
            "data": data}


def build_config_map(plane_id: str, namespace: str) -> dict:
    """The apiserver's egress selector (the socket in PLANE_DIR) and its audit policy."""
    selector = egress.egress_selector_config(egress.socket_path(PLANE_DIR))
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": object_name(plane_id), "namespace": namespace, "labels": labels(plane_id)},
            "data": {egress.CONFIG_FILE: yaml.safe_dump(selector, sort_keys=False),
                     idle.AUDIT_POLICY: yaml.safe_dump(idle.audit_policy(), sort_keys=False)}}


def build_service(plane_id: str, namespace: str) -> dict:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": object_name(plane_id), "namespace": namespace, "labels": labels(plane_id)},
            "spec": {"type": "ClusterIP", "selector": {LABEL_PLANE: plane_id},
                     "ports": [{"name": "https", "port": SERVICE_PORT, "targetPort": APISERVER_PORT}]}}


def build_access(plane_id: str, namespace: str) -> list[dict]:
    """The plane's ServiceAccount may read its own claim Secret and nothing else."""
    name = object_name(plane_id)
    meta = {"name": name, "namespace": namespace, "labels": labels(plane_id)}
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta,
         "rules": [{"apiGroups": [""], "resources": ["secrets"], "resourceNames": [claim_name(plane_id)],
                    "verbs": ["get"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": meta,
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
         "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}]},
    ]


def build_claim_secret(t: cp.Tenant, plane_id: str, namespace: str, etcd_url: str, meta_kubeconfig: dict) -> dict:
    """The claim: the virtual node's arguments for this cluster, and its meta-cluster kubeconfig
    (a token scoped to the tenant's sandbox namespace). Labelled with the cluster's uid."""
    pt = pod_tenant(t, etcd_url)
    args = cp.virtual_node_args(pt, PLANE_DIR / "meta.kubeconfig")
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": claim_name(plane_id), "namespace": namespace,
                         "labels": {**labels(plane_id), LABEL_CLAIMED_BY: t.uid}},
            "data": {"args": _b64(json.dumps(args).encode()),
                     "meta.kubeconfig": _b64(yaml.safe_dump(meta_kubeconfig, sort_keys=False).encode())}}


def build_plane_objects(t: cp.Tenant, plane_id: str, namespace: str, etcd_url: str, pki_files: dict[str, bytes],
                        kubeconfigs: dict[str, dict], images: PlaneImages = PlaneImages(),
                        apiserver_flags: tuple[str, ...] = ()) -> list[dict]:
    """Everything of one standby plane, in the order they are applied (the Deployment last:
    its Pod mounts the others)."""
    return [*build_access(plane_id, namespace), build_credentials_secret(plane_id, namespace, pki_files, kubeconfigs),
            build_config_map(plane_id, namespace), build_service(plane_id, namespace),
            build_deployment(t, plane_id, namespace, etcd_url, images, apiserver_flags)]
