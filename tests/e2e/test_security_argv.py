"""Tenant values never become options of the container CLI (issue 9, class 1), and two
failures that used to be silent: an environment that execve cannot carry, and pods'
/etc/hosts with this host's own entries.

A hostile tenant tries images that are podman options (`--privileged`, `--volume=/:/host`,
`-v/etc:/x`), images with spaces or a newline, and commands, args, env and workingDir that
start with `--`. Each is refused at admission with the field named, or runs as data: the
container prints its arguments literally, is not privileged and mounts nothing of the
host, and the host is left unchanged (no marker file, no container of the cluster with a
host mount or privileges)."""
from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest

from .conftest import IMAGE, sandboxpod
from .tenant import Tenant, delete_cluster, make_cluster

pytestmark = pytest.mark.e2e

CLUSTER = "argv"
MARK = f"/tmp/sk8s-argv-{uuid.uuid4().hex[:10]}"  # a file that exists only if a value ran as a command
OPTION_IMAGES = ["--privileged", "--volume=/:/host", "-v/etc:/x", "--network=host", "-it", "busy box",
                 "busybox\n--privileged", f"{IMAGE} --privileged", f"--entrypoint=touch {MARK}"]
HOSTILE_ARGS = ["--privileged", "--volume=/:/host", "-v/etc:/x", "--", "-", "a=b", "line1\nline2",
                f"$(touch {MARK})", f"; touch {MARK}", "--cap-add=ALL", " --pid=host"]


@pytest.fixture(scope="module")
def argv(meta):
    t = make_cluster(meta, CLUSTER)
    yield t
    delete_cluster(meta, CLUSTER)


def pod(name: str, image: str = IMAGE, **container) -> dict:
    c = {"name": "app", "image": image, "imagePullPolicy": "IfNotPresent", **container}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [c], "terminationGracePeriodSeconds": 1}}


def create(t: Tenant, obj: dict):
    return t.kubectl("create", "-f", "-", input=json.dumps(obj), check=False)


def events(t: Tenant, name: str) -> list[dict]:
    out = t.kubectl("get", "events", f"--field-selector=involvedObject.name={name}", "-o", "json").stdout
    return json.loads(out)["items"]


