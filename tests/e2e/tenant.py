"""A tenant cluster as e2e tests use it: plain kubectl with the tenant's kubeconfig."""
from __future__ import annotations

import base64
import json
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Tenant:
    name: str
    kubeconfig: Path
    meta: object

    def kubectl(self, *args: str, check: bool = True, timeout: float = 120, input: str | None = None):
        proc = subprocess.run([str(self.meta.bindir / "kubectl"), f"--kubeconfig={self.kubeconfig}", *args],
                              text=True, capture_output=True, timeout=timeout, input=input)
        if check and proc.returncode != 0:
            raise AssertionError(f"tenant kubectl {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc

    def pod(self, name: str, ns: str = "default") -> dict:
        return json.loads(self.kubectl("get", "pod", name, "-n", ns, "-o", "json").stdout)

    def wait_pod(self, name: str, predicate, timeout: float = 60, ns: str = "default") -> dict:
        deadline = time.monotonic() + timeout
        pod = {}
        while time.monotonic() < deadline:
            proc = self.kubectl("get", "pod", name, "-n", ns, "-o", "json", check=False)
            if proc.returncode == 0:
                pod = json.loads(proc.stdout)
                if predicate(pod):
                    return pod
            time.sleep(0.2)
        raise AssertionError(f"pod {name}: timed out; status {json.dumps(pod.get('status'), indent=1)[:2000]}")


def make_cluster(meta, name: str, **spec) -> Tenant:
    obj = {"apiVersion": "sk8s.io/v1alpha1", "kind": "ServerlessCluster", "metadata": {"name": name},
           "spec": spec}
    meta.apply(obj, "default")
    meta.kubectl("wait", "--for=condition=Ready", f"serverlesscluster/{name}", "--timeout=180s", timeout=200)
    secret = json.loads(meta.kubectl("get", "secret", f"{name}-kubeconfig", "-o", "json").stdout)
    path = meta.home / f"{name}.kubeconfig"
    path.write_bytes(base64.b64decode(secret["data"]["kubeconfig"]))
    return Tenant(name, path, meta)


def cluster_uid(meta, name: str) -> str:
    return meta.get("serverlesscluster", name, "default")["metadata"]["uid"]


def plane_dir(meta, uid: str) -> Path:
    """The directory of the control plane that cluster `uid` claimed."""
    for d in (meta.home / "planes").iterdir():
        claim = d / "claimed-by"
        if claim.exists() and claim.read_text().strip() == uid:
            return d
    raise AssertionError(f"no plane claimed by {uid}")


def anchor_netns(meta, uid: str) -> str:
    """The network namespace of cluster `uid`'s VPC anchor (where its intranet LBs live)."""
    pods = json.loads(meta.podman("pod", "ps", "--format=json", f"--filter=label=sk8s.io/vpc={uid}").stdout)
    assert len(pods) == 1, pods
    infra = meta.podman("pod", "inspect", pods[0]["Id"], "--format={{.InfraContainerID}}").stdout.strip()
    return meta.podman("inspect", infra, "--format={{.NetworkSettings.SandboxKey}}").stdout.strip()


def anchor_addresses(meta, uid: str) -> set[str]:
    """The addresses bound in cluster `uid`'s VPC anchor (its intranet load balancers)."""
    netns = anchor_netns(meta, uid)
    out = subprocess.run(["nsenter", f"--net={netns}", "ip", "-o", "-4", "addr", "show", "dev", "eth0"],
                         capture_output=True, text=True, check=True).stdout
    return {ln.split()[3].split("/")[0] for ln in out.splitlines() if ln.split()[3].endswith("/32")}


def delete_cluster(meta, name: str) -> None:
    """A module's cluster is deleted without waiting: its deletion overlaps the next module
    (test_nothing_leaked and test_zz_down wait for every deletion that is still running)."""
    meta.kubectl("delete", "serverlesscluster", name, "--wait=false", check=False)


def wait_deletions(meta, timeout: float = 300) -> None:
    """Every ServerlessCluster whose deletion was asked (delete_cluster) is gone."""
    deadline = time.monotonic() + timeout
    deleting: list[str] = []
    while time.monotonic() < deadline:
        items = json.loads(meta.kubectl("get", "serverlessclusters", "-A", "-o", "json").stdout)["items"]
        deleting = [c["metadata"]["name"] for c in items if c["metadata"].get("deletionTimestamp")]
        if not deleting:
            return
        time.sleep(1)
    raise AssertionError(f"clusters still deleting after {timeout}s: {deleting}")
