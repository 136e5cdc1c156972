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