def wait_event(t: Tenant, name: str, reason: str, contains: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    evs: list[dict] = []
    while time.monotonic() < deadline:
        evs = events(t, name)
        for e in evs:
            if e["reason"] == reason and contains in e["message"]:
                return e
        time.sleep(0.5)
    raise AssertionError(f"no {reason} event with {contains!r} on {name}: {[(e['reason'], e['message']) for e in evs]}")


def logs_when(t: Tenant, name: str, last_line: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    out = ""
    while time.monotonic() < deadline:
        out = t.kubectl("logs", name, check=False).stdout
        if last_line in out.splitlines():
            return out
        time.sleep(0.3)
    raise AssertionError(f"pod {name}: no {last_line!r} in its log: {out!r}; "
                         f"{json.dumps(t.pod(name).get('status'), indent=1)[:2000]}")


def sandbox_containers(meta, pod_name: str | None = None) -> list[dict]:
    """podman's view of this cluster's containers (all of them, or one pod's)."""
    flt = ["--filter", f"label=sk8s.io/cluster={CLUSTER}"]
    if pod_name:
        flt += ["--filter", f"label=sk8s.io/pod-name={pod_name}"]
    ids = meta.podman("ps", "-a", "-q", *flt).stdout.split()
    if not ids:
        return []
    return json.loads(meta.podman("container", "inspect", *ids).stdout)


def assert_confined(c: dict) -> None:
    host = c.get("HostConfig") or {}
    name = c.get("Name")
    assert host.get("Privileged") is False, f"{name} is privileged"
    assert host.get("NetworkMode") != "host" and host.get("PidMode") != "host", name
    for m in c.get("Mounts") or []:
        assert m.get("Source") not in ("/", "/etc", "/root", "/var", "/proc") and m.get("Destination") not in (
            "/host", "/x"), f"{name} mounts {m}"


# --- images that are options: refused at admission, field named ---------------------------

@pytest.mark.parametrize("image", OPTION_IMAGES)
def test_an_image_that_is_an_option_is_refused_naming_the_field(argv, image):
    name = f"img-{uuid.uuid4().hex[:6]}"
    proc = create(argv, pod(name, image))
    assert proc.returncode != 0
    assert "spec.containers[0].image: Invalid value: " in proc.stderr, proc.stderr
    assert "must be an image reference" in proc.stderr and "sk8s-image-references" in proc.stderr
    assert json.dumps(image) in proc.stderr  # the value, quoted (a newline as \n)
    assert argv.kubectl("get", "pod", name, check=False).returncode != 0


def test_init_containers_and_workload_templates_are_checked_too(argv):
    p = pod("init-opt")
    p["spec"]["initContainers"] = [{"name": "ok", "image": IMAGE}, {"name": "evil", "image": "-v/:/host"}]
    proc = create(argv, p)
    assert proc.returncode != 0 and 'spec.initContainers[1].image: Invalid value: "-v/:/host"' in proc.stderr
    dep = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "opt"},
           "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "opt"}},
                    "template": {"metadata": {"labels": {"app": "opt"}}, "spec": pod("x", "--privileged")["spec"]}}}
    proc = create(argv, dep)
    assert proc.returncode != 0
    assert 'spec.template.spec.containers[0].image: Invalid value: "--privileged"' in proc.stderr, proc.stderr
    job = {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "opt"},
           "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": {"spec": {
               "restartPolicy": "Never", "containers": [{"name": "c", "image": "--volume=/:/host"}]}}}}}}
    proc = create(argv, job)
    assert proc.returncode != 0
    assert "spec.jobTemplate.spec.template.spec.containers[0].image: Invalid value" in proc.stderr, proc.stderr


def test_an_image_changed_to_an_option_or_an_ephemeral_container_is_refused(argv):
    assert create(argv, pod("good", command=["sleep", "3600"])).returncode == 0
    proc = argv.kubectl("patch", "pod", "good", "--type=json", "-p", json.dumps(
        [{"op": "replace", "path": "/spec/containers/0/image", "value": "--privileged"}]), check=False)
    # an image may change in place (the container restarts with it), but only to an image
    # reference: sk8s-image-references refuses this one, naming the field
    assert proc.returncode != 0 and 'spec.containers[0].image: Invalid value: "--privileged"' in proc.stderr, \
        proc.stderr
    proc = argv.kubectl("patch", "pod", "good", "--subresource=ephemeralcontainers", "--type=json", "-p", json.dumps(
        [{"op": "add", "path": "/spec/ephemeralContainers", "value": [{"name": "dbg", "image": "--volume=/:/host"}]}]),
        check=False)
    assert proc.returncode != 0, proc.stdout
    assert ('spec.ephemeralContainers[0].image: Invalid value: "--volume=/:/host"' in proc.stderr
            or "spec.ephemeralContainers: Forbidden" in proc.stderr), proc.stderr
    assert not argv.pod("good")["spec"].get("ephemeralContainers")
    assert argv.pod("good")["spec"]["containers"][0]["image"] == IMAGE
    argv.kubectl("delete", "pod", "good", "--wait=false")


def test_a_sandboxpod_with_an_option_image_is_refused_by_the_schema(meta, namespace):
    for image in ("--privileged", "-v/etc:/x", "busybox\n--privileged"):
        proc = meta.apply(sandboxpod("badimage", [{"name": "a", "image": image}]), namespace, check=False)
        assert proc.returncode != 0
        assert "spec.containers[0].image" in proc.stderr and "should match" in proc.stderr, proc.stderr
    assert meta.get("sandboxpod", "badimage", namespace) is None


# --- command, args, env, workingDir that start with `--`: data -----------------------------

