"""The tenant apiserver's egress selector: every connection into the cluster goes through
the tenant's own egress proxy (run by its virtual node, operators/virtualnode/egress/).

`cluster` carries webhooks and CRD conversion webhooks named by a Service, aggregated
APIs, `pods/proxy`, `services/proxy` and the kubelet (logs, exec, attach, port-forward);
`controlplane` carries webhooks named by `clientConfig.url` (k8s.io/apiserver
pkg/util/webhook/authentication.go), which a tenant may point anywhere, so it goes the
same way. `etcd` is not listed: the apiserver dials its etcd directly. The socket lives in
the plane's directory; until the virtual node of a claimed plane listens there, such
connections fail (a standby plane serves nobody).
"""
from __future__ import annotations

from pathlib import Path

import yaml

CONFIG_FILE = "egress-selector.yaml"
SOCKET_FILE = "egress.sock"
SELECTIONS = ("cluster", "controlplane")
UDS_PATH_MAX = 107  # sun_path: 108 bytes with the terminating NUL


def socket_path(directory: Path) -> Path:
    return directory / SOCKET_FILE


def egress_selector_config(uds: Path) -> dict:
    if len(str(uds).encode()) > UDS_PATH_MAX:
        raise ValueError(f"egress socket path {uds} is longer than a Unix socket path may be ({UDS_PATH_MAX})")
    return {"apiVersion": "apiserver.k8s.io/v1beta1", "kind": "EgressSelectorConfiguration",
            "egressSelections": [{"name": name, "connection": {"proxyProtocol": "HTTPConnect",
                                                               "transport": {"uds": {"udsName": str(uds)}}}}
                                 for name in SELECTIONS]}


def write_egress_config(directory: Path) -> Path:
    path = directory / CONFIG_FILE
    path.write_text(yaml.safe_dump(egress_selector_config(socket_path(directory)), sort_keys=False))
    return path
