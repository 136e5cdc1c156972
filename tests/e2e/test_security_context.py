"""securityContext enforced, never silently weakened: what a user writes for any cluster is
either refused at admission with the field named, or honoured, as seen from inside the
container (`id`, /proc/self/status, the root file system, volume ownership, sysctls);
ephemeral-storage limits evict the pod as the kubelet does; Pod Security Admission labels
on a namespace mean what they say."""
from __future__ import annotations

import json
import time

import pytest
import yaml

from .conftest import IMAGE
from .tenant import Tenant, delete_cluster, make_cluster

pytestmark = pytest.mark.e2e

# The CRI runtimes' default capability set (containerd's): CHOWN DAC_OVERRIDE FOWNER FSETID
# KILL SETGID SETUID SETPCAP NET_BIND_SERVICE NET_RAW SYS_CHROOT MKNOD AUDIT_WRITE SETFCAP.
DEFAULT_CAPS = 0xA80425FB
CAP_NET_BIND_SERVICE, CAP_NET_RAW, CAP_SYS_PTRACE = 1 << 10, 1 << 13, 1 << 19
NAMED_IMAGE = "localhost/sk8s-e2e-secctx-named:1"     # USER nobody
NUMERIC_IMAGE = "localhost/sk8s-e2e-secctx-numeric:1"  # USER 1000:1000


@pytest.fixture(scope="module")
def sec(meta):
    t = make_cluster(meta, "secctx", quotas={"maxPods": 40, "cpu": "16", "memory": "16Gi"})
    for image, user in ((NAMED_IMAGE, "nobody"), (NUMERIC_IMAGE, "1000:1000")):
        cid = meta.podman("create", IMAGE).stdout.strip()
        assert meta.podman("commit", f"--change=USER {user}", cid, image).returncode == 0
        meta.podman("rm", cid)
    yield t
    delete_cluster(meta, "secctx")
    for image in (NAMED_IMAGE, NUMERIC_IMAGE):
        meta.podman("rmi", "--force", image)


@pytest.fixture(autouse=True)
def _clean_pods(request):
    yield
    if "sec" in request.fixturenames:  # sandboxes go while later tests run
        request.getfixturevalue("sec").kubectl("delete", "pods", "--all", "--wait=false", check=False)


def container(name: str, script: str = "sleep 3600", image: str = IMAGE, **extra) -> dict:
    return {"name": name, "image": image, "imagePullPolicy": "IfNotPresent", "command": ["sh", "-c", script],
            **extra}


def pod(name: str, containers: list[dict], ns: str = "default", **spec) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns},
            "spec": {"containers": containers, "terminationGracePeriodSeconds": 1, **spec}}


def create(t: Tenant, obj: dict):
    return t.kubectl("create", "-f", "-", input=yaml.safe_dump(obj), check=False)


def wait_logs(t: Tenant, name: str, needle: str, container: str, timeout: float = 120, ns: str = "default") -> str:
    deadline = time.monotonic() + timeout
    out = ""
    while time.monotonic() < deadline:
        out = t.kubectl("logs", name, f"-c={container}", "-n", ns, check=False).stdout
        if needle in out:
            return out
        time.sleep(0.3)
    raise AssertionError(f"{name}/{container}: {needle!r} not in logs within {timeout}s:\n{out}\n"
                         f"{json.dumps(t.pod(name, ns).get('status'), indent=1)[:3000]}")


def status_line(out: str, key: str) -> str:
    return next(ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith(key + ":"))


ID = "echo uid=$(id -u) gid=$(id -g) groups=$(id -G)"
REPORT = f"{ID}; grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status; echo end; sleep 3600"


# --- users and groups ---------------------------------------------------------------------

