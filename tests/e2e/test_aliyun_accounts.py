"""A tenant cluster in its own cloud account (`spec.credentialsSecretRef`), end to end
against the emulator, whose accounts see only their own resources: the cluster waits for
its Secret with a clear condition, builds everything in its account (network, ECI groups,
SLB), serves logs through it, takes a rotated key without a restart, never copies the key
into the tenant cluster or a log, and leaves its account empty when deleted."""
from __future__ import annotations

import json
import time

import pytest

from .conftest import IMAGE, until
from .tenant import Tenant, cluster_uid, make_cluster
from .test_aliyun_cluster import REGION, control, provider_ready, tagged
from .test_aliyun_provider import emulator

pytestmark = pytest.mark.e2e
NAME, SECRET = "ali-own", "ali-own-key"
KEY1 = ("LTAI-tenant-b-1", "tenant-b-secret-one-3f9c2a")
KEY2 = ("LTAI-tenant-b-2", "tenant-b-secret-two-81d0e7")


def of_account(meta, account: str, uid: str) -> dict[str, list]:
    """The inventory's items of cluster `uid`, by kind, that belong to `account`."""
    out = {}
    for kind, items in emulator(meta, "inventory").items():
        mine = [i for i in tagged(items, uid) if i.get("Account") == account]
        if mine:
            out[kind] = mine
    return out


def key_secret(key: tuple[str, str]) -> dict:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": SECRET},
            "stringData": {"access-key-id": key[0], "access-key-secret": key[1]}}


@pytest.fixture(scope="module")
def own(meta):
    control(meta, "accounts", {"name": "tenant-b", "keys": {KEY1[0]: KEY1[1], KEY2[0]: KEY2[1]}})
    yield
    meta.kubectl("delete", "serverlesscluster", NAME, "--wait=false", check=False)
    meta.kubectl("delete", "secret", SECRET, check=False)


def test_admission_names_the_field(meta):
    def refused(spec: dict) -> str:
        obj = {"apiVersion": "sk8s.io/v1alpha1", "kind": "ServerlessCluster", "metadata": {"name": "acct-x"},
               "spec": spec}
        out = meta.kubectl("create", "--dry-run=server", "-n", "default", "-f", "-", input=json.dumps(obj),
                           check=False)
        assert out.returncode != 0
        return out.stderr
    err = refused({"provider": "local", "credentialsSecretRef": {"name": "k"}})
    assert "spec.credentialsSecretRef" in err and "only the aliyun provider" in err, err
    err = refused({"provider": "aliyun", "region": REGION, "credentialsSecretRef": {"name": "Not/A/Name"}})
    assert "spec.credentialsSecretRef.name" in err, err


def test_the_cluster_waits_for_its_secret_and_builds_in_its_account(meta, own):
    meta.apply({"apiVersion": "sk8s.io/v1alpha1", "kind": "ServerlessCluster", "metadata": {"name": NAME},
                "spec": {"provider": "aliyun", "region": REGION, "credentialsSecretRef": {"name": SECRET}}},
               "default")
    cond = until(lambda: (c := provider_ready(meta, NAME)) and c["status"] == "False" and c, 30,
                 "ProviderReady=False without the Secret")
    assert cond["reason"] == "MissingCredentials", cond
    assert f"spec.credentialsSecretRef: Secret default/{SECRET} not found" in cond["message"], cond
    uid = cluster_uid(meta, NAME)
    assert not any(tagged(items, uid) for items in emulator(meta, "inventory").values())

    meta.apply(key_secret(KEY1), "default")
    meta.kubectl("wait", "--for=condition=Ready", f"serverlesscluster/{NAME}", "--timeout=120s", timeout=130)
    mine = of_account(meta, "tenant-b", uid)
    assert {"Vpc", "VSwitch", "SecurityGroup"} <= mine.keys(), mine.keys()
    assert of_account(meta, "default", uid) == {}
    # A refusal of the update names the field (the cluster's resources live in that account).
    out = meta.kubectl("patch", "serverlesscluster", NAME, "--type=merge", "-p",
                       json.dumps({"spec": {"credentialsSecretRef": {"name": "another"}}}), check=False)
    assert out.returncode != 0 and "spec.credentialsSecretRef is immutable" in out.stderr, out.stderr


def tenant(meta) -> Tenant:
    return make_cluster(meta, NAME, provider="aliyun", region=REGION, credentialsSecretRef={"name": SECRET})


def test_pods_load_balancers_and_logs_go_through_the_clusters_account(meta, own):
    t, uid = tenant(meta), cluster_uid(meta, NAME)
    t.kubectl("run", "talker", f"--image={IMAGE}", "--", "sh", "-c", "echo talking-in-b; exec sleep 3600")
    t.wait_pod("talker", lambda p: p["status"].get("phase") == "Running", timeout=120)
    t.kubectl("expose", "pod", "talker", "--port=80", "--name=talker", "--type=LoadBalancer")
    ip = until(lambda: t.kubectl("get", "svc", "talker", "-o",
                                 "jsonpath={.status.loadBalancer.ingress[0].ip}").stdout.strip(), 90, "EXTERNAL-IP")
    mine = of_account(meta, "tenant-b", uid)
    assert len(mine["ContainerGroup"]) == 1, mine.keys()
    assert ip in {lb["Address"] for lb in mine["LoadBalancer"]}, mine["LoadBalancer"]  # (and the ClusterIPs' SLBs)
    assert of_account(meta, "default", uid) == {}
    assert "talking-in-b" in until(lambda: t.kubectl("logs", "talker").stdout, 30, "the pod's log")


def test_a_rotated_key_is_used_without_a_restart(meta, own):
    t = tenant(meta)
    meta.apply(key_secret(KEY2), "default")
    until(lambda: "CredentialsRotated" in meta.kubectl(
        "get", "events", f"--field-selector=involvedObject.name={NAME}").stdout, 30, "a CredentialsRotated Event")
    control(meta, "keys", {"disable": [KEY1[0]]})  # the old key is off: every call must use the new one
    try:
        t.kubectl("run", "after", f"--image={IMAGE}", "--", "sh", "-c", "echo with-key-two; exec sleep 3600")
        t.wait_pod("after", lambda p: p["status"].get("phase") == "Running", timeout=120)
        assert "with-key-two" in until(lambda: t.kubectl("logs", "after").stdout, 30, "the pod's log")
        assert provider_ready(meta, NAME)["status"] == "True"
    finally:
        control(meta, "keys", {"enable": [KEY1[0]]})


def test_the_key_reaches_neither_the_tenant_nor_a_log(meta, own):
    t = tenant(meta)
    every_secret = t.kubectl("get", "secrets,configmaps", "-A", "-o", "json").stdout
    for _, secret in (KEY1, KEY2):
        assert secret not in every_secret
        for log in (meta.home / "logs").rglob("*.log"):
            assert secret not in log.read_text(errors="replace"), log


def test_deleting_the_cluster_empties_its_account(meta, own):
    uid = cluster_uid(meta, NAME)
    meta.kubectl("delete", "serverlesscluster", NAME, "--timeout=240s", timeout=260)
    until(lambda: not of_account(meta, "tenant-b", uid), 60, "nothing left in account tenant-b")
    store = meta.home / "pki" / "aliyun-accounts"
    deadline = time.monotonic() + 10
    while (store / uid).exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not (store / uid).exists()
