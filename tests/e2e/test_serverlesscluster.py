"""ServerlessCluster end to end: a real tenant Kubernetes whose pods run as sandboxes."""
from __future__ import annotations

import base64
import json
import subprocess
import time

import pytest
import yaml

from .conftest import IMAGE, condition
from .tenant import Tenant, delete_cluster, make_cluster  # noqa: F401

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def alpha(meta):
    t = make_cluster(meta, "alpha", quotas={"maxPods": 20, "cpu": "8", "memory": "8Gi"})
    yield t
    delete_cluster(meta, "alpha")


@pytest.fixture(scope="module")
def beta(meta):
    t = make_cluster(meta, "beta", quotas={"maxPods": 2})
    yield t
    delete_cluster(meta, "beta")


def test_cluster_status_and_virtual_node(meta, alpha):
    sc = meta.get("serverlesscluster", "alpha", "default")
    st = sc["status"]
    assert st["phase"] == "Ready" and st["endpoint"].startswith("https://127.0.0.1:")
    assert st["kubeconfigSecretName"] == "alpha-kubeconfig"
    assert {c["type"]: c["status"] for c in st["conditions"]} == {
        "ControlPlaneReady": "True", "VirtualNodeReady": "True", "ProviderReady": "True", "Ready": "True"}
    nodes = json.loads(alpha.kubectl("get", "nodes", "-o", "json").stdout)["items"]
    assert [n["metadata"]["name"] for n in nodes] == ["virtual-node"]
    node = nodes[0]
    assert node["status"]["capacity"]["pods"] == "20"
    assert any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"]["conditions"])
    lease = json.loads(alpha.kubectl("get", "lease", "virtual-node", "-n", "kube-node-lease", "-o", "json").stdout)
    assert lease["spec"]["holderIdentity"] == "virtual-node"


def _taints(t: Tenant) -> list[tuple[str, str, str]]:
    node = json.loads(t.kubectl("get", "node", "virtual-node", "-o", "json").stdout)
    return [(x["key"], x.get("value", ""), x["effect"]) for x in node["spec"].get("taints") or []]


def _until(check, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while not (ok := check()) and time.monotonic() < deadline:
        time.sleep(0.5)
    return ok


def _sleeper(name: str, **spec) -> str:
    return yaml.safe_dump({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": {
        "containers": [{"name": "c", "image": IMAGE, "imagePullPolicy": "IfNotPresent", "command": ["sleep", "3600"]}],
        "terminationGracePeriodSeconds": 1, **spec}})


def test_node_is_schedulable_and_a_user_taint_is_honoured_and_kept(alpha):
    """The admission plugin's not-ready taint goes once the node is Ready (no node-lifecycle
    controller runs); a user's taint stays through cordon/uncordon and keeps untolerating pods Pending."""
    assert _until(lambda: not [k for k in _taints(alpha) if k[0].startswith("node.kubernetes.io/")]), _taints(alpha)
    alpha.kubectl("taint", "node", "virtual-node", "dedicated=db:NoSchedule")
    try:
        alpha.kubectl("apply", "-f", "-", input=_sleeper("untolerating"))
        alpha.kubectl("apply", "-f", "-", input=_sleeper("tolerant", tolerations=[
            {"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoSchedule"}]))
        alpha.wait_pod("tolerant", lambda p: p["status"].get("phase") == "Running")
        pod = alpha.wait_pod("untolerating", lambda p: condition(p, "PodScheduled") == "False")
        cond = next(c for c in pod["status"]["conditions"] if c["type"] == "PodScheduled")
        assert "untolerated taint {dedicated: db}" in cond["message"] and not pod["spec"].get("nodeName")
        alpha.kubectl("cordon", "virtual-node")
        assert _until(lambda: _taints(alpha) == [("dedicated", "db", "NoSchedule"),
                                                 ("node.kubernetes.io/unschedulable", "", "NoSchedule")]), \
            _taints(alpha)
        alpha.kubectl("uncordon", "virtual-node")
        assert _until(lambda: _taints(alpha) == [("dedicated", "db", "NoSchedule")]), _taints(alpha)
        time.sleep(2)  # nothing else removes it later either
        assert _taints(alpha) == [("dedicated", "db", "NoSchedule")]
        assert not alpha.pod("untolerating")["spec"].get("nodeName")
        alpha.kubectl("taint", "node", "virtual-node", "dedicated-")
        alpha.wait_pod("untolerating", lambda p: p["status"].get("phase") == "Running")
    finally:
        alpha.kubectl("uncordon", "virtual-node", check=False)
        alpha.kubectl("taint", "node", "virtual-node", "dedicated-", check=False)
        alpha.kubectl("delete", "pod", "untolerating", "tolerant", "--wait=false", check=False)