def test_run_as_user_group_fs_group_and_supplemental_groups(sec):
    script = (f"{ID}; touch /data/f; echo file-group=$(stat -c %g /data/f); echo dir=$(stat -c %A:%g /data); "
              "echo end; sleep 3600")
    p = pod("ids", [container("pod-level", script, volumeMounts=[{"name": "data", "mountPath": "/data"}]),
                    container("own-user", f"{ID}; echo end; sleep 3600",
                              securityContext={"runAsUser": 2000, "runAsGroup": 0})],
            securityContext={"runAsUser": 1000, "runAsGroup": 3000, "fsGroup": 2000, "supplementalGroups": [4000]},
            volumes=[{"name": "data", "emptyDir": {}}])
    assert create(sec, p).returncode == 0
    out = wait_logs(sec, "ids", "end", "pod-level")
    assert "uid=1000 gid=3000 groups=" in out
    assert {"2000", "3000", "4000"} <= set(out.split("groups=")[1].split("\n")[0].split())
    assert "file-group=2000" in out          # the emptyDir is the fsGroup's, and setgid passes it on
    assert "dir=drwxrwsrwx:2000" in out
    own = wait_logs(sec, "ids", "end", "own-user")
    assert "uid=2000 gid=0" in own            # the container's fields over the pod's


def test_fs_group_lets_a_non_root_user_read_a_secret_volume(sec):
    sec.kubectl("create", "secret", "generic", "fsg", "--from-literal=key=s3cret")
    script = "cat /secret/key && echo; echo stat=$(stat -L -c %a:%g /secret/key); echo end; sleep 3600"
    vols = [{"name": "s", "secret": {"secretName": "fsg", "defaultMode": 0o400}}]
    with_group = pod("fsg", [container("app", script, volumeMounts=[{"name": "s", "mountPath": "/secret"}])],
                     securityContext={"runAsUser": 1000, "fsGroup": 2000}, volumes=vols)
    without = pod("nofsg", [container("app", "cat /secret/key >/dev/null 2>&1 && echo readable || echo denied; "
                                             "echo end; sleep 3600",
                                      volumeMounts=[{"name": "s", "mountPath": "/secret"}])],
                  securityContext={"runAsUser": 1000}, volumes=vols)
    assert create(sec, with_group).returncode == 0 and create(sec, without).returncode == 0
    out = wait_logs(sec, "fsg", "end", "app")
    assert "s3cret" in out and "stat=440:2000" in out  # group-readable, the fsGroup's, as the kubelet sets it
    assert "denied" in wait_logs(sec, "nofsg", "end", "app")  # without fsGroup, 0400 root-owned stays unreadable
    sec.kubectl("delete", "secret", "fsg", check=False)


def test_run_as_group_alone_keeps_the_images_user(sec):
    p = pod("grouponly", [container("numeric", f"{ID}; echo end; sleep 3600", image=NUMERIC_IMAGE),
                          container("root", f"{ID}; echo end; sleep 3600")],
            securityContext={"runAsGroup": 5000})
    assert create(sec, p).returncode == 0
    assert "uid=1000 gid=5000" in wait_logs(sec, "grouponly", "end", "numeric")
    assert "uid=0 gid=5000" in wait_logs(sec, "grouponly", "end", "root")


def waiting(t: Tenant, name: str, container: str = "app", timeout: float = 60) -> dict:
    def config_error(p):
        for s in (p.get("status") or {}).get("containerStatuses") or []:
            w = (s.get("state") or {}).get("waiting") or {}
            if s["name"] == container and w.get("reason") == "CreateContainerConfigError":
                return True
        return False
    p = t.wait_pod(name, config_error, timeout=timeout)
    return next(s for s in p["status"]["containerStatuses"] if s["name"] == container)["state"]["waiting"] | {
        "_pod": p}


