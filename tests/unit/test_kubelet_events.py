"""The local kubelet's container events, in the 1.37 kubelet's words: Pulling/Pulled per pull
policy, Created, Started, Killing, each naming its container by field path (so two
containers' identical messages stay two events), mirrored onto the tenant pod with it."""
import asyncio

from operators.models.podspec import PodSpec
from operators.providers.local.imagepull import go_duration, present_message, pulled_message
from operators.providers.local.kubelet.worker import PodWorker
from operators.providers.sandbox import SandboxRef
from operators.sandboxpod.events import build_event, event_name
from operators.virtualnode.controllers.eventmirror import tenant_event

REF = SandboxRef("tenant-ns", "default.web", "sbp-uid")


class Runtime:
    def __init__(self):
        self.calls = []

    async def pull_image(self, c, event):
        self.calls.append(("pull", c.name))
        event("Normal", "Pulled", present_message(c.image))

    async def create_container(self, ref, spec, c, *, pulled=False, **_):
        self.calls.append(("create", c.name, pulled))

    async def stop_container(self, ref, container, grace):
        self.calls.append(("stop", container))


def test_messages_and_durations_as_the_kubelet_prints_them():
    assert go_duration(0.8504) == "850ms" and go_duration(1.5) == "1.5s" and go_duration(2) == "2s"
    assert go_duration(123.25) == "2m3.25s"
    assert present_message("busybox:1.36") == \
        'Container image "busybox:1.36" already present on machine and can be accessed by the pod'
    assert pulled_message("nginx:1.27", 1.2345, 3.5, "1234") == \
        'Successfully pulled image "nginx:1.27" in 1.234s (3.5s including waiting). Image size: 1234 bytes.'


def test_a_container_is_pulled_created_and_started_with_events_naming_it():
    spec = PodSpec.model_validate({"initContainers": [{"name": "setup", "image": "i"}],
                                   "containers": [{"name": "app", "image": "i"}]})
    events = []
    rt = Runtime()
    w = PodWorker(rt, REF, spec, network="n", labels={}, dns=[], state_file=None,
                  events=lambda ref, t, reason, msg, **kw: events.append((reason, msg, kw.get("field_path"))))

    async def main():
        await w._create(w.by_name["setup"])
        await w._create(w.by_name["app"])
        await w._kill(w.by_name["app"], 0)
    asyncio.run(main())
    assert rt.calls == [("pull", "setup"), ("create", "setup", True), ("pull", "app"), ("create", "app", True),
                        ("stop", "app")]
    pulled = 'Container image "i" already present on machine and can be accessed by the pod'
    assert events == [
        ("Pulled", pulled, "spec.initContainers{setup}"),
        ("Created", "Container created", "spec.initContainers{setup}"),
        ("Started", "Container started", "spec.initContainers{setup}"),
        ("Pulled", pulled, "spec.containers{app}"),
        ("Created", "Container created", "spec.containers{app}"),
        ("Started", "Container started", "spec.containers{app}"),
        ("Killing", "Stopping container app", "spec.containers{app}"),
    ]


def test_the_same_message_of_two_containers_is_two_events_and_the_tenant_sees_which():
    a, b = "spec.containers{a}", "spec.containers{b}"
    assert event_name(REF, "Started", "Container started", a) != event_name(REF, "Started", "Container started", b)
    ev = build_event(REF, "Normal", "Started", "Container started", count=1, first="t", now="t", host="h",
                     field_path=a)
    assert ev["involvedObject"]["fieldPath"] == a
    pod = {"metadata": {"name": "web", "namespace": "default", "uid": "pod-uid"}}
    mirrored = tenant_event(ev, pod, {"metadata": {"name": "default.web", "uid": "sbp-uid"}}, "vn")
    assert mirrored["involvedObject"] == {"apiVersion": "v1", "kind": "Pod", "name": "web", "namespace": "default",
                                          "uid": "pod-uid", "fieldPath": a}
