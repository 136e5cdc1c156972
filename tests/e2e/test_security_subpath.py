"""Issue 9, class 2: a subPath that the pod itself turned into a symlink must not resolve on
the host. Each hostile pod links a directory of its own volume to a host path (a victim
directory this test creates) and mounts it through subPath in the next container; that
container must fail with the kubelet's CreateContainerConfigError and an Event naming the
volumeMount, and the victim stays as it was. Legitimate subPaths (emptyDir directories,
ConfigMap files by their key or through `..data`) keep working across restarts, and no
bind mount outlives its sandbox."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from .conftest import IMAGE, sandboxpod
from .tenant import delete_cluster, make_cluster

pytestmark = pytest.mark.e2e

CONFIG_ERROR = "CreateContainerConfigError"
RACE_SECONDS = 200  # the sidecar race: time allowed for eight container starts


@pytest.fixture(scope="module")
def sp(meta):
    t = make_cluster(meta, "subpath", quotas={"maxPods": 20, "cpu": "8", "memory": "8Gi"})
    yield t
    delete_cluster(meta, "subpath")


@pytest.fixture(scope="module")
def victim():
    """A host directory no pod may see; `secret` must stay as it is and nothing may appear."""
    d = Path(tempfile.mkdtemp(prefix="sk8s-victim-", dir="/tmp"))
    (d / "secret").write_text("host data\n")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def assert_untouched(victim: Path) -> None:
    assert sorted(os.listdir(victim)) == ["secret"]
    assert (victim / "secret").read_text() == "host data\n"


def container(name: str, script: str, mounts: list[dict], **extra) -> dict:
    return {"name": name, "image": IMAGE, "imagePullPolicy": "IfNotPresent", "command": ["sh", "-c", script],
            "volumeMounts": mounts, **extra}


def pod(name: str, containers: list[dict], volumes: list[dict], init: list[dict] | None = None, **spec) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"initContainers": init or [], "containers": containers, "volumes": volumes,
                     "terminationGracePeriodSeconds": 1, **spec}}


def apply(t, obj: dict):
    return t.kubectl("apply", "-f", "-", input=yaml.safe_dump(obj), check=False)


def status_of(p: dict, name: str) -> dict:
    for s in (p.get("status") or {}).get("containerStatuses") or []:
        if s["name"] == name:
            return s
    return {}


def failed_events(t, name: str) -> list[str]:
    events = json.loads(t.kubectl("get", "events", f"--field-selector=involvedObject.name={name}",
                                  "-o", "json").stdout)["items"]
    return [e.get("message", "") for e in events if e.get("reason") == "Failed"]


def sandbox_uid(t, name: str) -> str:
    items = json.loads(t.meta.kubectl("get", "sandboxpods", "-A", "-l",
                                      f"sk8s.io/cluster={t.name},sk8s.io/pod-name={name}", "-o", "json").stdout)["items"]
    assert len(items) == 1, items
    return items[0]["metadata"]["uid"]


def mounts_under(path: Path) -> list[str]:
    """Mount points at or below `path` as this (host) process sees them."""
    top = str(path)
    with open("/proc/self/mountinfo") as f:
        points = [line.split(" ")[4].replace("\\040", " ") for line in f]
    return [p for p in points if p == top or p.startswith(top + "/")]


def wait_deleted(t, names: list[str], timeout: float = 90) -> None:
    t.kubectl("delete", "pod", *names, "--wait=true", "--timeout=90s", timeout=timeout + 30, check=False)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = json.loads(t.meta.kubectl("get", "sandboxpods", "-A", "-l", f"sk8s.io/cluster={t.name}",
                                         "-o", "json").stdout)["items"]
        if not any(o["metadata"]["labels"].get("sk8s.io/pod-name") in names for o in left):
            return
        time.sleep(0.5)
    raise AssertionError(f"sandboxes of {names} still exist")


# --- hostile subPaths: each case links something in the pod's emptyDir out of it ----------

def hostile_cases(v: str) -> list[tuple[str, str, str, str, bool]]:
    """(name, what the init container does in /data, subPath, what the next container tries
    through /mnt, mount read-only)."""
    return [
        ("root", "ln -s / /data/x", "x", f"echo pwned > /mnt{v}/marker", False),
        ("absolute", f"ln -s {v} /data/x", "x", "echo pwned > /mnt/marker", False),
        ("etc", "ln -s /etc /data/x", "x", "cat /mnt/hostname && echo escaped", True),  # never written
        ("intermediate", "ln -s / /data/a", f"a{v}", "echo pwned > /mnt/marker", False),
        ("relative", "mkdir -p /data/d && ln -s ../../../../../../../../../../../.. /data/d/up",
         f"d/up{v}", "echo pwned > /mnt/marker", False),
        # Absolute but naming the volume's own path in the container: on the host that is
        # /data/real. The kubelet refuses any symlink leaving the volume on the host; so do we.
        ("inside-absolute", "mkdir /data/real && ln -s /data/real /data/x", "x", "echo ok > /mnt/marker", False),
        ("file", f"ln -s {v}/secret /data/f", "f", "echo pwned >> /mnt", False),
        ("nested-link", f"mkdir -p /data/d && ln -s {v} /data/d/x && ln -s d /data/l", "l/x",
         "echo pwned > /mnt/marker", False),
        ("missing-under-link", f"ln -s {v} /data/x", "x/new/dir", "echo pwned > /mnt/marker", False),
    ]


@pytest.fixture(scope="module")
def hostile_pods(sp, victim):
    """All hostile pods at once (one machine, two cores): each test then checks its own."""
    names = []
    for name, link, sub, attack, ro in hostile_cases(str(victim)):
        init = container("link", link, [{"name": "data", "mountPath": "/data"}])
        mount = {"name": "data", "mountPath": "/mnt", "subPath": sub, "readOnly": ro}
        app = container("app", f"{attack}; echo done; sleep 3600", [mount])
        proc = apply(sp, pod(f"hostile-{name}", [app], [{"name": "data", "emptyDir": {}}], [init]))
        assert proc.returncode == 0, proc.stderr
        names.append(f"hostile-{name}")
    yield names
    wait_deleted(sp, names)


@pytest.mark.parametrize("case", [c[0] for c in hostile_cases("/v")])
def test_a_subpath_linked_out_of_its_volume_fails_the_container(sp, meta, victim, hostile_pods, case):
    name = f"hostile-{case}"
    deadline = time.monotonic() + 120
    p, messages = {}, []
    while time.monotonic() < deadline:
        p = sp.pod(name)
        st = status_of(p, "app")
        messages = failed_events(sp, name)
        if (st.get("state", {}).get("waiting", {}).get("reason") == CONFIG_ERROR
                and any("failed to prepare subPath" in m for m in messages)):
            break
        assert "running" not in st.get("state", {}), f"{name}: app runs with a hostile subPath: {st}"
        time.sleep(0.5)
    else:
        raise AssertionError(f"{name}: no {CONFIG_ERROR}: {json.dumps(p.get('status'))[:2000]} events {messages}")
    msg = next(m for m in messages if "failed to prepare subPath" in m)
    assert 'failed to prepare subPath for volumeMount "data" of container "app"' in msg
    waiting = status_of(p, "app")["state"]["waiting"]
    assert "failed to prepare subPath" in waiting["message"]
    assert str(meta.home) not in msg and str(meta.home) not in waiting["message"]  # no host paths told
    assert_untouched(victim)
    # The refused run left no bind mount behind.
    uid = sandbox_uid(sp, name)
    assert mounts_under(meta.home / "volumes" / uid / ".volume-subpaths") == []


def test_a_sidecar_swapping_the_subpath_never_gets_the_host_mounted(sp, meta, victim):
    """The race: a running sidecar turns the directory into a link to the host and back while
    the containers (re)start. Each start either mounts the pod's own directory or fails."""
    swap = ("mkdir -p /data/x; while true; do mv /data/x /data/x.d 2>/dev/null; ln -s " + str(victim) +
            " /data/x 2>/dev/null; rm -f /data/x; mv /data/x.d /data/x 2>/dev/null; done")
    sidecar = container("swapper", swap, [{"name": "data", "mountPath": "/data"}], restartPolicy="Always")
    apps = [container(f"app{i}", "echo pwned > /mnt/marker-$RANDOM; sleep 1; exit 1",
                      [{"name": "data", "mountPath": "/mnt", "subPath": "x"}]) for i in range(3)]
    assert apply(sp, pod("racer", apps, [{"name": "data", "emptyDir": {}}], [sidecar])).returncode == 0
    # Eight attempts take about 75 s on a quiet machine (CrashLoopBackOff spaces them); a
    # loaded one (the whole suite, the swapper's busy loop on one of two cores) needs longer.
    deadline = time.monotonic() + RACE_SECONDS
    runs = refused = 0
    while time.monotonic() < deadline:
        p = sp.pod("racer")
        runs = sum(s.get("restartCount", 0) + ("terminated" in s.get("state", {})
                                                 or "running" in s.get("state", {}))
                   for s in (p.get("status") or {}).get("containerStatuses") or [] if s["name"] != "swapper")
        refused = sum("failed to prepare subPath" in m for m in failed_events(sp, "racer"))
        assert_untouched(victim)
        if runs + refused >= 8:
            break
        time.sleep(1)
    print(f"racer: {runs} runs mounted the pod's own directory, {refused} refusals")
    assert runs + refused >= 8, f"only {runs} runs and {refused} refusals in {RACE_SECONDS}s"
    assert_untouched(victim)
    uid = sandbox_uid(sp, "racer")
    wait_deleted(sp, ["racer"])
    assert mounts_under(meta.home / "volumes" / uid) == [] and not (meta.home / "volumes" / uid).exists()
    assert_untouched(victim)