@pytest.mark.parametrize("name,image,sc,message", [
    ("nonroot-image-root", IMAGE, {"runAsNonRoot": True},
     "container has runAsNonRoot and image will run as root (pod: \"{ident}\", container: app)"),
    ("nonroot-uid-zero", NUMERIC_IMAGE, {"runAsNonRoot": True, "runAsUser": 0},
     "container's runAsUser breaks non-root policy (pod: \"{ident}\", container: app)"),
    ("nonroot-named-user", NAMED_IMAGE, {"runAsNonRoot": True},
     "container has runAsNonRoot and image has non-numeric user (nobody), cannot verify user is non-root "
     "(pod: \"{ident}\", container: app)"),
])
def test_run_as_non_root_refuses_to_start_root_as_the_kubelet_does(sec, name, image, sc, message):
    assert create(sec, pod(name, [container("app", "id; sleep 3600", image=image, securityContext=sc)])).returncode == 0
    w = waiting(sec, name)
    p = w.pop("_pod")
    ident = f"{name}_default({p['metadata']['uid']})"
    assert w["message"] == message.format(ident=ident), w
    assert p["status"]["phase"] == "Pending"
    assert sec.kubectl("logs", name, check=False).stdout == ""  # nothing ever ran
    time.sleep(6)  # and it stays so on the retries
    assert "CreateContainerConfigError" in json.dumps(sec.pod(name)["status"]["containerStatuses"])


def test_run_as_non_root_admits_a_non_root_user(sec):
    p = pod("nonroot-ok", [container("image-user", f"{ID}; echo end; sleep 3600", image=NUMERIC_IMAGE),
                           container("own", f"{ID}; echo end; sleep 3600", securityContext={"runAsUser": 4242})],
            securityContext={"runAsNonRoot": True})
    q = pod("nonroot-pod-user", [container("app", f"{ID}; echo end; sleep 3600")],
            securityContext={"runAsNonRoot": True, "runAsUser": 1234})
    assert create(sec, p).returncode == 0 and create(sec, q).returncode == 0
    assert "uid=1000" in wait_logs(sec, "nonroot-ok", "end", "image-user")
    assert "uid=4242" in wait_logs(sec, "nonroot-ok", "end", "own")
    assert "uid=1234" in wait_logs(sec, "nonroot-pod-user", "end", "app")


# --- capabilities, no_new_privs, seccomp, /proc --------------------------------------------