def test_kubectl_run_and_logs(alpha):
    alpha.kubectl("run", "hello", f"--image={IMAGE}", "--image-pull-policy=IfNotPresent", "--restart=Never",
                  "--", "sh", "-c", "echo hello from a tenant pod; sleep 3600")
    pod = alpha.wait_pod("hello", lambda p: p["status"].get("phase") == "Running")
    assert pod["spec"]["nodeName"] == "virtual-node" and pod["status"]["podIP"]
    assert condition(pod, "Ready") == "True"
    deadline = time.monotonic() + 20
    out = ""
    while time.monotonic() < deadline and "hello from a tenant pod" not in out:
        out = alpha.kubectl("logs", "hello", check=False).stdout
        time.sleep(0.3)
    assert "hello from a tenant pod" in out


def test_logs_follow(alpha):
    alpha.kubectl("run", "ticker", f"--image={IMAGE}", "--image-pull-policy=IfNotPresent", "--restart=Never",
                  "--", "sh", "-c", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done")
    alpha.wait_pod("ticker", lambda p: p["status"].get("phase") == "Running")
    proc = subprocess.Popen([str(alpha.meta.bindir / "kubectl"), f"--kubeconfig={alpha.kubeconfig}", "logs", "-f",
                             "ticker"], stdout=subprocess.PIPE, text=True)
    try:
        lines = [proc.stdout.readline() for _ in range(8)]
    finally:
        proc.kill()
    assert all(line.startswith("tick ") for line in lines), lines


def test_deployment_runs_pods_as_sandboxes(meta, alpha):
    alpha.kubectl("create", "deployment", "web", f"--image={IMAGE}", "--replicas=3")
    alpha.kubectl("rollout", "status", "deployment/web", "--timeout=120s")
    pods = json.loads(alpha.kubectl("get", "pods", "-l", "app=web", "-o", "json").stdout)["items"]
    assert len(pods) == 3 and all(p["status"]["phase"] == "Running" and p["status"]["podIP"] for p in pods)
    ns = meta.get("serverlesscluster", "alpha", "default")["status"]["sandboxNamespace"]
    sbps = json.loads(meta.kubectl("get", "sandboxpods", "-n", ns, "-l", "sk8s.io/pod-namespace=default",
                                   "-o", "json").stdout)["items"]
    by_uid = {s["metadata"]["labels"]["sk8s.io/pod-uid"]: s for s in sbps}
    for p in pods:
        sbp = by_uid[p["metadata"]["uid"]]
        assert sbp["status"]["podIP"] == p["status"]["podIP"]
    # Scale down: the removed pods' sandboxes go too.
    alpha.kubectl("scale", "deployment/web", "--replicas=1")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        left = json.loads(meta.kubectl("get", "sandboxpods", "-n", ns, "-o", "json").stdout)["items"]
        web = [s for s in left if s["metadata"]["labels"].get("sk8s.io/pod-name", "").startswith("web-")]
        if len(web) == 1:
            break
        time.sleep(0.3)
    assert len(web) == 1


def test_job_runs_to_complete(alpha):
    alpha.kubectl("create", "job", "once", f"--image={IMAGE}", "--", "sh", "-c", "echo done")
    alpha.kubectl("wait", "--for=condition=Complete", "job/once", "--timeout=120s")


def test_env_from_secret_and_configmap(alpha):
    alpha.kubectl("create", "secret", "generic", "creds", "--from-literal=password=s3cr3t")
    alpha.kubectl("create", "configmap", "settings", "--from-literal=mode=fast")
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "envy"}, "spec": {
        "restartPolicy": "Never", "containers": [{
            "name": "main", "image": IMAGE, "imagePullPolicy": "IfNotPresent",
            "command": ["sh", "-c", "echo pw=$PW mode=$MODE; sleep 3600"],
            "env": [{"name": "PW", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
                    {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}}]}]}}
    alpha.kubectl("apply", "-f", "-", input=yaml.safe_dump(pod))
    alpha.wait_pod("envy", lambda p: p["status"].get("phase") == "Running")
    deadline = time.monotonic() + 20
    out = ""
    while time.monotonic() < deadline and "pw=" not in out:
        out = alpha.kubectl("logs", "envy", check=False).stdout
        time.sleep(0.3)
    assert "pw=s3cr3t mode=fast" in out


def test_quota_limits_pods(beta):
    for i in range(3):
        beta.kubectl("run", f"q{i}", f"--image={IMAGE}", "--image-pull-policy=IfNotPresent", "--restart=Never",
                     "--", "sleep", "3600")
    beta.wait_pod("q0", lambda p: p["status"].get("phase") == "Running")
    beta.wait_pod("q1", lambda p: p["status"].get("phase") == "Running")
    pending = beta.wait_pod("q2", lambda p: any(c["type"] == "PodScheduled" and c["status"] == "False"
                                                for c in p["status"].get("conditions") or []), timeout=30)
    cond = next(c for c in pending["status"]["conditions"] if c["type"] == "PodScheduled")
    assert cond["reason"] == "Unschedulable" and "pods" in cond["message"]
    beta.kubectl("delete", "pod", "q0", "--timeout=60s")
    beta.wait_pod("q2", lambda p: p["status"].get("phase") == "Running")
    beta.kubectl("delete", "pod", "q1", "q2", "--grace-period=1", "--timeout=60s")