# --- legitimate subPaths -----------------------------------------------------------------

def test_legitimate_subpaths_survive_restarts_and_go_with_the_sandbox(sp, meta):
    sp.kubectl("create", "configmap", "sub-conf", "--from-literal=app.conf=port=80")
    # A symlink inside the volume that stays inside resolves, as with the kubelet.
    init = container("prep", "mkdir -p /data/real/logs && echo kept > /data/real/logs/old && ln -s real /data/rel",
                     [{"name": "data", "mountPath": "/data"}])
    app = container("app", "echo conf $(cat /etc/app.conf) data $(cat /etc/data.conf) old $(cat /logs/old) "
                           "new $(ls /made); echo run >> /logs/runs; echo runs $(wc -l < /logs/runs); sleep 2; exit 1",
                    [{"name": "cfg", "mountPath": "/etc/app.conf", "subPath": "app.conf"},
                     {"name": "cfg", "mountPath": "/etc/data.conf", "subPath": "..data/app.conf"},
                     {"name": "data", "mountPath": "/logs", "subPath": "rel/logs"},
                     {"name": "data", "mountPath": "/made", "subPath": "created/by/kubelet"}])
    obj = pod("legit", [app], [{"name": "cfg", "configMap": {"name": "sub-conf"}}, {"name": "data", "emptyDir": {}}],
              [init])
    assert apply(sp, obj).returncode == 0
    sp.wait_pod("legit", lambda p: status_of(p, "app").get("restartCount", 0) >= 1, timeout=120)
    deadline = time.monotonic() + 60
    out = ""
    while time.monotonic() < deadline and "runs 2" not in out:
        out = sp.kubectl("logs", "legit", "-c", "app", check=False).stdout
        time.sleep(0.5)
    assert "conf port=80 data port=80 old kept new" in out, out
    assert "runs 2" in out, out  # the second run mounted the same directory again
    uid = sandbox_uid(sp, "legit")
    subpaths = meta.home / "volumes" / uid / ".volume-subpaths"
    # One bind mount per subPath of the container, none stacked by the restart.
    assert sorted(mounts_under(subpaths)) == sorted(str(subpaths / v / "app" / str(i))
                                                    for v, i in [("cfg", 0), ("cfg", 1), ("data", 2), ("data", 3)])
    wait_deleted(sp, ["legit"])
    assert mounts_under(meta.home / "volumes" / uid) == [] and not (meta.home / "volumes" / uid).exists()


