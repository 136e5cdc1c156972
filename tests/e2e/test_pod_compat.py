"""Compatibility at admission: what sk8s cannot run is refused by kubectl at once, with the
field named, for bare pods and for the pod templates of workloads alike."""
from __future__ import annotations

import json

import pytest
import yaml

from .conftest import IMAGE
from .tenant import delete_cluster, make_cluster

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def compat(meta):
    t = make_cluster(meta, "compat")
    yield t
    delete_cluster(meta, "compat")


def pod_spec(**extra) -> dict:
    container = {"name": "app", "image": IMAGE, "imagePullPolicy": "IfNotPresent"}
    container.update(extra.pop("container", {}))
    return {"containers": [container], **extra}


def create(t, obj: dict):
    return t.kubectl("create", "-f", "-", input=yaml.safe_dump(obj), check=False)


def pod(name: str, **extra) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": pod_spec(**extra)}


REFUSED = [
    ("hostnet", {"hostNetwork": True}, "spec.hostNetwork: Forbidden"),
    ("hostpid", {"hostPID": True}, "spec.hostPID: Forbidden"),
    ("hostipc", {"hostIPC": True}, "spec.hostIPC: Forbidden"),
    ("hostport", {"container": {"ports": [{"containerPort": 80, "hostPort": 8080}]}},
     "spec.containers[name=app].ports.hostPort: Forbidden"),
    ("hostpath", {"volumes": [{"name": "root", "hostPath": {"path": "/"}}]},
     "spec.volumes[name=root].hostPath: Forbidden"),
    ("pvc", {"volumes": [{"name": "claim", "persistentVolumeClaim": {"claimName": "data"}}]},
     "spec.volumes[name=claim]: Unsupported value: sk8s supports emptyDir, configMap, secret, downwardAPI, nfs"),
    # serviceAccountToken and clusterTrustBundle projections are served
    # (test_pod_serviceaccount.py, test_pod_volumes.py); CSI volumes have no driver here.
    ("csi", {"volumes": [{"name": "c", "csi": {"driver": "secrets-store.csi.k8s.io"}}]},
     "spec.volumes[name=c]: Unsupported value"),
    # subPathExpr is honoured (test_pod_fields.py), but not on nfs volumes, as subPath.
    ("subpathexpr-nfs", {"volumes": [{"name": "d", "nfs": {"server": "nfs.example.com", "path": "/x"}}],
                         "container": {"volumeMounts": [{"name": "d", "mountPath": "/d",
                                                         "subPathExpr": "$(POD_NAME)"}]}},
     "spec.containers[name=app].volumeMounts.subPath: Forbidden"),
]


@pytest.mark.parametrize("name,extra,field", REFUSED, ids=[r[0] for r in REFUSED])
def test_unsupported_pod_fields_are_refused_naming_the_field(compat, name, extra, field):
    proc = create(compat, pod(name, **extra))
    assert proc.returncode != 0
    assert field in proc.stderr and "sk8s-compatibility" in proc.stderr, proc.stderr
    print(proc.stderr.strip())
    assert compat.kubectl("get", "pod", name, check=False).returncode != 0  # nothing left Pending


def test_privileged_is_refused_by_the_apiserver(compat):
    proc = create(compat, pod("priv", container={"securityContext": {"privileged": True}}))
    assert proc.returncode != 0
    assert "spec.containers[0].securityContext.privileged: Forbidden: disallowed by cluster policy" in proc.stderr


def test_deployment_with_an_unsupported_template_is_refused(compat):
    dep = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
           "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                    "template": {"metadata": {"labels": {"app": "web"}},
                                 "spec": pod_spec(hostNetwork=True)}}}
    proc = create(compat, dep)
    assert proc.returncode != 0
    assert "spec.template.spec.hostNetwork: Forbidden" in proc.stderr, proc.stderr
    dep["spec"]["template"]["spec"] = pod_spec(container={"securityContext": {"privileged": True}})
    proc = create(compat, dep)
    assert proc.returncode != 0
    assert "spec.template.spec.containers[0].securityContext.privileged: Forbidden" in proc.stderr, proc.stderr
    cron = {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "tick"},
            "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": {"spec": pod_spec(
                restartPolicy="Never", volumes=[{"name": "h", "hostPath": {"path": "/etc"}}])}}}}}
    proc = create(compat, cron)
    assert "spec.jobTemplate.spec.template.spec.volumes[name=h].hostPath: Forbidden" in proc.stderr, proc.stderr


def test_statefulset_volume_claim_templates_are_refused(compat):
    sts = {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
           "spec": {"serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                    "template": {"metadata": {"labels": {"app": "db"}}, "spec": pod_spec()},
                    "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
                        "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]}}
    proc = create(compat, sts)
    assert proc.returncode != 0
    assert "spec.volumeClaimTemplates: Forbidden" in proc.stderr, proc.stderr


def test_a_daemonset_runs_one_pod_on_the_virtual_node(compat):
    ds = {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"},
          "spec": {"selector": {"matchLabels": {"app": "agent"}},
                   "template": {"metadata": {"labels": {"app": "agent"}}, "spec": pod_spec()}}}
    assert create(compat, ds).returncode == 0, "DaemonSets are accepted"
    try:
        compat.kubectl("rollout", "status", "daemonset/agent", "--timeout=120s", timeout=130)
        st = json.loads(compat.kubectl("get", "daemonset", "agent", "-o", "json").stdout)["status"]
        assert (st["desiredNumberScheduled"], st["numberReady"]) == (1, 1), st
        pods = json.loads(compat.kubectl("get", "pods", "-l", "app=agent", "-o", "json").stdout)["items"]
        node = json.loads(compat.kubectl("get", "nodes", "-o", "json").stdout)["items"][0]["metadata"]["name"]
        assert [(p["spec"]["nodeName"], p["status"]["phase"]) for p in pods] == [(node, "Running")]
        # pinned to that node by the DaemonSet controller's required node affinity
        terms = pods[0]["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        assert terms["nodeSelectorTerms"][0]["matchFields"][0]["values"] == [node]
    finally:
        compat.kubectl("delete", "daemonset", "agent", "--wait=false", check=False)


def test_supported_specs_pass_and_run(compat):
    ok = pod("fine", volumes=[{"name": "d", "emptyDir": {}}],
             container={"ports": [{"containerPort": 80}], "volumeMounts": [{"name": "d", "mountPath": "/d"}]})
    assert create(compat, ok).returncode == 0
    compat.wait_pod("fine", lambda p: p["status"].get("phase") == "Running")
    # The service-account token volume every pod gets is let through (and mounted:
    # test_pod_serviceaccount.py).
    vols = [v["name"] for v in json.loads(compat.kubectl("get", "pod", "fine", "-o", "json").stdout)["spec"]["volumes"]]
    assert any(v.startswith("kube-api-access-") for v in vols)