def test_capabilities_no_new_privs_and_seccomp_inside_the_container(sec):
    cases = {
        "default": {},
        "drop-all": {"capabilities": {"drop": ["ALL"]}},
        "bind-only": {"capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}},
        "ptrace": {"capabilities": {"add": ["SYS_PTRACE"]}},
        "no-raw": {"capabilities": {"drop": ["NET_RAW"]}},
        "nnp": {"allowPrivilegeEscalation": False, "seccompProfile": {"type": "RuntimeDefault"}},
    }
    p = pod("caps", [container(n, REPORT, securityContext=sc) for n, sc in cases.items()])
    assert create(sec, p).returncode == 0
    caps, nnp, seccomp = {}, {}, {}
    for n in cases:
        out = wait_logs(sec, "caps", "end", n)
        caps[n] = int(status_line(out, "CapEff"), 16)
        nnp[n], seccomp[n] = status_line(out, "NoNewPrivs"), status_line(out, "Seccomp")
    assert caps["default"] == DEFAULT_CAPS
    assert caps["drop-all"] == 0
    assert caps["bind-only"] == CAP_NET_BIND_SERVICE
    assert caps["ptrace"] == DEFAULT_CAPS | CAP_SYS_PTRACE  # capabilities.add is honoured
    assert caps["no-raw"] == DEFAULT_CAPS & ~CAP_NET_RAW
    assert nnp["nnp"] == "1" and nnp["default"] == "0"
    assert set(seccomp.values()) == {"2"}  # RuntimeDefault (a filter) for every one, asked for or not


def test_proc_is_masked_and_read_only_as_with_proc_mount_default(sec):
    # /proc/keys and /proc/timer_list show the host's keys and timers; the runtime masks them.
    script = ("echo keys=$(wc -c < /proc/keys) timers=$(wc -c < /proc/timer_list); "
              "echo 1 > /proc/sys/kernel/ns_last_pid 2>/dev/null "
              "&& echo sys-writable || echo sys-read-only; echo end; sleep 3600")
    assert create(sec, pod("procmount", [container("app", script, securityContext={"procMount": "Default"})])) \
        .returncode == 0
    out = wait_logs(sec, "procmount", "end", "app")
    assert "keys=0 timers=0" in out and "sys-read-only" in out


def test_read_only_root_filesystem(sec):
    script = ("touch /x 2>&1; touch /tmp/x 2>&1; touch /data/x && echo volume-writable; "
              "echo end; sleep 3600")
    p = pod("rofs", [container("app", script, securityContext={"readOnlyRootFilesystem": True},
                               volumeMounts=[{"name": "data", "mountPath": "/data"}]),
                     container("rw", "touch /x && echo root-writable; echo end; sleep 3600",
                               securityContext={"readOnlyRootFilesystem": False})],
            volumes=[{"name": "data", "emptyDir": {}}])
    assert create(sec, p).returncode == 0
    out = wait_logs(sec, "rofs", "end", "app")
    assert out.count("Read-only file system") == 2  # / and /tmp alike: no writable tmpfs is slipped in
    assert "volume-writable" in out
    assert "root-writable" in wait_logs(sec, "rofs", "end", "rw")


# --- sysctls --------------------------------------------------------------------------------

def test_safe_sysctls_are_set_in_the_pod(sec):
    script = ("echo range=$(cat /proc/sys/net/ipv4/ip_local_port_range); "
              "echo cookies=$(cat /proc/sys/net/ipv4/tcp_syncookies); "
              "echo shm=$(cat /proc/sys/kernel/shm_rmid_forced); echo end; sleep 3600")
    p = pod("sysctls", [container("app", script), container("other", script)],
            securityContext={"sysctls": [{"name": "net.ipv4.ip_local_port_range", "value": "20000 30000"},
                                         {"name": "net/ipv4/tcp_syncookies", "value": "0"},
                                         {"name": "kernel.shm_rmid_forced", "value": "1"}]})
    assert create(sec, p).returncode == 0
    for c in ("app", "other"):
        out = wait_logs(sec, "sysctls", "end", c)
        assert "range=20000 30000" in out.replace("\t", " ") and "cookies=0" in out and "shm=1" in out


# --- refused at admission, with the field named ---------------------------------------------

REFUSED = [
    ("unsafe-sysctl", {"securityContext": {"sysctls": [{"name": "net.ipv4.tcp_syncookies", "value": "1"},
                                                       {"name": "kernel.msgmax", "value": "1"}]}},
     "spec.securityContext.sysctls[1]: Forbidden: kernel.msgmax is not a safe sysctl"),
    ("sysctl-comma", {"securityContext": {"sysctls": [{"name": "net.ipv4.ip_local_reserved_ports",
                                                       "value": "8080,kernel.msgmax=1"}]}},
     "spec.securityContext.sysctls[0].value: Invalid value"),
    ("namespaced-not-safe", {"securityContext": {"sysctls": [{"name": "net.core.somaxconn", "value": "1024"}]}},
     "spec.securityContext.sysctls[0]: Forbidden: net.core.somaxconn"),
    ("sys-admin", {"container": {"capabilities": {"add": ["SYS_ADMIN"]}}},
     "spec.containers[0].securityContext.capabilities.add: Forbidden: SYS_ADMIN cannot be added"),
    ("net-admin", {"container": {"capabilities": {"add": ["CHOWN", "CAP_NET_ADMIN"]}}},
     "spec.containers[0].securityContext.capabilities.add: Forbidden: CAP_NET_ADMIN cannot be added"),
    ("add-all", {"container": {"capabilities": {"add": ["ALL"]}}},
     "spec.containers[0].securityContext.capabilities.add: Forbidden: ALL cannot be added"),
    ("seccomp-unconfined", {"securityContext": {"seccompProfile": {"type": "Unconfined"}}},
     "spec.securityContext.seccompProfile.type: Forbidden: only RuntimeDefault"),
    ("seccomp-localhost", {"container": {"seccompProfile": {"type": "Localhost", "localhostProfile": "a.json"}}},
     "spec.containers[0].securityContext.seccompProfile.type: Forbidden: only RuntimeDefault"),
    ("apparmor-unconfined", {"container": {"appArmorProfile": {"type": "Unconfined"}}},
     "spec.containers[0].securityContext.appArmorProfile.type: Forbidden"),
    ("proc-unmasked", {"container": {"procMount": "Unmasked"}}, "procMount"),
    ("windows", {"container": {"windowsOptions": {"runAsUserName": "ContainerUser"}}},
     "spec.containers[0].securityContext.windowsOptions: Forbidden"),
    ("user-namespace", {"hostUsers": False}, "spec.hostUsers: Forbidden"),
    # The deprecated annotation becomes the field on create (the apiserver's version skew
    # handling), and is refused as the field is.
    ("apparmor-annotation", {"annotations": {"container.apparmor.security.beta.kubernetes.io/app": "unconfined"}},
     "spec.containers[0].securityContext.appArmorProfile.type: Forbidden"),
    ("groups-strict", {"securityContext": {"supplementalGroupsPolicy": "Strict"}},
     "spec.securityContext.supplementalGroupsPolicy: Forbidden"),
]


@pytest.mark.parametrize("name,extra,field", REFUSED, ids=[r[0] for r in REFUSED])
def test_what_would_weaken_the_sandbox_is_refused_naming_the_field(sec, name, extra, field):
    extra = dict(extra)
    c = container("app", securityContext=extra.pop("container")) if "container" in extra else container("app")
    annotations = extra.pop("annotations", None)
    obj = pod(name, [c], **extra)
    if annotations:
        obj["metadata"]["annotations"] = annotations
    proc = create(sec, obj)
    assert proc.returncode != 0, f"{name} was admitted"
    assert field in proc.stderr, proc.stderr
    assert sec.kubectl("get", "pod", name, check=False).returncode != 0


def test_selinux_options_are_admitted_with_a_warning_and_ignored_as_on_a_host_without_selinux(sec):
    """As a kubelet on a host without SELinux (the upstream conformance tests of EmptyDir and
    subPath volumes set them): the pod runs, and both the warning and an Event name the fields."""
    obj = pod("selinux", [container("app", securityContext={"seLinuxOptions": {"level": "s0:c1,c2"}})],
              securityContext={"seLinuxOptions": {"level": "s0:c123,c456"}})
    proc = create(sec, obj)
    assert proc.returncode == 0, proc.stderr
    assert "spec.securityContext.seLinuxOptions, spec.containers[name=app].securityContext.seLinuxOptions: " \
           "ignored: sk8s sandboxes run without SELinux" in proc.stderr, proc.stderr
    sec.wait_pod("selinux", lambda p: p["status"].get("phase") == "Running", timeout=120)
    deadline = time.monotonic() + 30
    events = []
    while time.monotonic() < deadline:
        events = json.loads(sec.kubectl("get", "events", "--field-selector=involvedObject.name=selinux",
                                        "-o", "json").stdout)["items"]
        if any(e["reason"] == "UnsupportedPodFields" for e in events):
            break
        time.sleep(0.5)
    msg = next(e["message"] for e in events if e["reason"] == "UnsupportedPodFields")
    assert "container app: securityContext.seLinuxOptions" in msg and msg.endswith("securityContext.seLinuxOptions")


def test_a_deployment_template_is_refused_too(sec):
    dep = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "unconfined"},
           "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "u"}},
                    "template": {"metadata": {"labels": {"app": "u"}},
                                 "spec": {"initContainers": [container("init", "true", securityContext={
                                     "seccompProfile": {"type": "Unconfined"}})],
                                          "containers": [container("app")]}}}}
    proc = create(sec, dep)
    assert proc.returncode != 0
    assert "spec.template.spec.initContainers[0].securityContext.seccompProfile.type: Forbidden" in proc.stderr, \
        proc.stderr


