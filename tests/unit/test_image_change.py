"""A pod's image changed in place: the virtual node says so in the SandboxPod's
containerImages, the operator's spec is the pod's as it runs now, and the local kubelet
restarts the running container with the new image ("definition changed"), whatever its
restartPolicy, counting the restart, as the 1.37 kubelet does."""
import asyncio

from operators.models.contracts import LABEL_CONTAINER_IMAGE
from operators.models.podspec import PodSpec
from operators.providers.local.kubelet.worker import PodWorker
from operators.providers.sandbox import SandboxRef
from operators.sandboxpod.sandbox import spec_of
from operators.virtualnode.mapping.spec import container_images

REF = SandboxRef("tenant-ns", "default.web", "sbp-uid")


def test_the_virtual_node_lists_each_changed_image_once():
    sbp = {"spec": {"initContainers": [{"name": "setup", "image": "a:1"}],
                    "containers": [{"name": "app", "image": "b:1"}, {"name": "side", "image": "c:1"}]}}
    pod = {"spec": {"initContainers": [{"name": "setup", "image": "a:1"}],
                    "containers": [{"name": "app", "image": "b:2"}, {"name": "side", "image": "c:1"}]}}
    assert container_images(pod, sbp) == [{"name": "app", "image": "b:2"}]
    assert container_images(pod, {**sbp, "containerImages": [{"name": "app", "image": "b:2"}]}) is None
    # back to the image it was made with: the entry goes
    assert container_images(sbp, {**sbp, "containerImages": [{"name": "app", "image": "b:2"}]}) == []
    assert container_images(sbp, sbp) is None


def test_the_operator_runs_the_spec_with_the_images_changed_since():
    body = {"spec": {"containers": [{"name": "app", "image": "b:1", "command": ["sleep", "9"]}],
                     "initContainers": [{"name": "setup", "image": "a:1"}]},
            "containerImages": [{"name": "app", "image": "b:2"}]}
    spec = spec_of(body)
    assert [(c.name, c.image, c.command) for c in spec.containers] == [("app", "b:2", ["sleep", "9"])]
    assert spec.initContainers[0].image == "a:1"
    assert spec_of({"spec": body["spec"]}).containers[0].image == "b:1"


class Runtime:
    """Containers as podman keeps them: a state, and the image label the spec gave them."""

    def __init__(self):
        self.containers: dict[str, dict] = {}
        self.created: list[tuple[str, str]] = []
        self.worker: PodWorker | None = None

    async def pull_image(self, c, event):
        pass

    async def create_container(self, ref, spec, c, **_):
        self.created.append((c.name, c.image))
        self.containers[c.name] = {"State": {"Status": "running", "StartedAt": f"2026-11-30T07:00:{len(self.created):02d}Z"},
                                   "Config": {"Labels": {LABEL_CONTAINER_IMAGE: c.image}}}

    async def inspect_container(self, ref, name):
        return self.containers.get(name)

    async def start_container(self, ref, name):
        self.containers[name]["State"]["Status"] = "running"

    async def stop_container(self, ref, name, grace):
        self.containers[name]["State"].update(Status="exited", ExitCode=137, FinishedAt="2026-11-30T07:00:00Z")
        self.worker.on_died(name, 137)

    async def retire_container(self, ref, name):
        self.containers.pop(name, None)
        return True

    async def termination_message(self, ref, c, inspection):
        return None


async def _until(predicate, timeout=5.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


def test_a_running_container_whose_image_changed_is_replaced_whatever_its_restart_policy():
    spec = PodSpec.model_validate({"restartPolicy": "Never", "terminationGracePeriodSeconds": 0,
                                   "containers": [{"name": "app", "image": "b:1"}, {"name": "side", "image": "c:1"}]})
    rt = Runtime()
    events = []
    w = PodWorker(rt, REF, spec, network="n", labels={}, dns=[], state_file=None,
                  events=lambda ref, t, reason, msg, **kw: events.append((reason, msg)))
    rt.worker = w

    async def main():
        await w.start()
        await _until(lambda: len(rt.created) == 2)
        new = spec.model_copy(update={"containers": [spec.containers[0].model_copy(update={"image": "b:2"}),
                                                     spec.containers[1]]})
        assert await w.change_images(new) == ["app"]
        await _until(lambda: ("app", "b:2") in rt.created)
        await _until(lambda: rt.containers.get("app", {}).get("State", {}).get("Status") == "running")
        assert await w.change_images(new) == []  # idempotent: it runs the new image now
        await w.stop()
    asyncio.run(main())
    assert rt.created == [("app", "b:1"), ("side", "c:1"), ("app", "b:2")]
    app, side = w.by_name["app"], w.by_name["side"]
    assert (app.restarts, side.restarts) == (1, 0) and not app.done
    assert app.last_terminated is not None and app.last_terminated.exit_code == 137
    assert ("Killing", "Container app definition changed, will be restarted") in events


def test_a_change_interrupted_by_an_operator_restart_is_finished_on_resume():
    """The new worker is made from the spec with the new image; the container still runs the old one."""
    new = PodSpec.model_validate({"containers": [{"name": "app", "image": "b:2"}], "terminationGracePeriodSeconds": 0})
    rt = Runtime()
    rt.containers["app"] = {"State": {"Status": "running", "StartedAt": "2026-11-30T06:00:00Z"},
                            "Config": {"Labels": {LABEL_CONTAINER_IMAGE: "b:1"}}}
    w = PodWorker(rt, REF, new, network="n", labels={}, dns=[], state_file=None)
    rt.worker = w

    async def main():
        w.resume()
        assert await w.change_images(new) == ["app"]
        await _until(lambda: rt.created == [("app", "b:2")])
        await w.stop()
    asyncio.run(main())


def test_a_container_of_an_earlier_version_without_the_label_is_left_as_it_runs():
    new = PodSpec.model_validate({"containers": [{"name": "app", "image": "b:2"}]})
    rt = Runtime()
    rt.containers["app"] = {"State": {"Status": "running"}, "Config": {"Labels": {}}}
    w = PodWorker(rt, REF, new, network="n", labels={}, dns=[], state_file=None)
    assert asyncio.run(w.change_images(new)) == []


def test_a_container_killed_for_its_new_image_is_never_reported_terminated():
    """Under restartPolicy Never the apiserver refuses a status that takes a container from
    terminated back to running: between the kill and the new run it is waiting."""
    from operators.providers.local.kubelet.report import container_info
    from operators.providers.local.kubelet.runs import ContainerRun
    from operators.providers.sandbox import ContainerInfo
    spec = PodSpec.model_validate({"containers": [{"name": "app", "image": "b:2"}]})
    cs = ContainerRun(spec.containers[0], False)
    cs.replacing, cs.waiting = True, ("ContainerCreating", None)
    killed = ContainerInfo(name="app", state="terminated", exit_code=143, reason="Error",
                           finished_at="2026-11-30T07:43:41Z")
    info = container_info(cs, killed, False)
    assert (info.state, info.reason) == ("waiting", "ContainerCreating")
    assert info.last_state.exit_code == 143
