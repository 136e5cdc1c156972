"""A tenant cluster on the aliyun provider, end to end against the local OpenAPI emulator,
through the real Alibaba SDKs: its VPC, VSwitches and security group (VPC, ECS APIs), its
pods as ECI groups, its LoadBalancer Service as an SLB, its DNS as a PrivateZone zone,
`kubectl logs` (DescribeContainerLog) and `kubectl exec` (ExecContainerCommand). Deleting
the cluster leaves nothing in the emulator's inventory."""
from __future__ import annotations

import json
import re
import urllib.request

import pytest

from operators.emulator.alibaba.launch import PLACEMENT_ENV

from ..unit.eci_admission_cases import ACCEPTED, REFUSED
from .conftest import IMAGE, until
from .tenant import cluster_uid, make_cluster
from .test_aliyun_provider import emulator

pytestmark = pytest.mark.e2e
PAGE = "Welcome to sk8s"
REGION = PLACEMENT_ENV["SK8S_ALIYUN_REGION"]


def http_get(url: str, timeout: float = 3) -> str:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=timeout) as resp:
        return resp.read().decode()


def tags_of(item: dict) -> list[dict]:
    """ECI and SLB list an item's tags; VPC and ECS answers wrap them as {"Tag": [...]},
    ECS's with TagKey/TagValue."""
    tags = item.get("Tags") or []
    tags = tags.get("Tag") or [] if isinstance(tags, dict) else tags
    return [{"Key": t.get("Key", t.get("TagKey")), "Value": t.get("Value", t.get("TagValue"))} for t in tags]


def tagged(items: list[dict], uid: str) -> list[dict]:
    return [i for i in items if {"Key": "sk8s.io/cluster-uid", "Value": uid} in tags_of(i)]


def leftovers(meta) -> dict[str, list]:
    return {kind: items for kind, items in emulator(meta, "inventory").items() if items}


@pytest.fixture(scope="module")
def ali(meta):
    t = make_cluster(meta, "ali", provider="aliyun", region=REGION, quotas={"maxPods": 10, "cpu": "8", "memory": "8Gi"})
    yield t
    meta.kubectl("delete", "serverlesscluster", "ali", "--wait=false", check=False)


def test_the_cluster_is_built_in_the_cloud(meta, ali):
    obj = meta.get("serverlesscluster", "ali", "default")
    cond = {c["type"]: c for c in obj["status"]["conditions"]}
    assert cond["ProviderReady"]["status"] == "True", cond
    uid = obj["metadata"]["uid"]
    inv = emulator(meta, "inventory")
    (vpc,) = tagged(inv["Vpc"], uid)
    assert vpc["CidrBlock"] == obj["status"]["network"]["vpcCIDR"]
    assert {v["CidrBlock"] for v in tagged(inv["VSwitch"], uid)} == {
        obj["status"]["network"]["podCIDR"], obj["status"]["network"]["serviceCIDR"]}
    assert len(tagged(inv["SecurityGroup"], uid)) == 1


def test_seed_demo(meta, ali):
    """Deploy, expose as a LoadBalancer, curl EXTERNAL-IP; DNS by name; logs; exec."""
    uid = cluster_uid(meta, "ali")
    ali.kubectl("create", "deployment", "web", f"--image={IMAGE}")
    ali.kubectl("expose", "deployment", "web", "--port=80", "--target-port=80", "--name=web",
                "--type=LoadBalancer")
    ali.kubectl("rollout", "status", "deployment/web", "--timeout=180s", timeout=200)
    (pod,) = json.loads(ali.kubectl("get", "pods", "-l", "app=web", "-o", "json").stdout)["items"]
    groups = tagged(emulator(meta, "inventory")["ContainerGroup"], uid)
    assert [g["Status"] for g in groups] == ["Running"], groups

    ip = until(lambda: ali.kubectl("get", "svc", "web", "-o",
                                   "jsonpath={.status.loadBalancer.ingress[0].ip}").stdout.strip(),
               90, "EXTERNAL-IP of web")
    assert PAGE in until(lambda: _try(http_get, f"http://{ip}/"), 60, "the page through the SLB")
    lbs = tagged(emulator(meta, "inventory")["LoadBalancer"], uid)
    assert ip in {lb["Address"] for lb in lbs}, lbs

    # DNS by service name from a pod, through the zone in PrivateZone.
    ali.kubectl("run", "client", f"--image={IMAGE}", "--restart=Never", "--",
                "sh", "-c", "timeout 5 wget -qO- http://web.default.svc.cluster.local/ || exit 1")
    done = ali.wait_pod("client", lambda p: p["status"].get("phase") in ("Succeeded", "Failed"), timeout=120)
    assert done["status"]["phase"] == "Succeeded", ali.kubectl("logs", "client", check=False).stdout
    assert PAGE in ali.kubectl("logs", "client").stdout

    name = pod["metadata"]["name"]
    out = ali.kubectl("exec", name, "--", "sh", "-c", "echo from-exec; hostname; exit 0").stdout
    assert out.split()[:2] == ["from-exec", name]
    rc = ali.kubectl("exec", name, "--", "sh", "-c", "exit 7", check=False).returncode
    assert rc == 7
    # The page was served: the web server logged the requests, read through DescribeContainerLog.
    assert until(lambda: "response:200" in ali.kubectl("logs", name).stdout, 30, "the server's log")