# --- refused at admission ----------------------------------------------------------------

def test_backsteps_are_refused_by_the_tenant_api_and_the_sandboxpod_crd(sp, meta, namespace):
    for sub in ("..", "../x", "a/../../x", "a/.."):
        obj = pod("back", [container("app", "true", [{"name": "d", "mountPath": "/d", "subPath": sub}])],
                  [{"name": "d", "emptyDir": {}}])
        proc = apply(sp, obj)
        assert proc.returncode != 0 and "subPath" in proc.stderr, (sub, proc.stderr)
        sb = sandboxpod("back", [{"name": "app", "command": ["true"],
                                  "volumeMounts": [{"name": "d", "mountPath": "/d", "subPath": sub}]}],
                        volumes=[{"name": "d", "emptyDir": {}}])
        proc = meta.apply(sb, namespace, check=False)
        assert proc.returncode != 0 and "subPath must be a relative path without '..'" in proc.stderr, \
            (sub, proc.stderr)
    sb = sandboxpod("back", [{"name": "app", "command": ["true"],
                              "volumeMounts": [{"name": "d", "mountPath": "/d", "subPath": "/etc"}]}],
                    volumes=[{"name": "d", "emptyDir": {}}])
    assert meta.apply(sb, namespace, check=False).returncode != 0


def test_subpath_on_an_nfs_volume_is_refused_at_admission(sp):
    obj = pod("nfs-sub", [container("app", "true", [{"name": "share", "mountPath": "/s", "subPath": "a"}])],
              [{"name": "share", "nfs": {"server": "127.0.0.1", "path": "/exports"}}])
    proc = apply(sp, obj)
    assert proc.returncode != 0
    assert "spec.containers[name=app].volumeMounts.subPath: Forbidden: not supported by sk8s on nfs volumes" \
        in proc.stderr
