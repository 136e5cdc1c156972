"""SandboxPod status from provider state: phases, conditions, container statuses."""
import pytest

from operators.models.podspec import PodSpec
from operators.providers.errors import ImagePullError, InvalidSpecError
from operators.providers.sandbox import ContainerInfo, SandboxInstance, SandboxRef
from operators.sandboxpod.status import build_status, pod_phase

REF = SandboxRef("ns", "p", "u")
T0, T1 = "2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z"


def spec(policy="Always", n=1):
    return PodSpec.model_validate({"restartPolicy": policy,
                                   "containers": [{"name": f"c{i}", "image": "img"} for i in range(n)]})


def running(name="c0", restarts=0):
    return ContainerInfo(name, "running", started_at=T0, restart_count=restarts)


def exited(name="c0", code=0, restarts=0):
    return ContainerInfo(name, "terminated", exit_code=code, reason="Completed" if code == 0 else "Error",
                         started_at=T0, finished_at=T1, restart_count=restarts)


def inst(*containers):
    return SandboxInstance(REF, "abc", "running", ip="10.0.0.5", host_ip="10.0.0.1", started_at=T0,
                           containers=list(containers))


@pytest.mark.parametrize("policy,code,phase", [
    ("Never", 0, "Succeeded"), ("Never", 1, "Failed"),
    ("OnFailure", 0, "Succeeded"), ("OnFailure", 2, "Running"),
    ("Always", 0, "Running"), ("Always", 1, "Running"),
])
def test_exit_phase_per_restart_policy(policy, code, phase):
    assert pod_phase(spec(policy), [exited(code=code)]) == phase


def test_pending_until_every_container_exists():
    assert pod_phase(spec(n=2), [running("c0")]) == "Pending"
    assert pod_phase(spec(n=2), [running("c0"), running("c1")]) == "Running"


def test_running_pod_is_ready_with_ip_and_conditions():
    st = build_status(spec(), inst(running()), prev={}, generation=3, provider="local", now=T1)
    assert st["phase"] == "Running" and st["podIP"] == "10.0.0.5" and st["instanceID"] == "abc"
    conds = {c["type"]: c for c in st["conditions"]}
    assert conds["Ready"]["status"] == "True" and conds["Scheduled"]["status"] == "True"
    assert all(c["observedGeneration"] == 3 for c in conds.values())
    assert st["containerStatuses"][0]["state"] == {"running": {"startedAt": T0}}
    assert st["startTime"] == T0


def test_transition_time_moves_only_on_change():
    first = build_status(spec(), inst(running()), prev={}, generation=1, provider="local", now=T0)
    again = build_status(spec(), inst(running()), prev=first, generation=1, provider="local", now=T1)
    ready = lambda s: next(c for c in s["conditions"] if c["type"] == "Ready")  # noqa: E731
    assert ready(again)["lastTransitionTime"] == T0
    down = build_status(spec("Never"), inst(exited(code=1)), prev=again, generation=1, provider="local", now=T1)
    assert ready(down)["lastTransitionTime"] == T1 and ready(down)["status"] == "False"


def test_restart_keeps_last_terminated_state():
    crashed = build_status(spec(), inst(exited(code=3, restarts=0)), prev={}, generation=1, provider="local")
    back = build_status(spec(), inst(running(restarts=1)), prev=crashed, generation=1, provider="local")
    cs = back["containerStatuses"][0]
    assert cs["restartCount"] == 1 and cs["lastState"]["terminated"]["exitCode"] == 3


def test_image_pull_error_is_pending_with_reason():
    err = ImagePullError('failed to pull image "nope"')
    st = build_status(spec(), None, prev={}, generation=1, provider="local", error=err)
    assert st["phase"] == "Pending" and st["reason"] == "ErrImagePull"
    assert st["containerStatuses"][0]["state"]["waiting"]["reason"] == "ErrImagePull"
    sched = next(c for c in st["conditions"] if c["type"] == "Scheduled")
    assert sched["status"] == "False" and sched["reason"] == "ErrImagePull"


def test_permanent_error_fails_the_pod():
    err = InvalidSpecError("bad", reason="CreateContainerConfigError")
    st = build_status(spec(), None, prev={}, generation=1, provider="local", error=err)
    assert st["phase"] == "Failed" and st["reason"] == "CreateContainerConfigError"


def test_terminal_phase_stays_terminal():
    done = build_status(spec("Never"), inst(exited(code=0)), prev={}, generation=1, provider="local")
    later = build_status(spec("Never"), SandboxInstance(REF, "abc", "creating"), prev=done, generation=1,
                         provider="local")
    assert done["phase"] == later["phase"] == "Succeeded"