def test_hostile_args_command_and_env_reach_the_process_as_data(meta, argv):
    script = ('for a in "$@"; do echo "[$a]"; done; echo "env=[$OPT]"; echo "env2=[$VOL]"; pwd; '
              'test -e /host/etc && echo HOST-MOUNTED; test -e /x/passwd && echo ETC-MOUNTED; '
              'grep CapEff /proc/self/status; echo done; sleep 3600')
    p = pod("args-data", command=["sh", "-c", script, "--privileged"], args=HOSTILE_ARGS,
            env=[{"name": "OPT", "value": "--privileged"}, {"name": "VOL", "value": "--volume=/:/host"}],
            workingDir="/tmp")
    assert create(argv, p).returncode == 0
    out = logs_when(argv, "args-data", "done")
    printed = out.split("env=[")[0]
    assert printed == "".join(f"[{a}]\n" for a in HOSTILE_ARGS), out
    assert "env=[--privileged]\nenv2=[--volume=/:/host]\n/tmp\n" in out
    assert "HOST-MOUNTED" not in out and "ETC-MOUNTED" not in out
    cap_eff = int(next(ln for ln in out.splitlines() if ln.startswith("CapEff")).split()[1], 16)
    assert cap_eff & (1 << 21) == 0  # no CAP_SYS_ADMIN: not privileged
    for c in sandbox_containers(meta, "args-data"):
        assert_confined(c)
    # kubectl exec: the command after the container name is data as well
    proc = argv.kubectl("exec", "args-data", "--", "echo", "--privileged", "-v/etc:/x", f"$(touch {MARK})")
    assert proc.stdout == f"--privileged -v/etc:/x $(touch {MARK})\n"
    proc = argv.kubectl("exec", "args-data", "--", "--privileged", check=False)
    assert proc.returncode != 0 and "--privileged" in proc.stderr  # no such executable in the container
    assert not Path(MARK).exists()


def said(t: Tenant, name: str, needle: str, timeout: float = 60) -> str:
    """Where the pod says why its container does not run: an Event, or its container status."""
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    while time.monotonic() < deadline:
        seen = [e["message"] for e in events(t, name)]
        for cs in t.pod(name)["status"].get("containerStatuses") or []:
            for state in (cs.get("state") or {}, cs.get("lastState") or {}):
                seen += [v.get("message") or "" for v in state.values()]
        hit = next((m for m in seen if needle in m), None)
        if hit:
            return hit
        time.sleep(0.5)
    raise AssertionError(f"pod {name} never said {needle!r}: {seen}")


def test_a_command_or_working_dir_that_is_an_option_fails_naming_it(meta, argv):
    assert create(argv, pod("cmd-opt", command=["--privileged", "--volume=/:/host"])).returncode == 0
    assert create(argv, pod("wd-opt", command=["sleep", "3600"], workingDir="--privileged")).returncode == 0
    # No such executable: catatonit (podman's --init, PID 1) cannot exec it and says so in the
    # container's log; the container exits and backs off, as a kubelet's would (StartError).
    deadline = time.monotonic() + 60
    while "failed to exec" not in (log := argv.kubectl("logs", "cmd-opt", check=False).stdout + argv.kubectl(
            "logs", "cmd-opt", "--previous", check=False).stdout) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert "failed to exec" in log, log
    print(said(argv, "cmd-opt", "back-off"))
    print(said(argv, "wd-opt", 'workdir "--privileged" does not exist'))
    for name in ("cmd-opt", "wd-opt"):
        assert not any(cs.get("ready") for cs in argv.pod(name)["status"].get("containerStatuses") or [])
        for c in sandbox_containers(meta, name):
            assert_confined(c)
    assert not Path(MARK).exists()


# --- what execve cannot carry: an Event naming the cause ------------------------------------