ECI_REFUSAL = re.compile(r"([\w.\[\]]+): Forbidden: not supported by ECI")


def eci_refusals(t, obj: dict) -> set[str] | None:
    """The fields the tenant's admission refuses as ECI's (None: admitted), by a server-side dry run."""
    out = t.kubectl("create", "--dry-run=server", "-f", "-", input=json.dumps(obj), check=False)
    if out.returncode == 0:
        return None
    assert "sk8s-compatibility-aliyun" in out.stderr and "Forbidden" in out.stderr, out.stderr
    return set(ECI_REFUSAL.findall(out.stderr))


def test_what_eci_cannot_express_is_refused_at_admission(ali):
    """Admission refuses, naming each field, what eci_unsupported refuses on the SandboxPod
    (tests/unit/test_eci_admission.py runs the same cases through it) and admits what it runs;
    for pod templates as for pods; kubectl debug, which ECI cannot serve, is refused too."""
    for name, spec, fields in REFUSED:
        obj = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "a"}}, "spec": spec}
        assert eci_refusals(ali, obj) == fields, name
    for name, spec in ACCEPTED:
        obj = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "a"}}, "spec": spec}
        assert eci_refusals(ali, obj) is None, name

    probe = {"exec": {"command": ["true"]}}
    overrides = {"spec": {"containers": [{"name": "probed", "image": IMAGE, "startupProbe": probe}]}}
    run = ali.kubectl("run", "probed", f"--image={IMAGE}", f"--overrides={json.dumps(overrides)}", check=False)
    assert run.returncode != 0 and "Forbidden" in run.stderr, run.stderr
    assert "spec.containers[0].startupProbe: Forbidden" in run.stderr, run.stderr
    assert ali.kubectl("get", "pod", "probed", check=False).returncode != 0
    template = {"metadata": {"labels": {"app": "probed"}},
                "spec": {"containers": [{"name": "app", "image": IMAGE, "startupProbe": probe}]}}
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "probed"},
                  "spec": {"selector": {"matchLabels": {"app": "probed"}}, "template": template}}
    out = ali.kubectl("create", "-f", "-", input=json.dumps(deployment), check=False)
    assert out.returncode != 0 and "spec.template.spec.containers[0].startupProbe: Forbidden" in out.stderr, out.stderr
    assert ali.kubectl("get", "deployment", "probed", check=False).returncode != 0
    cronjob = {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "probed"},
               "spec": {"schedule": "@daily", "jobTemplate": {"spec": {"template": {
                   "spec": {**template["spec"], "restartPolicy": "Never"}}}}}}
    assert eci_refusals(ali, cronjob) == {"spec.jobTemplate.spec.template.spec.containers[0].startupProbe"}

    (pod,) = json.loads(ali.kubectl("get", "pods", "-l", "app=web", "-o", "json").stdout)["items"]
    debug = ali.kubectl("debug", pod["metadata"]["name"], f"--image={IMAGE}", "--", "true", check=False)
    assert debug.returncode != 0 and "spec.ephemeralContainers: Forbidden" in debug.stderr, debug.stderr


def test_deleting_the_cluster_leaves_nothing_in_the_cloud(meta, ali):
    meta.kubectl("delete", "serverlesscluster", "ali", "--timeout=240s", timeout=260)
    until(lambda: not leftovers(meta), 60, "an empty inventory")


def control(meta, path: str, body: dict) -> dict:
    port = (meta.home / "alibaba-emulator.port").read_text().strip()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/_emulator/{path}", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(req, timeout=10) as resp:
        return json.loads(resp.read())


def provider_ready(meta, name: str) -> dict | None:
    obj = meta.get("serverlesscluster", name, "default")
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == "ProviderReady"), None)


def test_a_refused_key_is_a_condition_within_seconds_and_makes_nothing(meta):
    """The account's key disabled (as in the RAM console): ProviderReady False with the
    cloud's code, a ProviderFailed Event, nothing made in the cloud; enabled again, the
    cluster comes up by itself."""
    key = (meta.home / "aliyun-credentials" / "access-key-id").read_text().strip()
    control(meta, "keys", {"disable": [key]})
    try:
        meta.apply({"apiVersion": "sk8s.io/v1alpha1", "kind": "ServerlessCluster", "metadata": {"name": "ali-nokey"},
                    "spec": {"provider": "aliyun", "region": REGION}}, "default")
        cond = until(lambda: (c := provider_ready(meta, "ali-nokey")) and c["status"] == "False" and c, 30,
                     "ProviderReady=False")
        assert cond["reason"] == "InvalidAccessKeyId" and "disabled" in cond["message"], cond
        uid = cluster_uid(meta, "ali-nokey")
        assert not any(tagged(items, uid) for items in emulator(meta, "inventory").values())
        events = meta.kubectl("get", "events", "--field-selector=involvedObject.name=ali-nokey").stdout
        assert "ProviderFailed" in events
    finally:
        control(meta, "keys", {"enable": [key]})
    meta.kubectl("wait", "--for=condition=Ready", "serverlesscluster/ali-nokey", "--timeout=120s", timeout=130)
    assert provider_ready(meta, "ali-nokey")["status"] == "True"
    meta.kubectl("delete", "serverlesscluster", "ali-nokey", "--timeout=180s", timeout=200)


def _try(fn, *args):
    try:
        return fn(*args)
    except OSError:
        return None