def test_the_sandbox_pod_schema_refuses_them_as_well(meta, namespace):
    """A SandboxPod written directly in the meta-cluster (no tenant policy there): the CRD's own
    rules refuse every weakening field, none is pruned silently."""
    base = {"apiVersion": "sk8s.io/v1alpha1", "kind": "SandboxPod", "metadata": {"name": "x"},
            "spec": {"containers": [{"name": "app", "image": IMAGE}]}}
    cases = [
        ({"securityContext": {"capabilities": {"add": ["SYS_ADMIN"]}}}, None, "capabilities.add"),
        ({"securityContext": {"seccompProfile": {"type": "Unconfined"}}}, None, "seccompProfile"),
        ({"securityContext": {"privileged": True}}, None, "privileged"),
        ({"securityContext": {"procMount": "Unmasked"}}, None, "procMount"),
        (None, {"securityContext": {"sysctls": [{"name": "kernel.msgmax", "value": "1"}]}}, "sysctls"),
        (None, {"securityContext": {"seLinuxOptions": {"level": "s0"}}}, "seLinuxOptions"),
        (None, {"hostUsers": False}, "hostUsers"),
    ]
    for container_extra, spec_extra, field in cases:
        obj = json.loads(json.dumps(base))
        obj["spec"]["containers"][0].update(container_extra or {})
        obj["spec"].update(spec_extra or {})
        proc = meta.apply(obj, namespace, check=False)
        assert proc.returncode != 0 and field in proc.stderr, (field, proc.stderr)


