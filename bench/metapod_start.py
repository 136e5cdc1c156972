"""A sandbox made by the metapod provider -> running and ready on a real node, next to the
same Pod created directly through the API (the baseline: what the meta-cluster itself
takes), same run, same cluster, same image (and that Pod without a service-account token and
service links, as the sandbox's is); and the API calls the provider makes per sandbox.

    python bench/metapod_start.py [--kubeconfig ~/.local/share/sk8s/kind/kubeconfig] [--pods 10]

Needs a cluster with nodes (the kind bed: hack/kind.sh up) with the sk8s CRDs and
localhost/sk8s-busybox:latest loaded (hack/kind.sh load). One after another, alternating.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid

from common import IMAGE, REPO, row, summary

sys.path.insert(0, str(REPO))
from operators.kubeclient.client import KubeClient  # noqa: E402
from operators.models.podspec import PodSpec  # noqa: E402
from operators.providers.metapod.podbuild import MetaPlacement  # noqa: E402
from operators.providers.metapod.provider import MetaPodProvider, pods_path  # noqa: E402
from operators.providers.sandbox import SandboxRef  # noqa: E402

SPEC = {"terminationGracePeriodSeconds": 0, "containers": [
    {"name": "main", "image": IMAGE, "imagePullPolicy": "Never", "command": ["sleep", "3600"]}]}


class Counting(KubeClient):
    calls = 0

    async def request(self, method, path, **kw):
        Counting.calls += 1
        return await super().request(method, path, **kw)


def ready(pod: dict) -> bool:
    st = pod.get("status") or {}
    return st.get("phase") == "Running" and all(c.get("ready") for c in st.get("containerStatuses") or [{}])


async def baseline(client: KubeClient, ns: str, **extra) -> float:
    name = f"plain-{uuid.uuid4().hex[:6]}"
    t0 = time.monotonic()
    await client.create(pods_path(ns), {"metadata": {"name": name}, "spec": {**SPEC, **extra}})
    while not ready(await client.get(pods_path(ns, name))):
        await asyncio.sleep(0.05)
    took = time.monotonic() - t0
    await client.delete(pods_path(ns, name), grace=0)
    return took


async def sandbox(client: KubeClient, provider: MetaPodProvider, ns: str) -> tuple[float, int]:
    name = f"sb-{uuid.uuid4().hex[:6]}"
    made = await client.create(f"/apis/sk8s.io/v1alpha1/namespaces/{ns}/sandboxpods", {
        "apiVersion": "sk8s.io/v1alpha1", "kind": "SandboxPod", "metadata": {"name": name},
        "spec": {**SPEC, "provider": "metapod"}})
    ref = SandboxRef(ns, name, made["metadata"]["uid"])
    before = Counting.calls
    t0 = time.monotonic()
    await provider.ensure(ref, PodSpec.model_validate(SPEC), {})
    calls = Counting.calls - before
    while not ready(await client.get(pods_path(ns, ref.instance_name))):  # polled as the baseline is
        await asyncio.sleep(0.05)
    took = time.monotonic() - t0
    await provider.delete(ref, 0)
    await client.delete(f"/apis/sk8s.io/v1alpha1/namespaces/{ns}/sandboxpods/{name}")
    return took, calls


async def main(kubeconfig: str, n: int) -> None:
    client = Counting.from_kubeconfig(kubeconfig, "meta")
    provider = MetaPodProvider(MetaPlacement(f"bench-{uuid.uuid4().hex[:6]}"), lambda: client)
    ns = f"bench-mp-{uuid.uuid4().hex[:6]}"
    await client.create("/api/v1/namespaces", {"metadata": {"name": ns}})
    plain, bare, boxed, calls = [], [], [], []
    try:
        await baseline(client, ns)  # warm: the image's first start on a node
        for _ in range(n):
            plain.append(await baseline(client, ns))
            bare.append(await baseline(client, ns, automountServiceAccountToken=False, enableServiceLinks=False))
            took, made = await sandbox(client, provider, ns)
            boxed.append(took)
            calls.append(made)
    finally:
        await client.delete(f"/api/v1/namespaces/{ns}")
        await client.close()
    b, t, s = summary(plain), summary(bare), summary(boxed)
    print(row("plain Pod (baseline)", b))
    print(row("plain Pod without token and links (baseline)", t))
    print(row("metapod sandbox", s))
    print(f"ratio to the plain Pod p50 {s['p50'] / b['p50']:.2f}, to the one without token p50 "
          f"{s['p50'] / t['p50']:.2f} (mean {s['mean'] / t['mean']:.2f}); "
          f"API calls to create a sandbox: {max(calls)} (status: the provider's one watch, none per sandbox)")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--kubeconfig", default=os.path.expanduser("~/.local/share/sk8s/kind/kubeconfig"))
    ap.add_argument("--pods", type=int, default=10)
    args = ap.parse_args()
    asyncio.run(main(args.kubeconfig, args.pods))