def test_credentials_do_not_cross_tenants(meta, alpha, beta):
    # alpha's admin credentials against beta's API and against the meta-cluster
    beta_server = yaml.safe_load(beta.kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
    for server, ca in ((beta_server, beta.kubeconfig), (None, meta.kubeconfig)):
        cfg = yaml.safe_load(alpha.kubeconfig.read_text())
        other = yaml.safe_load(ca.read_text())
        cfg["clusters"][0]["cluster"] = other["clusters"][0]["cluster"]  # trust the other CA, keep alpha's cert
        path = meta.home / "cross.kubeconfig"
        path.write_text(yaml.safe_dump(cfg))
        proc = subprocess.run([str(meta.bindir / "kubectl"), f"--kubeconfig={path}", "get", "pods", "-A"],
                              text=True, capture_output=True, timeout=30)
        assert proc.returncode != 0 and "Unauthorized" in proc.stderr, proc.stderr


def test_sandboxes_of_different_tenants_cannot_talk(alpha, beta):
    beta.kubectl("run", "target", f"--image={IMAGE}", "--image-pull-policy=IfNotPresent", "--restart=Never")
    target_ip = beta.wait_pod("target", lambda p: p["status"].get("phase") == "Running")["status"]["podIP"]
    alpha.kubectl("run", "friend", f"--image={IMAGE}", "--image-pull-policy=IfNotPresent", "--restart=Never")
    friend_ip = alpha.wait_pod("friend", lambda p: p["status"].get("phase") == "Running")["status"]["podIP"]
    probe = (f"sleep 1; timeout 3 wget -q -O- http://{friend_ip}/ >/dev/null && echo same-tenant=ok || echo same-tenant=fail; "
             f"timeout 3 wget -q -O- http://{target_ip}/ >/dev/null && echo other-tenant=ok || echo other-tenant=blocked")
    alpha.kubectl("run", "prober", f"--image={IMAGE}", "--image-pull-policy=IfNotPresent", "--restart=Never",
                  "--", "sh", "-c", probe)
    alpha.wait_pod("prober", lambda p: p["status"].get("phase") in ("Succeeded", "Failed"), timeout=60)
    out = alpha.kubectl("logs", "prober").stdout
    assert "same-tenant=ok" in out and "other-tenant=blocked" in out, out


def test_deleting_a_cluster_leaves_nothing(meta):
    t = make_cluster(meta, "gamma")
    t.kubectl("create", "deployment", "w", f"--image={IMAGE}", "--replicas=2")
    t.kubectl("rollout", "status", "deployment/w", "--timeout=120s")
    sc = meta.get("serverlesscluster", "gamma", "default")
    uid, ns = sc["metadata"]["uid"], sc["status"]["sandboxNamespace"]
    from operators.config import home_id
    plane_dirs = [d for d in (meta.home / "planes").iterdir() if (d / "claimed-by").exists()
                  and (d / "claimed-by").read_text() == uid]
    assert len(plane_dirs) == 1
    plane = json.loads((plane_dirs[0] / "plane.json").read_text())
    pids = [int(p.read_text()) for p in (plane_dirs[0] / "run").glob("*.pid")]
    assert len(pids) == 3
    meta.kubectl("delete", "serverlesscluster", "gamma", "--timeout=180s")

    assert meta.kubectl("get", "namespace", ns, check=False).returncode != 0
    assert meta.kubectl("get", "secret", "gamma-kubeconfig", check=False).returncode != 0
    assert not plane_dirs[0].exists()
    import os
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    left = meta.podman("ps", "-a", "--format=json", f"--filter=label=sk8s.io/cluster-uid={uid}").stdout
    assert json.loads(left or "[]") == []
    nets = meta.podman("network", "ls", "--format=json").stdout
    assert f"sk8s-{home_id(meta.home)}-{uid[:12]}" not in nets
    etcd = meta.state()["components"]["etcd"]["url"].rsplit("/", 1)[0]
    prefix = (plane["etcdPrefix"] + "/").encode()
    body = json.dumps({"key": base64.b64encode(prefix).decode(),
                       "range_end": base64.b64encode(prefix[:-1] + b"0").decode(), "count_only": True})
    import urllib.request
    req = urllib.request.Request(f"{etcd}/v3/kv/range", data=body.encode(), method="POST")
    import ssl
    ctx = ssl.create_default_context(cafile=str(meta.home / "pki/etcd/ca.crt"))  # etcd speaks TLS only
    ctx.load_cert_chain(str(meta.home / "pki/etcd/healthcheck-client.crt"),
                        str(meta.home / "pki/etcd/healthcheck-client.key"))
    count = json.loads(urllib.request.urlopen(req, timeout=5, context=ctx).read()).get("count", "0")
    assert int(count) == 0


def test_cli_cluster_create_and_kubeconfig(meta):
    out = meta.sk8s("cluster", "create", "delta").stdout
    assert "is Ready in" in out
    path = out.strip().splitlines()[-1]
    nodes = subprocess.run([str(meta.bindir / "kubectl"), f"--kubeconfig={path}", "get", "nodes"],
                           text=True, capture_output=True, timeout=30)
    assert "virtual-node" in nodes.stdout and "Ready" in nodes.stdout
    meta.kubectl("delete", "serverlesscluster", "delta", "--timeout=180s")


def test_invalid_cluster_is_rejected(meta):
    bad = {"apiVersion": "sk8s.io/v1alpha1", "kind": "ServerlessCluster", "metadata": {"name": "bad"},
           "spec": {"version": "v1.20.0"}}
    proc = meta.apply(bad, "default", check=False)
    assert proc.returncode != 0 and "spec.version: Unsupported value" in proc.stderr
    bad["spec"] = {"provider": "aliyun"}
    proc = meta.apply(bad, "default", check=False)
    assert proc.returncode != 0 and "region is required" in proc.stderr
    bad["spec"] = {"quotas": {"memory": "a lot"}}
    proc = meta.apply(bad, "default", check=False)
    assert proc.returncode != 0 and "spec.quotas.memory" in proc.stderr


def _vnode_pid(meta, cluster: str) -> int:
    uid = meta.get("serverlesscluster", cluster, "default")["metadata"]["uid"]
    for d in (meta.home / "planes").iterdir():
        if (d / "claimed-by").exists() and (d / "claimed-by").read_text() == uid:
            return int((d / "run" / "virtual-node.pid").read_text())
    raise AssertionError(f"no plane for {cluster}")


def test_readiness_does_not_flap_when_the_heartbeat_is_late(meta, alpha):
    import os
    import signal
    alpha.kubectl("run", "steady", f"--image={IMAGE}", "--image-pull-policy=IfNotPresent", "--restart=Never")
    alpha.wait_pod("steady", lambda p: condition(p, "Ready") == "True")
    pid = _vnode_pid(meta, "alpha")
    os.kill(pid, signal.SIGSTOP)  # no heartbeats, no status writes, for longer than a lease (40 s is too long
    try:                          # for a test; the node-lifecycle controller would act after its grace anyway)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            assert condition(alpha.pod("steady"), "Ready") == "True"
            time.sleep(1)
    finally:
        os.kill(pid, signal.SIGCONT)
    assert condition(alpha.pod("steady"), "Ready") == "True"


def test_virtual_node_restart_reconciles_both_sides(meta, alpha):
    import os
    import signal
    alpha.kubectl("run", "keep", f"--image={IMAGE}", "--image-pull-policy=IfNotPresent", "--restart=Never")
    alpha.kubectl("run", "drop", f"--image={IMAGE}", "--image-pull-policy=IfNotPresent", "--restart=Never")
    alpha.wait_pod("keep", lambda p: p["status"].get("phase") == "Running")
    drop_uid = alpha.wait_pod("drop", lambda p: p["status"].get("phase") == "Running")["metadata"]["uid"]
    pid = _vnode_pid(meta, "alpha")
    os.kill(pid, signal.SIGKILL)
    # While the node is down: one pod is deleted, one is created.
    alpha.kubectl("delete", "pod", "drop", "--wait=false")
    alpha.kubectl("run", "late", f"--image={IMAGE}", "--image-pull-policy=IfNotPresent", "--restart=Never")
    # The operator's health check restarts the virtual node; it catches up on both sides.
    alpha.wait_pod("late", lambda p: p["status"].get("phase") == "Running", timeout=60)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and alpha.kubectl("get", "pod", "drop", check=False).returncode == 0:
        time.sleep(0.5)
    assert alpha.kubectl("get", "pod", "drop", check=False).returncode != 0, "pod stuck Terminating"
    ns = meta.get("serverlesscluster", "alpha", "default")["status"]["sandboxNamespace"]
    sbps = json.loads(meta.kubectl("get", "sandboxpods", "-n", ns, "-o", "json").stdout)["items"]
    uids = [s["metadata"]["labels"]["sk8s.io/pod-uid"] for s in sbps]
    assert drop_uid not in uids and len(uids) == len(set(uids))
    assert _vnode_pid(meta, "alpha") != pid
    assert alpha.pod("keep")["status"]["phase"] == "Running"
