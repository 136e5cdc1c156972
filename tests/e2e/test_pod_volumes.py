"""Pod volumes end to end through plain kubectl: emptyDir (disk, memory), ConfigMap, Secret
and downward API files (modes, items, updates), shared between containers, and NFS."""
from __future__ import annotations

import ctypes
import errno
import json
import os
import platform
import shutil
import socket
import subprocess
import tempfile
import time

import pytest
import yaml

from .conftest import IMAGE, NFS_HOST
from .tenant import delete_cluster, make_cluster

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def vol(meta):
    t = make_cluster(meta, "vol", quotas={"maxPods": 20, "cpu": "8", "memory": "8Gi"})
    yield t
    delete_cluster(meta, "vol")


@pytest.fixture(autouse=True)
def _clean_pods(request):
    yield
    if "vol" in request.fixturenames:  # sandboxes go while later tests run, not all at teardown
        request.getfixturevalue("vol").kubectl("delete", "pods", "--all", "--wait=false", check=False)


def container(name: str, script: str, **extra) -> dict:
    return {"name": name, "image": IMAGE, "imagePullPolicy": "IfNotPresent", "command": ["sh", "-c", script],
            **extra}


def apply(t, obj: dict) -> None:
    t.kubectl("apply", "-f", "-", input=yaml.safe_dump(obj))


def pod(name: str, containers: list[dict], volumes: list[dict], **meta) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, **meta},
            "spec": {"containers": containers, "volumes": volumes, "terminationGracePeriodSeconds": 1}}


def running(p: dict) -> bool:
    return p["status"].get("phase") == "Running"


def wait_logs(t, name: str, needle: str, container: str | None = None, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    out = ""
    args = ["logs", name] + ([f"-c={container}"] if container else [])
    while time.monotonic() < deadline:
        out = t.kubectl(*args, check=False).stdout
        if needle in out:
            return out
        time.sleep(0.3)
    raise AssertionError(f"{name}: {needle!r} not in logs within {timeout}s:\n{out}")


def test_containers_share_an_emptydir_with_subpath_and_readonly(vol):
    writer = container("writer", "mkdir -p /data/logs; echo hello > /data/logs/msg; sleep 3600",
                       volumeMounts=[{"name": "data", "mountPath": "/data"}])
    reader = container("reader", "until [ -f /logs/msg ]; do sleep 0.2; done; echo got $(cat /logs/msg); "
                                 "touch /logs/x 2>/dev/null && echo writable || echo read-only; sleep 3600",
                       volumeMounts=[{"name": "data", "mountPath": "/logs", "subPath": "logs", "readOnly": True}])
    apply(vol, pod("share", [writer, reader], [{"name": "data", "emptyDir": {}}]))
    vol.wait_pod("share", running)
    out = wait_logs(vol, "share", "read-only", container="reader")
    assert "got hello" in out


def test_emptydir_size_limits_memory_and_disk(vol):
    c = container("main", "grep ' /cache ' /proc/mounts; df -k /cache | tail -1; "
                          "dd if=/dev/zero of=/cache/big bs=1M count=32 2>&1; echo mem-done; "
                          "grep ' /scratch ' /proc/mounts; dd if=/dev/zero of=/scratch/big bs=1M count=32 2>&1; "
                          "echo done; sleep 3600",
                  volumeMounts=[{"name": "cache", "mountPath": "/cache"}, {"name": "scratch", "mountPath": "/scratch"}])
    apply(vol, pod("mem", [c], [{"name": "cache", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}},
                                {"name": "scratch", "emptyDir": {"sizeLimit": "8Mi"}}]))
    vol.wait_pod("mem", running)
    out = wait_logs(vol, "mem", "done")
    mem, disk = out.split("mem-done")
    assert "tmpfs /cache tmpfs" in mem
    assert " 16384 " in mem  # df: the volume's size is its sizeLimit
    assert "No space left on device" in mem  # writing past the limit fails
    # A disk emptyDir past its sizeLimit: ENOSPC from a disk-backed filesystem of that size
    # (a kubelet would evict the pod instead).
    assert " /scratch ext4 " in disk and "No space left on device" in disk


