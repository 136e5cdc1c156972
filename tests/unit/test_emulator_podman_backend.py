"""The emulator's podman backend without podman: what it asks of a sandbox provider (an
in-memory one here; tests/e2e/test_emulator_podman.py runs real sandboxes), how a
sandbox's reported state becomes ECI's container statuses, and the group's address."""
from __future__ import annotations

import asyncio
import base64

import pytest

from operators.emulator.alibaba import params as p
from operators.emulator.alibaba import podman_backend
from operators.emulator.alibaba.backends import LogOptions
from operators.emulator.alibaba.eci import Call, EciService
from operators.emulator.alibaba.eci_groups import group_status, render
from operators.emulator.alibaba.errors import ApiError
from operators.emulator.alibaba.podman_backend import PodmanBackend, status_of, statuses_of
from operators.providers.errors import ImagePullError, InvalidSpecError
from operators.providers.lifecycle import SandboxLifecycle
from operators.providers.sandbox import ContainerInfo, SandboxInstance, SandboxRef

from .emulatorkit import AK, group_params

UID = "0b7e3c1a-5f7e-4c44-9a59-2f1e8c2b6d10"
TAGS = {"Tag.1.Key": "sk8s.io/namespace", "Tag.1.Value": "tenant-a", "Tag.2.Key": "sk8s.io/name",
        "Tag.2.Value": "web", "Tag.3.Key": "sk8s.io/uid", "Tag.3.Value": UID,
        "Tag.4.Key": "sk8s.io/cluster-uid", "Tag.4.Value": "c-uid-1"}


class FakeProvider(SandboxLifecycle):
    """Sandboxes in memory: what the backend asked, and the instance it is to see."""

    name = "fake"

    def __init__(self):
        self.calls: list[tuple] = []
        self.instances: dict[SandboxRef, SandboxInstance] = {}
        self.ensure_errors: list[Exception] = []
        self.ip = "10.8.0.7"
        self.inspected = 0
        self.changes: asyncio.Queue | None = None

    async def setup(self):
        self.calls.append(("setup",))

    async def prepare_volumes(self, ref, spec, labels, content):
        self.calls.append(("prepare_volumes", ref, labels, content))

    async def ensure(self, ref, spec, labels):
        self.calls.append(("ensure", ref, labels, spec))
        if self.ensure_errors:
            raise self.ensure_errors.pop(0)
        self.instances[ref] = SandboxInstance(ref, "pod-1", "running", ip=self.ip, containers=[
            ContainerInfo("main", "running", started_at="2026-11-30T14:00:00Z", container_id="podman://1")])
        return ref.instance_name

    async def inspect(self, ref):
        self.inspected += 1
        return self.instances.get(ref)

    async def write_volumes(self, ref, spec, content):
        self.calls.append(("write_volumes", ref, content))
        return list(content)

    async def change_images(self, ref, spec, labels):
        self.calls.append(("change_images", ref, labels, [c.image for c in spec.containers]))
        return [c.name for c in spec.containers]

    async def delete(self, ref, grace_seconds):
        self.calls.append(("delete", ref, grace_seconds))
        self.instances.pop(ref, None)

    async def list(self):
        return list(self.instances)

    async def watch(self):
        self.changes = asyncio.Queue()
        while True:
            yield await self.changes.get()


class FakeStreams:
    def __init__(self):
        self.asked = []

    async def logs(self, ref, container, opts):
        self.asked.append((ref, container, opts))
        for chunk in (b"line 1\n", b"line \xff2\n"):
            yield chunk


def group(gid: str = "eci-1", **extra: str) -> dict:
    g = p.unflatten(group_params("sk8s-" + UID, **extra))
    g.update({"ContainerGroupId": gid, "RegionId": "cn-hangzhou"})
    return g


def run(coro):
    return asyncio.run(coro)


@pytest.fixture
def fake():
    provider, streams = FakeProvider(), FakeStreams()
    return provider, streams, PodmanBackend(provider, streams)


