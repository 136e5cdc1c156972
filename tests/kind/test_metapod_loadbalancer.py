"""The metapod load balancers on real nodes (the kind test bed): a ServiceLB for a sandbox
Pod running httpd is served by a meta Service of type LoadBalancer whose pool address
(hack/kind.sh routes SK8S_KIND_LB_SUBNET from the host to a node, kube-proxy serves it)
answers HTTP from this host; an IP that is no sandbox Pod of the namespace is never an
endpoint; new backends through `follow`; deleting the LB stops the answer and frees the
address; the ServiceLB's deletion takes its Service along (ownership). Prints the time
from `ensure` to the first HTTP answer next to a plain meta Service of the same Pod (a
selector Service whose status this test writes the same way), same run.

Drives the provider against the kind apiserver (the operator's handlers are tested with
the embedded meta-cluster); skips, naming why, where the kind bed cannot run."""
from __future__ import annotations

import asyncio
import ipaddress
import json
import subprocess
import time
import urllib.error
import urllib.request
import uuid

import pytest

from operators.kubeclient.client import KubeClient
from operators.providers.errors import ProviderError
from operators.providers.metapod.lbbuild import REFUSED, service_name
from operators.providers.metapod.loadbalancer import MetaPodLoadBalancers, services_path, slices_path
from operators.providers.services import LBListener, LBSpec

from tests.kind.conftest import REPO, KindCluster
# A namespace of its own per test, made after this module's `crds` (the name it asks for).
from tests.kind.test_metapod_provider import namespace  # noqa: F401

pytestmark = pytest.mark.kind
CLASS = "sk8s.io/metapod-pool"
HTTPD = "mkdir -p /www && echo \"served by $HOSTNAME\" > /www/index.html && exec httpd -f -p 8080 -h /www"


@pytest.fixture(scope="module")
def crds(kind_cluster: KindCluster) -> None:
    """The ServiceLB CRD as this tree has it (provider metapod allowed)."""
    for args in (("apply", "-f", str(REPO / "crds/sk8s.io_servicelbs.yaml")),
                 ("wait", "--for=condition=Established", "--timeout=60s", "crd/servicelbs.sk8s.io")):
        proc = kind_cluster.kubectl(*args)
        assert proc.returncode == 0, proc.stderr


def bed_pool(kind: KindCluster) -> tuple[str, str]:
    """(pool, baseline address): the top of the load-balancer subnet this host routes to the
    bed's control-plane node (hack/kind.sh setup_lb_route); an operator deployed on the bed
    with the whole subnet hands addresses out from its bottom."""
    proc = kind.kubectl("get", "nodes", "-l", "node-role.kubernetes.io/control-plane", "-o",
                        'jsonpath={.items[0].status.addresses[?(@.type=="InternalIP")].address}')
    assert proc.returncode == 0 and proc.stdout, proc.stderr
    routes = json.loads(subprocess.run(["ip", "-j", "route", "show"], capture_output=True, text=True,
                                       check=True).stdout)
    found = [r["dst"] for r in routes if r.get("gateway") == proc.stdout and r["dst"].startswith("10.248.")]
    assert found, f"no load-balancer route to {proc.stdout} on this host: hack/kind.sh up adds it"
    *_, pool, top = ipaddress.ip_network(found[0]).subnets(new_prefix=29)
    return str(pool), str(list(top.hosts())[-1])