def test_configmap_secret_and_downward_api_files(vol):
    vol.kubectl("create", "configmap", "web-config", "--from-literal=app.conf=port=80",
                "--from-literal=extra=unused")
    vol.kubectl("create", "secret", "generic", "web-creds", "--from-literal=user=admin", "--from-literal=password=s3cret")
    script = ("for f in /etc/web/conf/app.conf /etc/web/creds/user /etc/web/creds/password /etc/info/labels "
              "/etc/info/name /etc/info/cpu; do echo \"$f $(stat -L -c %a $f) [$(cat $f | tr '\\n' ';')]\"; done; "
              "ls /etc/web/conf; echo single $(cat /etc/app.conf); "
              "echo bundle $(cat /etc/bundle/app.conf) $(cat /etc/bundle/user) $(cat /etc/bundle/pod); echo end; "
              "sleep 3600")
    c = container("main", script, resources={"limits": {"cpu": "500m", "memory": "64Mi"}},
                  volumeMounts=[{"name": "conf", "mountPath": "/etc/web/conf"},
                                {"name": "conf", "mountPath": "/etc/app.conf", "subPath": "app.conf"},
                                {"name": "creds", "mountPath": "/etc/web/creds"},
                                {"name": "info", "mountPath": "/etc/info"},
                                {"name": "bundle", "mountPath": "/etc/bundle"}])
    volumes = [
        {"name": "conf", "configMap": {"name": "web-config", "items": [{"key": "app.conf", "path": "app.conf",
                                                                       "mode": 0o640}]}},
        {"name": "creds", "secret": {"secretName": "web-creds", "defaultMode": 0o400}},
        {"name": "info", "downwardAPI": {"items": [
            {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
            {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
            {"path": "cpu", "resourceFieldRef": {"containerName": "main", "resource": "limits.cpu",
                                                 "divisor": "1m"}}]}},
        {"name": "bundle", "projected": {"sources": [
            {"configMap": {"name": "web-config", "items": [{"key": "app.conf", "path": "app.conf"}]}},
            {"secret": {"name": "web-creds", "items": [{"key": "user", "path": "user"}]}},
            {"downwardAPI": {"items": [{"path": "pod", "fieldRef": {"fieldPath": "metadata.name"}}]}}]}},
    ]
    apply(vol, pod("files", [c], volumes, labels={"app": "web", "tier": "front"}))
    vol.wait_pod("files", running, timeout=120)  # a loaded machine may need a provider retry or two
    out = wait_logs(vol, "files", "end")
    assert "/etc/web/conf/app.conf 640 [port=80]" in out
    assert "/etc/web/creds/user 400 [admin]" in out and "/etc/web/creds/password 400 [s3cret]" in out
    assert '/etc/info/labels 644 [app="web";tier="front"]' in out
    assert "/etc/info/name 644 [files]" in out and "/etc/info/cpu 644 [500]" in out
    assert "single port=80" in out  # one file of a ConfigMap volume, through subPath
    assert "bundle port=80 admin files" in out  # a projected volume merges its sources
    assert "extra" not in out.split("/etc/info/cpu")[1]  # items: only the listed key is a file

    # In the meta-cluster the files travel in one Secret owned by the SandboxPod: it goes with the pod.
    def content_secrets():
        return json.loads(vol.meta.kubectl("get", "secrets", "-A", "-l",
                                           "sk8s.io/volume-content=true,sk8s.io/pod-name=files",
                                           "-o", "json").stdout)["items"]
    [secret] = content_secrets()
    assert [o["kind"] for o in secret["metadata"]["ownerReferences"]] == ["SandboxPod"]
    # ... and the service-account token volume every pod gets (test_pod_serviceaccount.py)
    tokens = {k for k in secret["data"] if k.startswith("kube-api-access-")}
    assert len(tokens) == 1 and set(secret["data"]) - tokens == {"conf", "creds", "info", "bundle"}
    vol.kubectl("delete", "pod", "files", "--wait=true")
    deadline = time.monotonic() + 30
    while content_secrets() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert content_secrets() == []


def test_configmap_and_label_updates_reach_running_pods(vol):
    vol.kubectl("create", "configmap", "live", "--from-literal=greeting=hello")
    c = container("main", "ls -la /cfg | grep -o '[.][.]data -> .*'; "
                          "while true; do echo \"now $(cat /cfg/greeting) $(cat /info/labels | tr '\\n' ' ')\"; "
                          "sleep 0.3; done",
                  volumeMounts=[{"name": "cfg", "mountPath": "/cfg"}, {"name": "info", "mountPath": "/info"}])
    apply(vol, pod("live", [c], [{"name": "cfg", "configMap": {"name": "live"}},
                                 {"name": "info", "downwardAPI": {"items": [
                                     {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}}],
                   labels={"version": "v1"}))
    vol.wait_pod("live", running)
    out = wait_logs(vol, "live", 'now hello version="v1"')
    assert "..data -> ..20" in out  # the kubelet's layout: ..data points at a timestamped directory
    t0 = time.monotonic()
    vol.kubectl("patch", "configmap", "live", "--type=merge", "-p", '{"data":{"greeting":"bonjour"}}')
    wait_logs(vol, "live", "now bonjour", timeout=15)
    took = time.monotonic() - t0
    print(f"ConfigMap update visible in the running pod after {took:.2f}s")
    vol.kubectl("label", "pod", "live", "version=v2", "--overwrite")
    wait_logs(vol, "live", 'version="v2"', timeout=15)
    # Every line shows a whole file: the swap is atomic, never an empty or half-written file.
    lines = [ln for ln in vol.kubectl("logs", "live").stdout.splitlines() if ln.startswith("now")]
    assert all(ln.split()[1] in ("hello", "bonjour") for ln in lines)
    assert took < 15


def failed_mount(t, pod_name: str, needle: str, timeout: float = 30) -> str:
    """The messages of the pod's FailedMount events, once one contains `needle`."""
    deadline = time.monotonic() + timeout
    msg = ""
    while time.monotonic() < deadline and needle not in msg:
        events = json.loads(t.kubectl("get", "events", f"--field-selector=involvedObject.name={pod_name}",
                                      "-o", "json").stdout)["items"]
        msg = " ".join(e.get("message", "") for e in events if e.get("reason") == "FailedMount")
        time.sleep(0.5)
    return msg


def test_a_missing_configmap_keeps_the_pod_creating_until_it_exists(vol):
    c = container("main", "cat /cfg/key; sleep 3600", volumeMounts=[{"name": "cfg", "mountPath": "/cfg"}])
    apply(vol, pod("waits", [c], [{"name": "cfg", "configMap": {"name": "later"}}]))
    msg = failed_mount(vol, "waits", "later")
    assert 'MountVolume.SetUp failed for volume "cfg" : configmap "later" not found' in msg
    p = vol.pod("waits")
    assert p["status"]["phase"] == "Pending"
    assert p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "ContainerCreating"
    vol.kubectl("create", "configmap", "later", "--from-literal=key=arrived")
    vol.wait_pod("waits", running, timeout=30)
    wait_logs(vol, "waits", "arrived")


def trust_bundle(name: str, pem: bytes, signer: str | None = None, labels: dict | None = None) -> dict:
    return {"apiVersion": "certificates.k8s.io/v1", "kind": "ClusterTrustBundle",
            "metadata": {"name": name, "labels": labels or {}},
            "spec": {"trustBundle": pem.decode(), **({"signerName": signer} if signer else {})}}


def test_cluster_trust_bundles_are_projected_by_name_and_by_signer(vol):
    from operators.embedded.pki import make_ca
    cas = [make_ca(f"sk8s-e2e-ctb-{i}").cert_pem for i in range(3)]
    signer = "e2e.sk8s.io/ctb"
    for obj in (trust_bundle("e2e-ctb-by-name", cas[0]),
                trust_bundle("e2e.sk8s.io:ctb:alive", cas[1], signer, {"alive": "true"}),
                trust_bundle("e2e.sk8s.io:ctb:dead", cas[2], signer, {"alive": "false"})):
        apply(vol, obj)
    try:
        sources = [{"clusterTrustBundle": {"name": "e2e-ctb-by-name", "path": "by-name.pem"}},
                   {"clusterTrustBundle": {"signerName": signer, "labelSelector": {"matchLabels": {"alive": "true"}},
                                           "path": "alive.pem"}},
                   {"clusterTrustBundle": {"signerName": signer, "labelSelector": {}, "path": "all.pem"}},
                   {"clusterTrustBundle": {"name": "no-such-bundle", "path": "missing.pem", "optional": True}}]
        c = container("main", "for f in by-name alive all missing; do echo \"== $f\"; cat /ca/$f.pem; done; sleep 3600",
                      volumeMounts=[{"name": "ca", "mountPath": "/ca"}])
        apply(vol, pod("ctb", [c], [{"name": "ca", "projected": {"sources": sources}}]))
        vol.wait_pod("ctb", running, timeout=120)
        out = wait_logs(vol, "ctb", "== missing")
        sections = {part.split("\n", 1)[0]: part.split("\n", 1)[1] if "\n" in part else ""
                    for part in out.split("== ")[1:]}
        assert sections["by-name"] == cas[0].decode()
        assert sections["alive"] == cas[1].decode()
        assert sorted(sections["all"].split("-----END CERTIFICATE-----\n")) == \
            sorted((cas[1] + cas[2]).decode().split("-----END CERTIFICATE-----\n"))
        assert sections["missing"] == ""  # optional and absent: an empty file, as the kubelet writes
        # Not optional and nothing matches: the pod stays ContainerCreating, saying why.
        c = container("main", "sleep 3600", volumeMounts=[{"name": "ca", "mountPath": "/ca"}])
        apply(vol, pod("ctb-none", [c], [{"name": "ca", "projected": {"sources": [{"clusterTrustBundle": {
            "signerName": "e2e.sk8s.io/nobody", "labelSelector": {}, "path": "ca.pem"}}]}}]))
        msg = failed_mount(vol, "ctb-none", "was empty")
        assert 'combined trust anchor set for signer "e2e.sk8s.io/nobody" was empty' in msg, msg
        assert vol.pod("ctb-none")["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == \
            "ContainerCreating"
    finally:
        vol.kubectl("delete", "clustertrustbundles", "e2e-ctb-by-name", "e2e.sk8s.io:ctb:alive",
                    "e2e.sk8s.io:ctb:dead", "--wait=false", check=False)


# --- NFS ---------------------------------------------------------------------------------

def kernel_nfs_support() -> str | None:
    """Why this kernel cannot mount NFS, or None when it can: a real mount(2) of type nfs
    answers ENODEV when the kernel has no NFS client (and cannot load one)."""
    with open("/proc/filesystems") as f:
        if any(line.split()[-1] in ("nfs", "nfs4") for line in f if line.strip()):
            return None
    if shutil.which("modprobe") and subprocess.run(["modprobe", "nfs"], capture_output=True).returncode == 0:
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    with tempfile.TemporaryDirectory() as d:
        rc = libc.mount(b"127.0.0.1:/", d.encode(), b"nfs", 0, b"addr=127.0.0.1,vers=3,nolock")
        err = ctypes.get_errno()
        if rc == 0:
            libc.umount2(d.encode(), 2)
            return None
    if err == errno.ENODEV:
        modules = "has no loadable module support" if not os.path.exists("/proc/modules") else "could not load nfs"
        return (f"kernel {platform.release()} has no NFS client: 'nfs' is not in /proc/filesystems, it "
                f"{modules}, and mount(2) of type nfs fails with ENODEV")
    return None  # the kernel knows NFS (the mount failed for another reason, e.g. no server yet)


GANESHA_CONF = """
NFS_CORE_PARAM {{ Protocols = 4; NFS_Port = {port}; }}
NFSV4 {{ Graceless = true; }}
EXPORT {{
  Export_Id = 1; Path = {path}; Pseudo = /share; Access_Type = RW; Squash = No_Root_Squash;
  Protocols = 4; Transports = TCP; SecType = sys;
  FSAL {{ Name = VFS; }}
}}
LOG {{ Default_Log_Level = WARN; }}
"""


@pytest.fixture
def nfs_server(tmp_path):
    reason = kernel_nfs_support()
    if reason:
        pytest.skip(reason)
    if not shutil.which("ganesha.nfsd"):
        pytest.fail("the kernel can mount NFS but ganesha.nfsd is missing: run hack/setup.sh")
    export = tmp_path / "export"
    export.mkdir()
    (export / "hello.txt").write_text("from nfs\n")
    os.chmod(export, 0o777)
    port = 2049  # an nfs volume has no port field: the server must listen on NFS's own
    conf = tmp_path / "ganesha.conf"
    conf.write_text(GANESHA_CONF.format(port=port, path=export))
    # ganesha serves only once registered with rpcbind.
    rpcbind = None
    if subprocess.run(["pgrep", "-x", "rpcbind"], capture_output=True).returncode != 0:
        rpcbind = subprocess.Popen(["rpcbind", "-f", "-w"])
    proc = subprocess.Popen(["ganesha.nfsd", "-F", "-f", str(conf), "-L", str(tmp_path / "ganesha.log"),
                             "-p", str(tmp_path / "ganesha.pid")])
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection((NFS_HOST, port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                pytest.fail(f"ganesha.nfsd did not listen on {port}: {(tmp_path / 'ganesha.log').read_text()[-2000:]}")
            time.sleep(0.3)
    yield export, port
    for p in (proc, rpcbind):
        if p is not None:
            p.terminate()
            p.wait(timeout=10)


def test_nfs_volume(vol, nfs_server):
    export, port = nfs_server
    # The host mounts the volume (as a kubelet does), not the sandbox; the installation
    # trusts this one host address (SK8S_NFS_ALLOWED in conftest.py), no other.
    host = NFS_HOST
    c = container("main", "cat /mnt/hello.txt; echo written > /mnt/out.txt; echo end; sleep 3600",
                  volumeMounts=[{"name": "share", "mountPath": "/mnt"}])
    apply(vol, pod("nfs", [c], [{"name": "share", "nfs": {"server": host, "path": "/share"}}]))
    vol.wait_pod("nfs", running, timeout=60)
    out = wait_logs(vol, "nfs", "end")
    assert "from nfs" in out
    assert (export / "out.txt").read_text() == "written\n"
