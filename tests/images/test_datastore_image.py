"""The datastore's StatefulSet (manifests/datastore) runs its etcd from the control-plane
image as the manifest says: /usr/local/bin/etcd, uid 10001, a read-only root file system,
no capabilities, TLS from the mounted Secret (files root:10001, 0440, as fsGroup leaves
them), data in the claim's mount. Its probe endpoints answer on the metrics port, and the
operator's auth flow works against it.

The container shares the host's network (no bridge, no route) with the StatefulSet's
listeners moved to free loopback ports: the Pod network is the platform's business."""
from __future__ import annotations

import asyncio
import os
import re
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from operators.config import free_port
from operators.datastore import auth, manifests, names
from operators.datastore import pki as dpki
from operators.datastore.client import EtcdAuthClient
from operators.datastore.rpc import GrpcError
from operators.embedded import pki

from .test_images import UID, controlplane_image, env, podman, tree  # noqa: F401  (fixtures)

POD, NAMESPACE = "sk8s-datastore-0", "sk8s-system"


def expand(arg: str, env_vars: dict[str, str]) -> str:
    """The kubelet's $(VAR) expansion of container args."""
    return re.sub(r"\$\((\w+)\)", lambda m: env_vars.get(m.group(1), m.group(0)), arg)


def args_on_loopback(ports: dict[str, int]) -> list[str]:
    container = manifests.statefulset()["spec"]["template"]["spec"]["containers"][0]
    args = [expand(a, {"POD_NAME": POD, "POD_NAMESPACE": NAMESPACE}) for a in container["args"]]
    moved = {"--listen-client-urls": f"https://127.0.0.1:{ports['client']}",
             "--listen-peer-urls": f"https://127.0.0.1:{ports['peer']}",
             "--listen-metrics-urls": f"http://127.0.0.1:{ports['metrics']}"}
    return [f"{a.split('=')[0]}={moved[a.split('=')[0]]}" if a.split("=")[0] in moved else a for a in args]


def secret_files(directory: Path, ca: pki.KeyPair) -> None:
    member = dpki.issue_member(ca, NAMESPACE)
    for name, data in {"ca.crt": ca.cert_pem, "member.crt": member.cert_pem, "member.key": member.key_pem}.items():
        (directory / name).write_bytes(data)
        os.chown(directory / name, 0, int(UID))
        (directory / name).chmod(0o440)


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def test_the_statefulset_etcd_runs_in_the_controlplane_image(controlplane_image, env, tmp_path):  # noqa: F811
    container = manifests.statefulset()["spec"]["template"]["spec"]["containers"][0]
    tls, data = tmp_path / "tls", tmp_path / "data"
    tls.mkdir()
    data.mkdir()
    os.chown(data, int(UID), int(UID))
    ca = dpki.make_ca()
    secret_files(tls, ca)
    pki.write(dpki.issue_root(ca), tmp_path, "root")
    pki.write(dpki.issue_tenant(ca, "tenant-a"), tmp_path, "tenant-a")
    taken: set[int] = set()
    ports = {}
    for name in ("client", "peer", "metrics"):
        ports[name] = free_port(taken)
        taken.add(ports[name])
    name = f"sk8s-datastore-test-{uuid.uuid4().hex[:8]}"
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    podman(env, "run", "-d", "--name", name, "--network=host", "--read-only", "--cap-drop=ALL",
           "--security-opt=no-new-privileges", f"--user={UID}:{UID}",
           f"--add-host={POD}.{dpki.PEERS}.{NAMESPACE}.svc:127.0.0.1",
           "-v", f"{tls}:{mounts['tls']}:ro", "-v", f"{data}:{mounts['data']}",
           "--entrypoint", container["command"][0], controlplane_image, *args_on_loopback(ports))
    try:
        metrics = f"http://127.0.0.1:{ports['metrics']}"
        deadline = time.monotonic() + 60
        while http_status(metrics + container["readinessProbe"]["httpGet"]["path"]) != 200:
            assert time.monotonic() < deadline, podman(env, "logs", name, check=False).stderr[-3000:]
            time.sleep(0.5)
        assert http_status(metrics + container["livenessProbe"]["httpGet"]["path"]) == 200
        rows = [line.split() for line in podman(env, "top", name, "huser").stdout.splitlines()[1:]]
        assert rows and all(row == [UID] for row in rows), rows
        assert (data / "data" / "member").is_dir()  # the data dir is the claim's mount

        async def flow() -> None:
            url, ca_file = f"https://127.0.0.1:{ports['client']}", tls / "ca.crt"
            async with EtcdAuthClient(url, ca_file, tmp_path / "root.crt", tmp_path / "root.key") as root:
                await auth.enable_auth(root)
                await auth.grant_tenant(root, "tenant-a", "/sk8s/tenants/aaaa/")
            async with EtcdAuthClient(url, ca_file, tmp_path / "tenant-a.crt", tmp_path / "tenant-a.key") as a:
                await a.put(b"/sk8s/tenants/aaaa/k", b"v")
                with pytest.raises(GrpcError):
                    await a.get_range(b"/sk8s/tenants/bbbb/", names.range_end(b"/sk8s/tenants/bbbb/"))
        asyncio.run(flow())
        # Auth on: health stays green (etcd's own check is not a client request).
        assert http_status(metrics + "/readyz") == 200
    finally:
        podman(env, "rm", "-f", "-t", "0", name, check=False)
