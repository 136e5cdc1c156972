"""Stopping a sandbox's tasks ends them even when a cancellation is lost (Python 3.11's
wait_for drops one that arrives with its result), and never hangs a deletion."""
import asyncio
import logging

from operators.providers.local.kubelet.tasks import cancel_all


async def _swallows_first_cancel(log: list[str]) -> None:
    swallowed = False
    while True:
        try:
            await asyncio.sleep(0.01)
        except asyncio.CancelledError:
            if swallowed:
                log.append("ended")
                raise
            swallowed = True  # as wait_for does when its inner future is done too
            log.append("swallowed")


def test_a_lost_cancellation_is_sent_again():
    async def main():
        log: list[str] = []
        task = asyncio.create_task(_swallows_first_cancel(log))
        await asyncio.sleep(0.02)
        await asyncio.wait_for(cancel_all([task], "pod", round_seconds=0.05), 2)
        return task, log
    task, log = asyncio.run(main())
    assert task.done() and log == ["swallowed", "ended"]


def test_a_task_that_never_ends_is_logged_and_left(caplog):
    flag = {"stop": False}

    async def stubborn():
        while not flag["stop"]:
            try:
                await asyncio.sleep(0.01)
            except asyncio.CancelledError:
                pass

    async def main():
        task = asyncio.create_task(stubborn(), name="stubborn probe")
        await asyncio.wait_for(cancel_all([task], "ns.pod", round_seconds=0.01, rounds=3), 2)
        done = task.done()
        flag["stop"] = True
        await task
        return done
    with caplog.at_level(logging.ERROR, logger="operators.providers.local.kubelet.tasks"):
        assert asyncio.run(main()) is False
    assert "ns.pod: 1 task(s) did not stop: ['stubborn probe']" in caplog.text


def test_done_and_empty_task_lists_return_at_once():
    async def main():
        t = asyncio.create_task(asyncio.sleep(0))
        await t
        await asyncio.wait_for(cancel_all([t], "pod"), 0.5)
        await asyncio.wait_for(cancel_all([], "pod"), 0.5)
    asyncio.run(main())


def test_a_probe_loop_of_a_stopped_run_ends_by_itself():
    """Even if its cancellation were lost, a probe loop ends once its run is no longer the
    container's (a stopped pod, a new run): it never probes or kills for an old run."""
    from operators.models.podspec import Container
    from operators.providers.local.kubelet.probeloop import ProbeLoops
    from operators.providers.local.kubelet.runs import ContainerRun
    from operators.providers.sandbox import SandboxRef

    class Runtime:
        calls = 0

        async def exec_command(self, ref, name, command, timeout):
            Runtime.calls += 1
            return 0, ""

    async def main():
        spec = Container.model_validate({"name": "app", "image": "busybox",
                                         "readinessProbe": {"exec": {"command": ["true"]}, "periodSeconds": 1}})
        cs = ContainerRun(spec=spec, init=False)
        loops = ProbeLoops(Runtime(), SandboxRef("ns", "pod", "uid"), None, event=lambda *a: None,
                           changed=lambda: None)
        loops.watch(cs, {"StartedAt": "2026-11-30T04:00:00Z"})
        task = cs.probe_tasks[0]
        await asyncio.sleep(0.1)
        probed = Runtime.calls
        cs.run_id = None  # stopped, with no cancellation at all
        await asyncio.wait_for(task, 3)
        return probed
    assert asyncio.run(main()) == 1