# --- ephemeral storage -------------------------------------------------------------------

def limits(storage: str) -> dict:
    return {"limits": {"ephemeral-storage": storage}}


def evicted(t: Tenant, name: str, timeout: float = 90) -> dict:
    return t.wait_pod(name, lambda p: p["status"].get("phase") == "Failed", timeout=timeout)


def test_a_container_writing_past_its_ephemeral_storage_limit_is_evicted(sec):
    write = "dd if=/dev/zero of=/big bs=1M count=50 2>&1; echo written; sleep 3600"
    assert create(sec, pod("hog", [container("app", write, resources=limits("10Mi"))])).returncode == 0
    p = evicted(sec, "hog")
    assert p["status"]["reason"] == "Evicted"
    assert p["status"]["message"] == "Pod ephemeral local storage usage exceeds the total limit of containers 10Mi. "
    state = p["status"]["containerStatuses"][0]["state"]
    assert "terminated" in state, state  # killed, and not restarted
    time.sleep(3)
    again = sec.pod("hog")
    assert again["status"]["phase"] == "Failed" and "terminated" in again["status"]["containerStatuses"][0]["state"]
    evs = json.loads(sec.kubectl("get", "events", "--field-selector=involvedObject.name=hog", "-o", "json").stdout)
    assert any(e["reason"] == "Evicted" and "exceeds the total limit" in e["message"] for e in evs["items"]), evs


def test_the_container_limit_applies_even_when_the_pod_total_is_not_reached(sec):
    p = pod("hog2", [container("writer", "dd if=/dev/zero of=/big bs=1M count=30; sleep 3600",
                               resources=limits("10Mi")),
                     container("idle", resources=limits("1Gi"))])
    assert create(sec, p).returncode == 0
    p = evicted(sec, "hog2")
    assert p["status"]["reason"] == "Evicted"
    assert p["status"]["message"] == 'Container writer exceeded its local ephemeral storage limit "10Mi". '