def test_a_sandbox_instance_as_eci_reports_its_containers():
    previous = ContainerInfo("app", "terminated", exit_code=1, reason="Error", started_at="2026-11-30T14:00:00Z",
                             finished_at="2026-11-30T14:00:05Z")
    inst = SandboxInstance(SandboxRef("n", "p", "u"), "pod-1", "running", ip="10.8.0.7", init_containers=[
        ContainerInfo("init", "terminated", exit_code=0, reason="Completed", started_at="2026-11-30T13:59:58Z",
                      finished_at="2026-11-30T13:59:59Z", ready=True)], containers=[
        ContainerInfo("app", "running", started_at="2026-11-30T14:00:10Z", restart_count=1, ready=False,
                      last_state=previous),
        ContainerInfo("side", "waiting", reason="CrashLoopBackOff", message="back-off 10s", restart_count=3),
        ContainerInfo("plain", "running", started_at="2026-11-30T14:00:10Z")])
    s = statuses_of(inst)
    assert s["init"].current.state == "Terminated" and s["init"].current.exit_code == 0
    assert s["init"].ready is False  # ECI: an init container is never ready
    assert s["init"].current.finish_time == 1796047199.0
    app = s["app"]
    assert (app.current.state, app.ready, app.restart_count) == ("Running", False, 1)  # its probe says not ready
    assert app.current.start_time == 1796047210.0 and app.current.detail_status == "Started"
    assert (app.previous.state, app.previous.exit_code, app.previous.reason) == ("Terminated", 1, "Error")
    side = s["side"]
    assert (side.current.state, side.current.reason, side.current.message) == ("Waiting", "CrashLoopBackOff",
                                                                                "back-off 10s")
    assert side.restart_count == 3 and side.current.exit_code is None
    assert s["plain"].ready is True  # running, no probe: ready


def test_a_waiting_container_without_reason_is_being_created():
    st = status_of(ContainerInfo("c", "waiting"), init=False)
    assert (st.current.state, st.current.detail_status, st.ready) == ("Waiting", "ContainerCreating", False)


def test_start_prepares_files_and_ensures_the_tagged_sandbox_in_its_cluster(fake):
    provider, _, backend = fake
    content = base64.b64encode(b"x=1\n").decode()
    g = group(**TAGS, **{"Volume.1.Name": "cfg", "Volume.1.Type": "ConfigFileVolume",
                         "Volume.1.ConfigFileVolume.ConfigFileToPath.1.Path": "app.conf",
                         "Volume.1.ConfigFileVolume.ConfigFileToPath.1.Content": content,
                         "Container.1.VolumeMount.1.Name": "cfg", "Container.1.VolumeMount.1.MountPath": "/etc/app"})
    backend.admit(g)
    assert backend.intranet_ip(g) == ""  # none yet: the API shows none rather than one of its own
    ip = run(backend.start(g))
    ref = SandboxRef("tenant-a", "web", UID)
    assert ip == "10.8.0.7" and backend.intranet_ip(g) == "10.8.0.7"
    kinds = [c[0] for c in provider.calls]
    assert kinds == ["setup", "prepare_volumes", "ensure"]
    assert provider.calls[1][1:] == (ref, {"sk8s.io/cluster-uid": "c-uid-1"}, {"cfg": {"app.conf": (b"x=1\n", 0o644)}})
    assert provider.calls[2][1] == ref and provider.calls[2][3].containers[0].image == "busybox"


def test_a_group_naming_no_sandbox_is_its_own_and_two_groups_of_one_sandbox_stay_apart(fake):
    provider, _, backend = fake
    run(backend.start(group("eci-own")))
    run(backend.start(group("eci-a", **TAGS)))
    run(backend.start(group("eci-b", **TAGS)))  # a second create without a ClientToken
    refs = [c[1] for c in provider.calls if c[0] == "ensure"]
    assert refs == [SandboxRef("eci", "sk8s-" + UID, "eci-own"), SandboxRef("tenant-a", "web", UID),
                    SandboxRef("tenant-a", "web", "eci-b")]


@pytest.mark.parametrize("key, value", [("sk8s.io/uid", "../../etc"), ("sk8s.io/namespace", "A B"),
                                        ("sk8s.io/cluster-uid", "x/y")])
