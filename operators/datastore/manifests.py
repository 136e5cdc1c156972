"""The datastore's manifests (pure builders) and `python -m operators.datastore.manifests DIR`,
which writes them as manifests/datastore/ (tests/unit/test_datastore_manifests.py checks
that the files are these builders' output).

- StatefulSet `sk8s-datastore`: etcd from the control-plane image (hack/build-controlplane-
  image.sh: /usr/local/bin/etcd, user 10001, no shell), so the members need nothing the
  tenants' control planes do not already pull. The member's name and URLs come from the
  downward API through $(VAR) expansion in args (no shell in the image). podManagementPolicy
  Parallel: with three members, none is ready before a quorum exists, so OrderedReady would
  wait for ever on member 0. The member count is fixed at install (it is etcd's
  initial cluster): scaling later is an etcd member add/remove, not a replica change.
- Storage: a PersistentVolumeClaim per member (volumeClaimTemplates), not an emptyDir: this
  store holds every tenant's cluster state, and an emptyDir dies with the pod (eviction,
  node drain, node loss). The platform's default StorageClass, unless set.
- TLS: the Secret `sk8s-datastore-tls` (ca.crt, member.crt, member.key: pki.py), made by the
  operator or the installer, not shipped: each installation has its own CA. Clients and
  peers must show a certificate of that CA; the gRPC gateway is off (under auth it serves
  password tokens only, and there are no passwords).
- Probes: httpGet on the metrics listener (plain HTTP, port 2381: /livez, /readyz), since the
  kubelet cannot show the client certificate the client port asks for and the image has no
  shell for an exec probe (kubeadm probes its etcd the same way). That listener shows
  health and Prometheus metrics (key counts and sizes, no keys or values), so the
  NetworkPolicy `sk8s-datastore` admits other pods to the client and peer ports only
  (traffic from the pod's own node, the kubelet's probes, is always allowed).
- Services: `sk8s-datastore-peers`, headless, publishing not-ready addresses (members find
  each other before any is ready), and `sk8s-datastore`, the ClusterIP the tenant
  apiservers use (--etcd-servers=https://sk8s-datastore.sk8s-system.svc:2379).
- Compaction: etcd's own, periodic, keeping 5 min of history (what each kube-apiserver's
  compactor does by default); the tenant apiservers run none (auth.TENANT_APISERVER_FLAGS),
  since theirs needs a key outside their prefix."""
from __future__ import annotations

import sys
from pathlib import Path

import yaml

from . import pki
from .pki import CLIENT_PORT, METRICS_PORT, NAME, PEER_PORT, PEERS

NAMESPACE = "sk8s-system"
IMAGE = "sk8s-controlplane:latest"  # the kustomization maps it to localhost/sk8s-controlplane
TLS_SECRET = pki.TLS_SECRET
TLS_DIR = "/etc/sk8s-datastore/tls"
DATA_DIR = "/var/lib/etcd"
UID = 10001
LABELS = {"app.kubernetes.io/name": NAME, "app.kubernetes.io/component": "datastore"}


def etcd_flags(*, name: str, data_dir: str, tls_dir: str, cert_stem: str, client_url: str, peer_url: str,
               listen_client: str, listen_peer: str, initial_cluster: str, metrics_url: str) -> list[str]:
    """etcd's command line after the binary (the tests start a real etcd with these too)."""
    return [
        f"--name={name}", f"--data-dir={data_dir}",
        f"--listen-client-urls={listen_client}", f"--advertise-client-urls={client_url}",
        f"--listen-peer-urls={listen_peer}", f"--initial-advertise-peer-urls={peer_url}",
        f"--initial-cluster={initial_cluster}", "--initial-cluster-state=new",
        f"--initial-cluster-token={NAME}",
        # Every client and peer shows a certificate of the datastore's CA; with auth on, the
        # certificate's CN is the etcd user (auth.py).
        "--client-cert-auth=true", f"--trusted-ca-file={tls_dir}/ca.crt",
        f"--cert-file={tls_dir}/{cert_stem}.crt", f"--key-file={tls_dir}/{cert_stem}.key",
        "--peer-client-cert-auth=true", f"--peer-trusted-ca-file={tls_dir}/ca.crt",
        f"--peer-cert-file={tls_dir}/{cert_stem}.crt", f"--peer-key-file={tls_dir}/{cert_stem}.key",
        "--enable-grpc-gateway=false",
        f"--listen-metrics-urls={metrics_url}",
        "--auto-compaction-mode=periodic", "--auto-compaction-retention=5m",
        "--quota-backend-bytes=8589934592",
        "--log-level=warn",
    ]


def initial_cluster(replicas: int, namespace: str) -> str:
    return ",".join(f"{NAME}-{i}=https://{NAME}-{i}.{PEERS}.{namespace}.svc:{PEER_PORT}" for i in range(replicas))