def test_an_empty_dir_counts_toward_the_pod_limit_and_a_pod_within_limits_keeps_running(sec):
    vols = [{"name": "scratch", "emptyDir": {}}]
    mount = [{"name": "scratch", "mountPath": "/scratch"}]
    hog = pod("hog3", [container("app", "dd if=/dev/zero of=/scratch/big bs=1M count=30; sleep 3600",
                                 resources=limits("20Mi"), volumeMounts=mount)], volumes=vols)
    fine = pod("within", [container("app", "dd if=/dev/zero of=/scratch/f bs=1M count=2; dd if=/dev/zero "
                                           "of=/f bs=1M count=2; echo written; sleep 3600",
                                    resources=limits("20Mi"), volumeMounts=mount)], volumes=vols)
    assert create(sec, hog).returncode == 0 and create(sec, fine).returncode == 0
    p = evicted(sec, "hog3")
    assert p["status"]["message"] == "Pod ephemeral local storage usage exceeds the total limit of containers 20Mi. "
    wait_logs(sec, "within", "written", "app")
    time.sleep(12)  # more than one measuring period after the writes
    assert sec.pod("within")["status"]["phase"] == "Running"


# --- Pod Security Admission ------------------------------------------------------------------

RESTRICTED_SC = {"runAsNonRoot": True, "runAsUser": 1000, "allowPrivilegeEscalation": False,
                 "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}


def test_restricted_namespace_refuses_root_and_runs_a_compliant_pod_as_non_root(sec):
    sec.kubectl("create", "namespace", "locked")
    sec.kubectl("label", "namespace", "locked", "pod-security.kubernetes.io/enforce=restricted")
    proc = create(sec, pod("root", [container("app")], ns="locked"))
    assert proc.returncode != 0
    assert 'violates PodSecurity "restricted:latest"' in proc.stderr, proc.stderr
    ok = pod("compliant", [container("app", REPORT, securityContext=RESTRICTED_SC)], ns="locked")
    proc = create(sec, ok)
    assert proc.returncode == 0, proc.stderr
    out = wait_logs(sec, "compliant", "end", "app", ns="locked")
    assert "uid=1000" in out and "uid=0" not in out
    assert int(status_line(out, "CapEff"), 16) == 0
    assert status_line(out, "NoNewPrivs") == "1" and status_line(out, "Seccomp") == "2"
    # What `kubectl exec` runs there is confined the same way: not root, no capabilities.
    ex = sec.kubectl("exec", "compliant", "-n", "locked", "--", "sh", "-c",
                     ID + "; grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status").stdout
    assert "uid=1000" in ex and int(status_line(ex, "CapEff"), 16) == 0
    assert status_line(ex, "NoNewPrivs") == "1" and status_line(ex, "Seccomp") == "2"
    sec.kubectl("delete", "namespace", "locked", "--wait=false", check=False)


def test_baseline_namespace_refuses_added_capabilities_the_sandbox_itself_would_allow(sec):
    sec.kubectl("create", "namespace", "base")
    sec.kubectl("label", "namespace", "base", "pod-security.kubernetes.io/enforce=baseline")
    proc = create(sec, pod("ptrace", [container("app", securityContext={"capabilities": {"add": ["SYS_PTRACE"]}})],
                           ns="base"))
    assert proc.returncode != 0
    assert 'violates PodSecurity "baseline:latest"' in proc.stderr and "SYS_PTRACE" in proc.stderr, proc.stderr
    assert create(sec, pod("plain", [container("app", REPORT)], ns="base")).returncode == 0
    out = wait_logs(sec, "plain", "end", "app", ns="base")
    assert "uid=0" in out and int(status_line(out, "CapEff"), 16) == DEFAULT_CAPS
    sec.kubectl("delete", "namespace", "base", "--wait=false", check=False)