def test_tags_that_would_name_host_paths_are_refused(fake, key, value):
    _, _, backend = fake
    with pytest.raises(ApiError) as e:
        backend.admit(group(**{**TAGS, "Tag.5.Key": key, "Tag.5.Value": value}))
    assert e.value.code == "InvalidParameter" and "Tag.5.Value" in e.value.message


def test_a_start_that_may_pass_waits_and_is_tried_again(fake, monkeypatch):
    provider, _, backend = fake
    monkeypatch.setattr(podman_backend, "PULL_BACKOFF", (0.01,))
    provider.ensure_errors = [ImagePullError('failed to pull image "busybox": no route'),
                              ImagePullError('failed to pull image "busybox": no route')]
    g = group(**TAGS)

    async def scenario():
        assert await backend.start(g) is None
        first = await backend.state(g)
        assert (first["main"].current.state, first["main"].current.reason) == ("Waiting", "ErrImagePull")
        await asyncio.sleep(0.005)
        for _ in range(100):
            states = await backend.state(g)
            if states["main"].current.state == "Running":
                break
            if states["main"].current.reason == "ImagePullBackOff":
                seen_backoff.append(True)
            await asyncio.sleep(0.005)
        assert states["main"].current.state == "Running" and backend.intranet_ip(g) == "10.8.0.7"
        await backend.close()

    seen_backoff: list[bool] = []
    run(scenario())
    assert seen_backoff and len([c for c in provider.calls if c[0] == "ensure"]) == 3


def test_a_start_that_cannot_pass_fails(fake):
    provider, _, backend = fake
    provider.ensure_errors = [InvalidSpecError("container main: capabilities.add: SYS_ADMIN")]
    with pytest.raises(InvalidSpecError):
        run(backend.start(group(**TAGS)))


def test_delete_removes_the_sandbox_with_the_groups_grace(fake):
    provider, _, backend = fake
    g = group(**TAGS, TerminationGracePeriodSeconds="7")
    run(backend.delete(g))  # never started: nothing of it exists, nothing is asked
    assert provider.calls == []
    run(backend.start(g))
    run(backend.delete(g))
    assert provider.calls[-1] == ("delete", SandboxRef("tenant-a", "web", UID), 7)
    assert run(backend.state(g)) == {}


def test_logs_pass_every_option_and_a_container_not_created_has_none(fake):
    provider, streams, backend = fake
    g = group(**TAGS)
    assert run(backend.logs(g, "main", LogOptions())) == ""  # no sandbox yet
    run(backend.start(g))
    text = run(backend.logs(g, "main", LogOptions(tail=5, since_seconds=60, limit_bytes=100, timestamps=True)))
    assert text == "line 1\nline \ufffd2\n"
    (_, container, opts), = streams.asked
    assert (container, opts.tail, opts.since_seconds, opts.limit_bytes, opts.timestamps) == ("main", 5, 60, 100, True)
    assert run(backend.logs(g, "other", LogOptions())) == ""  # no such container created
    assert run(backend.logs(g, "main", LogOptions(limit_bytes=0))) == "" and len(streams.asked) == 1


def test_through_the_api_the_group_shows_its_sandboxs_address(fake):
    provider, _, backend = fake
    now = [1000.0]
    svc = EciService(backend, schedule_delay=1.0, clock=lambda: now[0])

    async def scenario():
        gid = (await svc.create(Call(group_params("sk8s-" + UID, **TAGS), "cn-hangzhou", AK)))["ContainerGroupId"]
        assert render(svc.groups[gid])["IntranetIp"] == ""
        now[0] += 1.0
        await svc.step()  # scheduled: the start runs
        for _ in range(10):
            await asyncio.sleep(0)
        await svc.step()  # observed
        view = render(svc.groups[gid])
        assert view["Status"] == "Running" and view["IntranetIp"] == "10.8.0.7"
        with pytest.raises(ApiError) as e:
            await svc.create(Call(group_params("sk8s-other", **{"Container.1.Gpu": "1"}), "cn-hangzhou", AK))
        assert "Container.1.Gpu" in e.value.message and len(svc.groups) == 1
        await backend.close()

    run(scenario())