def _probe(path: str, period: int, failures: int) -> dict:
    return {"httpGet": {"path": path, "port": "metrics", "scheme": "HTTP"},
            "periodSeconds": period, "timeoutSeconds": 5, "failureThreshold": failures}


def statefulset(*, replicas: int = 1, namespace: str = NAMESPACE, storage: str = "10Gi",
                storage_class: str | None = None) -> dict:
    member = f"$(POD_NAME).{PEERS}.$(POD_NAMESPACE).svc"
    args = etcd_flags(name="$(POD_NAME)", data_dir=f"{DATA_DIR}/data", tls_dir=TLS_DIR, cert_stem="member",
                      client_url=f"https://{member}:{CLIENT_PORT}", peer_url=f"https://{member}:{PEER_PORT}",
                      listen_client=f"https://0.0.0.0:{CLIENT_PORT}", listen_peer=f"https://0.0.0.0:{PEER_PORT}",
                      initial_cluster=initial_cluster(replicas, namespace),
                      metrics_url=f"http://0.0.0.0:{METRICS_PORT}")
    claim = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": storage}}}
    if storage_class:
        claim["storageClassName"] = storage_class
    env = [{"name": n, "valueFrom": {"fieldRef": {"fieldPath": f}}}
           for n, f in (("POD_NAME", "metadata.name"), ("POD_NAMESPACE", "metadata.namespace"))]
    container = {
        "name": "etcd", "image": IMAGE, "imagePullPolicy": "IfNotPresent",
        "command": ["/usr/local/bin/etcd"], "args": args, "env": env,
        "ports": [{"name": "client", "containerPort": CLIENT_PORT}, {"name": "peer", "containerPort": PEER_PORT},
                  {"name": "metrics", "containerPort": METRICS_PORT}],
        # /readyz: serving, with a leader and no alarm; /livez: the process answers. The
        # startup probe gives a member 5 min to replay its log before liveness counts.
        "startupProbe": _probe("/livez", 5, 60),
        "livenessProbe": _probe("/livez", 10, 6),
        "readinessProbe": _probe("/readyz", 5, 3),
        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "2Gi"}},
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": [{"name": "data", "mountPath": DATA_DIR},
                         {"name": "tls", "mountPath": TLS_DIR, "readOnly": True}],
    }
    return {
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": NAME, "labels": dict(LABELS)},
        "spec": {
            "serviceName": PEERS, "replicas": replicas, "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": dict(LABELS)},
            "template": {
                "metadata": {"labels": dict(LABELS)},
                "spec": {
                    "automountServiceAccountToken": False,  # etcd needs no Kubernetes API
                    "enableServiceLinks": False,
                    "terminationGracePeriodSeconds": 30,
                    "securityContext": {"runAsNonRoot": True, "runAsUser": UID, "runAsGroup": UID, "fsGroup": UID,
                                        "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [container],
                    "volumes": [{"name": "tls", "secret": {"secretName": TLS_SECRET, "defaultMode": 0o440}}],
                },
            },
            "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": claim}],
        },
    }


def _ports(*names: str) -> list[dict]:
    numbers = {"client": CLIENT_PORT, "peer": PEER_PORT}
    return [{"name": n, "port": numbers[n], "targetPort": n} for n in names]


def services() -> list[dict]:
    peers = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": PEERS, "labels": dict(LABELS)},
             "spec": {"clusterIP": "None", "publishNotReadyAddresses": True, "selector": dict(LABELS),
                      "ports": _ports("client", "peer")}}
    client = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": NAME, "labels": dict(LABELS)},
              "spec": {"type": "ClusterIP", "selector": dict(LABELS), "ports": _ports("client")}}
    return [peers, client]


def network_policy() -> dict:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": NAME, "labels": dict(LABELS)},
            "spec": {"podSelector": {"matchLabels": dict(LABELS)}, "policyTypes": ["Ingress"],
                     "ingress": [{"ports": [{"protocol": "TCP", "port": CLIENT_PORT},
                                            {"protocol": "TCP", "port": PEER_PORT}]}]}}


def files() -> dict[str, str]:
    """manifests/datastore/: file name -> YAML text."""
    head = "# Generated by `python -m operators.datastore.manifests manifests/datastore`: edit the builders.\n"
    dump = lambda docs: head + "---\n".join(yaml.safe_dump(d, sort_keys=False) for d in docs)  # noqa: E731
    kustomization = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
                     "namespace": NAMESPACE,
                     "resources": ["services.yaml", "networkpolicy.yaml", "statefulset.yaml"]}
    return {"kustomization.yaml": dump([kustomization]), "services.yaml": dump(services()),
            "networkpolicy.yaml": dump([network_policy()]),
            "statefulset.yaml": dump([statefulset()])}


def main(argv: list[str]) -> int:
    target = Path(argv[1]) if len(argv) > 1 else Path("manifests/datastore")
    target.mkdir(parents=True, exist_ok=True)
    for name, text in files().items():
        (target / name).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