def test_a_one_mib_env_value_is_an_event_naming_it(argv):
    p = pod("big-env", command=["sleep", "3600"],
            env=[{"name": "SMALL", "value": "x"}, {"name": "BIG", "value": "y" * (1 << 20)}])
    proc = argv.kubectl("create", "-f", "-", input=json.dumps(p), check=False, timeout=180)
    assert proc.returncode == 0, proc.stderr
    message = "env BIG of container app is 1048580 bytes, over the limit of 131065 bytes for one variable"
    wait_event(argv, "big-env", "Failed", message)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        waiting = ((argv.pod("big-env")["status"].get("containerStatuses") or [{}])[0].get("state") or {}).get(
            "waiting") or {}
        if waiting.get("reason") == "CreateContainerConfigError":
            break
        time.sleep(0.5)
    assert waiting.get("reason") == "CreateContainerConfigError" and message in waiting.get("message", ""), waiting
    argv.kubectl("delete", "pod", "big-env", "--timeout=120s", timeout=180)


def test_an_environment_over_the_total_is_an_event_naming_its_size(argv):
    env = [{"name": f"V{i}", "value": "z" * 120_000} for i in range(9)]
    p = pod("wide-env", command=["sleep", "3600"], env=env)
    assert argv.kubectl("create", "-f", "-", input=json.dumps(p), check=False, timeout=180).returncode == 0
    e = wait_event(argv, "wide-env", "Failed", "environment of container app is ")
    assert "over the limit of 1048576 bytes together" in e["message"], e["message"]
    argv.kubectl("delete", "pod", "wide-env", "--timeout=120s", timeout=180)


# --- /etc/hosts: the kubelet's, with hostAliases; nothing of this host ----------------------

def _host_names() -> set[str]:
    names = set()
    for line in Path("/etc/hosts").read_text().splitlines():
        fields = line.split("#", 1)[0].split()
        names.update(fields[1:])
    return names - {"localhost", "ip6-localhost", "ip6-loopback", "localhost.localdomain",
                    "localhost4", "localhost6", "localhost4.localdomain4", "localhost6.localdomain6"}


def test_etc_hosts_has_host_aliases_and_no_host_entries(argv):
    p = pod("hosts", command=["sh", "-c", "cat /etc/hosts; echo done; sleep 3600"])
    p["spec"]["hostAliases"] = [{"ip": "10.11.12.13", "hostnames": ["foo.local", "bar"]},
                                {"ip": "fd00::5", "hostnames": ["six.local"]}]
    p["spec"]["hostname"] = "myhost"
    assert create(argv, p).returncode == 0
    out = logs_when(argv, "hosts", "done")
    entries = [ln.split() for ln in out.splitlines() if ln.strip() and not ln.startswith("#") and ln != "done"]
    by_name = {name: fields[0] for fields in entries for name in fields[1:]}
    assert by_name["foo.local"] == by_name["bar"] == "10.11.12.13" and by_name["six.local"] == "fd00::5"
    # the kubelet's block, one line per address (the conformance test looks for "ip\tfoo\tbar")
    assert "\n\n# Entries added by HostAliases.\n10.11.12.13\tfoo.local\tbar\nfd00::5\tsix.local\n" in out, out
    assert by_name["localhost"] in ("127.0.0.1", "::1")
    pod_ip = argv.pod("hosts")["status"]["podIP"]
    assert by_name["myhost"] == pod_ip
    leaked = _host_names() & set(by_name)
    assert not leaked, f"host entries in the pod's /etc/hosts: {leaked}\n{out}"
    assert "host.containers.internal" not in by_name and "host.docker.internal" not in by_name
    assert not any(e["reason"] == "UnsupportedPodFields" for e in events(argv, "hosts"))


def test_host_is_unchanged(meta, argv):
    """Last: whatever ran above, no container of this cluster has privileges or a host
    mount, and no value ran as a command on the host."""
    containers = sandbox_containers(meta)
    assert containers  # the pods above are there to look at
    for c in containers:
        assert_confined(c)
    assert not Path(MARK).exists()