def test_a_container_backing_off_after_a_crash_keeps_its_group_started():
    """The local kubelet reports a crash-looping container as waiting (CrashLoopBackOff) with
    its restarts: the group has started, Running next to a running container, else Restarting."""
    g = group(**{"Container.2.Name": "side", "Container.2.Image": "busybox"})
    looping = status_of(ContainerInfo("main", "waiting", reason="CrashLoopBackOff", restart_count=2), init=False)
    running = status_of(ContainerInfo("side", "running"), init=False)
    creating = status_of(ContainerInfo("side", "waiting", reason="ContainerCreating"), init=False)
    assert group_status(g, {"main": looping, "side": running}) == "Running"
    assert group_status(g, {"main": looping, "side": looping}) == "Restarting"
    assert group_status(g, {"main": looping, "side": creating}) == "Pending"  # one never started yet


def test_a_sandbox_is_read_again_when_the_provider_says_it_changed(fake, monkeypatch):
    provider, _, backend = fake
    g = group(**TAGS)
    ref = SandboxRef("tenant-a", "web", UID)

    async def scenario():
        await backend.start(g)
        await asyncio.sleep(0)  # the watch starts
        before = provider.inspected
        assert (await backend.state(g))["main"].current.state == "Running"
        for _ in range(3):  # nothing changed: the API's ticks cost no provider call
            await backend.state(g)
        assert provider.inspected == before + 1
        provider.instances[ref].containers[0] = ContainerInfo("main", "terminated", exit_code=2)
        provider.changes.put_nowait(ref)
        await asyncio.sleep(0)
        assert (await backend.state(g))["main"].current.exit_code == 2
        monkeypatch.setattr(podman_backend, "RESYNC", 0.0)  # and every RESYNC seconds regardless
        await backend.state(g)
        assert provider.inspected == before + 3
        await backend.close()

    run(scenario())


def test_an_empty_cluster_tag_names_no_cluster(fake):
    """The aliyun provider tags a group of no tenant cluster with an empty cluster uid."""
    provider, _, backend = fake
    g = group(**{**TAGS, "Tag.4.Value": ""})
    backend.admit(g)
    run(backend.start(g))
    assert [c[2] for c in provider.calls if c[0] == "ensure"] == [{}]


def test_an_update_reaches_the_sandbox_as_the_local_provider_takes_it(fake):
    """UpdateContainerGroup: new files through write_volumes (every content volume: one left
    out would be emptied), new images through change_images; a group not started is left
    to its start."""
    provider, _, backend = fake
    files = {"Volume.1.Name": "cfg", "Volume.1.Type": "ConfigFileVolume",
             "Volume.1.ConfigFileVolume.ConfigFileToPath.1.Path": "a",
             "Volume.1.ConfigFileVolume.ConfigFileToPath.1.Content": base64.b64encode(b"1").decode(),
             "Volume.2.Name": "other", "Volume.2.Type": "ConfigFileVolume",
             "Volume.2.ConfigFileVolume.ConfigFileToPath.1.Path": "b",
             "Volume.2.ConfigFileVolume.ConfigFileToPath.1.Content": base64.b64encode(b"2").decode()}
    run(backend.update(group("eci-9"), ["main"], []))  # never started: nothing to do
    assert provider.calls == []
    run(backend.start(group(**TAGS, **files)))
    provider.calls.clear()
    g = group(**TAGS, **{**files, "Container.1.Image": "busybox:v2",
                         "Volume.1.ConfigFileVolume.ConfigFileToPath.1.Content": base64.b64encode(b"new").decode()})
    run(backend.update(g, ["main"], ["cfg"]))
    ref = SandboxRef("tenant-a", "web", UID)
    assert provider.calls == [
        ("write_volumes", ref, {"cfg": {"a": (b"new", 0o644)}, "other": {"b": (b"2", 0o644)}}),
        ("change_images", ref, {"sk8s.io/cluster-uid": "c-uid-1"}, ["busybox:v2"])]