def create(kind: KindCluster, obj: dict) -> dict:
    proc = kind.kubectl("create", "-o", "json", "-f", "-", stdin=json.dumps(obj))
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def sandbox_pod(kind: KindCluster, namespace: str, name: str, home: str, image: str) -> dict:
    """A Pod as the metapod provider labels its sandbox Pods (podbuild.sandbox_labels)."""
    return create(kind, {"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": name, "namespace": namespace,
        "labels": {"sk8s.io/home": home, "sk8s.io/provider": "metapod", "app": name}},
        "spec": {"automountServiceAccountToken": False, "terminationGracePeriodSeconds": 1, "containers": [{
            "name": "app", "image": image, "imagePullPolicy": "Never", "command": ["sh", "-c", HTTPD],
            "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}}]}})


def pod_ip(kind: KindCluster, namespace: str, name: str) -> str:
    proc = kind.kubectl("-n", namespace, "wait", "--for=condition=Ready", f"pod/{name}", "--timeout=120s")
    assert proc.returncode == 0, proc.stderr
    proc = kind.kubectl("-n", namespace, "get", "pod", name, "-o", "jsonpath={.status.podIP}")
    assert proc.returncode == 0 and proc.stdout, proc.stderr
    return proc.stdout


def http_get(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return resp.read().decode()
    except (urllib.error.URLError, OSError):
        return None


async def first_answer(url: str, timeout: float = 60) -> tuple[str, float]:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        body = await asyncio.to_thread(http_get, url)
        if body is not None:
            return body, time.monotonic() - t0
        await asyncio.sleep(0.05)
    raise AssertionError(f"no HTTP answer from {url} in {timeout:.0f}s")


async def until_silent(url: str, timeout: float = 30) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if await asyncio.to_thread(http_get, url) is None:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"{url} still answers after {timeout:.0f}s")


def servicelb(kind: KindCluster, namespace: str, ip: str) -> dict:
    """The owner of what the provider makes. Provider `local`: no operator on the bed serves
    it (one deployed there with SK8S_PROVIDER=metapod would take a metapod one and race
    this test's provider for its Service)."""
    return create(kind, {"apiVersion": "sk8s.io/v1alpha1", "kind": "ServiceLB",
                         "metadata": {"name": "default.web.internet", "namespace": namespace},
                         "spec": {"provider": "local", "addressType": "internet",
                                  "listeners": [{"protocol": "TCP", "port": 80, "targetPort": 8080}],
                                  "backends": [{"ip": ip}]}})


async def baseline(kind: KindCluster, namespace: str, address: str) -> float:
    """A plain meta Service selecting the same Pod, its address written as ours is: the
    nodes' own path from a Service to the first answer."""
    t0 = time.monotonic()
    create(kind, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "plain", "namespace": namespace},
                  "spec": {"type": "LoadBalancer", "loadBalancerClass": CLASS, "allocateLoadBalancerNodePorts": False,
                           "selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}})
    status = {"status": {"loadBalancer": {"ingress": [{"ip": address, "ipMode": "VIP"}]}}}
    proc = kind.kubectl("-n", namespace, "patch", "service", "plain", "--subresource=status", "--type=merge",
                        "-p", json.dumps(status))
    assert proc.returncode == 0, proc.stderr
    body, _ = await first_answer(f"http://{address}/")
    assert body == "served by web\n"
    took = time.monotonic() - t0
    assert kind.kubectl("-n", namespace, "delete", "service", "plain").returncode == 0
    await until_silent(f"http://{address}/")
    return took


async def test_a_servicelb_answers_http_from_the_host_through_its_pool_address(kind_cluster: KindCluster,
                                                                               busybox: str, namespace: str):
    home = f"kindlb-{uuid.uuid4().hex[:6]}"
    sandbox_pod(kind_cluster, namespace, "web", home, busybox)
    sandbox_pod(kind_cluster, namespace, "web2", home, busybox)
    create(kind_cluster, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "stranger", "namespace": namespace},
                          "spec": {"containers": [{"name": "app", "image": busybox, "imagePullPolicy": "Never",
                                                   "command": ["sh", "-c", HTTPD]}]}})
    ip, ip2, stranger = (pod_ip(kind_cluster, namespace, n) for n in ("web", "web2", "stranger"))
    client = KubeClient.from_kubeconfig(kind_cluster.kubeconfig, "meta")
    pool, baseline_address = bed_pool(kind_cluster)
    lbs = MetaPodLoadBalancers(home, (pool,), CLASS, lambda: client)
    await lbs.setup({})
    owner = servicelb(kind_cluster, namespace, ip)
    uid = owner["metadata"]["uid"]
    spec = LBSpec(uid, "internet", None, [LBListener("TCP", 80, 8080)], [ip, stranger], namespace=namespace,
                  name=owner["metadata"]["name"], version=1)
    try:
        base = await baseline(kind_cluster, namespace, baseline_address)
        t0 = time.monotonic()
        state = await lbs.ensure(spec, None)
        ensured = time.monotonic() - t0
        body, _ = await first_answer(f"http://{state.address}/")
        took = time.monotonic() - t0
        print(f"\nServiceLB ensure -> first HTTP answer from the host: {took:.2f}s (ensure {ensured:.2f}s); plain "
              f"meta Service of the same Pod: {base:.2f}s (ratio {took / base:.2f})")
        assert body == "served by web\n" and ipaddress.ip_address(state.address) in ipaddress.ip_network(pool)
        health = {b.ip: (b.healthy, b.message) for b in state.backends}
        assert health == {ip: (True, None), stranger: (False, REFUSED)}  # a Pod that is no sandbox: refused

        svc = await client.get(services_path(namespace, service_name(uid)))
        assert svc["spec"]["type"] == "LoadBalancer" and "selector" not in svc["spec"]
        assert svc["status"]["loadBalancer"]["ingress"][0]["ip"] == state.address
        assert svc["metadata"]["ownerReferences"][0]["uid"] == uid
        slices = (await client.get(slices_path(namespace), labelSelector=f"kubernetes.io/service-name={service_name(uid)}"))["items"]
        assert [e["addresses"] for sl in slices for e in sl["endpoints"]] == [[ip]]

        # New backends through the fast path: the old one leaves, the new one answers.
        assert await lbs.follow(LBSpec(**{**spec.__dict__, "backends": [ip2], "version": 2}))
        for _ in range(100):
            if (await asyncio.to_thread(http_get, f"http://{state.address}/")) == "served by web2\n":
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the new backend never answered")
        assert lbs.state(uid).backends[0].ip == ip2
        again = await lbs.ensure(LBSpec(**{**spec.__dict__, "backends": [ip2], "version": 3}), state.address)
        assert again.address == state.address  # the recorded address is kept

        await lbs.delete(uid, state.address)
        await until_silent(f"http://{state.address}/")
        assert await client.get_or_none(services_path(namespace, service_name(uid))) is None
        assert lbs.state(uid) is None and not lbs._taken

        # Ownership: the ServiceLB's deletion takes a Service it still has along.
        await lbs.ensure(spec, None)
        assert kind_cluster.kubectl("-n", namespace, "delete", "servicelb", owner["metadata"]["name"]).returncode == 0
        for _ in range(60):
            if await client.get_or_none(services_path(namespace, service_name(uid))) is None:
                break
            await asyncio.sleep(0.5)
        else:
            raise AssertionError("the Service outlived its ServiceLB")
    finally:
        await lbs.delete(uid)
        await client.close()


async def test_cloud_mode_takes_the_controllers_address_and_setup_frees_orphans(kind_cluster: KindCluster,
                                                                                namespace: str):
    """No pool: the meta-cluster's controller (played here: it writes a hostname, which no
    kube-proxy routes) gives the address; without one, `ensure` asks to be retried. What is
    not the provider's to serve or take is refused, and start-up deletes the Services of
    LBs no status records."""
    home = f"kindlb-{uuid.uuid4().hex[:6]}"
    client = KubeClient.from_kubeconfig(kind_cluster.kubeconfig, "meta")
    lbs = MetaPodLoadBalancers(home, (), None, lambda: client, address_wait=20)
    owner = servicelb(kind_cluster, namespace, "10.244.0.1")
    uid = owner["metadata"]["uid"]
    spec = LBSpec(uid, "internet", None, [LBListener("TCP", 80, 8080)], [], namespace=namespace,
                  name=owner["metadata"]["name"])
    path = services_path(namespace, service_name(uid))
    try:
        task = asyncio.create_task(lbs.ensure(spec, None))
        while await client.get_or_none(path) is None:
            await asyncio.sleep(0.1)
        svc = await client.get(path)
        assert "loadBalancerClass" not in svc["spec"]  # the cloud's controller's to serve
        await client.patch_status(path, {"loadBalancer": {"ingress": [{"hostname": "lb.example.invalid"}]}})
        state = await asyncio.wait_for(task, 30)
        assert state.address == "lb.example.invalid"

        impatient = MetaPodLoadBalancers(home, (), None, lambda: client, address_wait=1)
        other = LBSpec(str(uuid.uuid4()), "internet", None, spec.listeners, [], namespace=namespace, name="x")
        with pytest.raises(ProviderError) as err:
            await impatient.ensure(other, None)
        assert err.value.reason == "Provisioning" and err.value.retryable
        for refused in (LBSpec(**{**spec.__dict__, "address_type": "intranet", "vpc_id": "v"}),
                        LBSpec(**{**spec.__dict__, "api_server": ("127.0.0.1", 6443)})):
            with pytest.raises(ProviderError) as err:
                await lbs.ensure(refused, None)
            assert err.value.reason == "NotSupported" and not err.value.retryable
        stranger = MetaPodLoadBalancers("another-home", (), None, lambda: client, address_wait=1)
        with pytest.raises(ProviderError) as err:  # another installation's Service of that name
            await stranger.ensure(spec, None)
        assert err.value.reason == "Conflict"

        await MetaPodLoadBalancers(home, (), None, lambda: client).setup({uid: state.address})
        assert await client.get_or_none(path) is not None  # recorded: kept
        await MetaPodLoadBalancers(home, (), None, lambda: client).setup({})
        assert await client.get_or_none(path) is None  # no status records it: an orphan, deleted
        assert await client.get_or_none(services_path(namespace, service_name(other.id))) is None
    finally:
        await lbs.delete(uid)
        await client.close()
