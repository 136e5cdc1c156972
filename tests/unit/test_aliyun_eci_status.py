"""DescribeContainerGroups' groups -> SandboxInstance (pure), on cloud-shaped responses
(tests/unit/fixtures/aliyun/, modelled on the ECI API reference's response fields)."""
import json
from pathlib import Path

import pytest

from operators.providers.aliyun.eci_status import STATES, instance_from_group, ref_from_tags
from operators.providers.sandbox import SandboxRef

FIXTURES = Path(__file__).parent / "fixtures" / "aliyun"
GROUPS = [g for page in ("describe_container_groups_page1.json", "describe_container_groups_page2.json")
          for g in json.loads((FIXTURES / page).read_text())["ContainerGroups"]]
BY_NAME = {(ref.name if (ref := ref_from_tags(g["Tags"])) else g["ContainerGroupName"]): g for g in GROUPS}
ECI_STATUSES = ("Scheduling", "Pending", "Running", "Restarting", "Updating", "Terminating", "Succeeded", "Failed",
                "Expired", "ScheduleFailed")


def inst(name: str):
    group = BY_NAME[name]
    return instance_from_group(ref_from_tags(group["Tags"]), group)


def test_the_fixtures_cover_every_eci_status_and_each_is_mapped():
    assert {g["Status"] for g in GROUPS} == set(ECI_STATUSES)
    assert set(STATES) == set(ECI_STATUSES)


@pytest.mark.parametrize("name, state", [
    ("web-1", "creating"), ("pull-fails", "creating"), ("pull-backoff", "creating"), ("running", "running"),
    ("restarting", "running"), ("updating", "running"), ("terminating", "running"), ("job-done", "exited"),
    ("job-failed", "failed"), ("expired", "failed"), ("no-stock", "failed"), ("init-running", "running"),
])
def test_group_status_becomes_the_sandbox_state(name, state):
    assert inst(name).state == state


def test_a_scheduling_group_has_no_address_and_waiting_containers():
    i = inst("web-1")
    assert i.instance_id == "eci-bp1dvysdafbh00t7wiye" and i.ip is None and i.started_at is None
    [c] = i.containers
    assert (c.name, c.state, c.reason, c.restart_count, c.ready) == ("web", "waiting", "ContainerCreating", 0, False)


def test_image_pull_failures_keep_the_clouds_reason_and_message():
    [c] = inst("pull-fails").containers
    assert (c.state, c.reason) == ("waiting", "ErrImagePull")
    assert "failed to resolve reference" in c.message
    assert inst("pull-fails").reason is None  # not failed: the pod stays Pending, as on a kubelet
    [c] = inst("pull-backoff").containers
    assert (c.state, c.reason, c.message) == ("waiting", "ImagePullBackOff",
                                              'Back-off pulling image "registry.example.com/private:1"')


def test_a_running_group_with_a_restarted_container_and_a_completed_init_container():
    i = inst("running")
    assert (i.ip, i.host_ip) == ("172.16.0.14", "172.16.0.14")
    assert i.started_at == "2026-11-30T11:50:05Z"  # the init container's start
    web, worker = i.containers
    assert (web.state, web.ready, web.started_at, web.last_state) == ("running", True, "2026-11-30T11:50:20Z", None)
    assert web.image == "registry.example.com/nginx:1.25"
    assert (worker.state, worker.restart_count, worker.ready) == ("running", 3, False)
    assert worker.started_at == "2026-11-30T11:58:00Z"  # +08:00 made UTC
    last = worker.last_state
    assert (last.state, last.exit_code, last.reason, last.message) == ("terminated", 137, "Error",
                                                                       "killed by the liveness probe")
    assert (last.started_at, last.finished_at) == ("2026-11-30T11:56:00Z", "2026-11-30T11:57:59Z")
    [migrate] = i.init_containers
    assert (migrate.state, migrate.reason, migrate.exit_code) == ("terminated", "Completed", 0)
    assert migrate.finished_at == "2026-11-30T11:50:15Z"
    assert migrate.ready is None  # ECI's Ready false of a completed init container: the state decides


def test_init_containers_in_progress():
    i = inst("init-running")
    first, second = i.init_containers
    assert first.state == "terminated" and second.state == "running" and second.restart_count == 2
    assert second.last_state.exit_code == 1
    [app] = i.containers
    assert (app.state, app.reason) == ("waiting", "PodInitializing")


def test_crash_looping_container_of_a_restarting_group():
    [c] = inst("restarting").containers
    assert (c.state, c.reason, c.restart_count) == ("waiting", "CrashLoopBackOff", 5)
    assert c.last_state.exit_code == 1 and c.last_state.reason == "Error"


def test_finished_groups():
    [done] = inst("job-done").containers
    assert (done.state, done.exit_code, done.reason, done.finished_at) == ("terminated", 0, "Completed",
                                                                            "2026-11-30T12:04:10Z")
    failed = inst("job-failed")
    assert (failed.reason, failed.message) == ("Failed", "the group failed")
    [c] = failed.containers
    assert (c.state, c.exit_code, c.reason) == ("terminated", 2, "Error")  # no cloud reason: by exit code


def test_expired_and_schedule_failed_say_why():
    expired = inst("expired")
    assert expired.reason == "Expired" and "overdue payment" in expired.message
    no_stock = inst("no-stock")
    assert no_stock.reason == "RecommendEmpty.InstanceTypeNoStock"  # the latest Warning, not the Normal after it
    assert no_stock.message.startswith("The instance type is out of stock")
    assert no_stock.ip is None


def test_a_group_the_provider_just_created():
    ref = SandboxRef("ns", "p", "u-1")
    i = instance_from_group(ref, {"ContainerGroupId": "eci-x", "ContainerGroupName": "sk8s-u-1",
                                  "Status": "Scheduling", "Containers": []})
    assert (i.ref, i.instance_id, i.state, i.containers, i.init_containers) == (ref, "eci-x", "creating", [], [])


def test_an_unknown_status_is_unknown():
    assert instance_from_group(SandboxRef("ns", "p", "u"), {"ContainerGroupId": "eci-y", "Status": "Mystery"}).state \
        == "unknown"


def test_ref_from_tags():
    assert ref_from_tags(BY_NAME["running"]["Tags"]) == SandboxRef("tenant-a", "running",
                                                                   "6f1c2a9e-0004-4c44-9a59-2f1e8c2b6d10")
    assert ref_from_tags(BY_NAME["someone-elses-group"]["Tags"]) is None  # no name, no uid: not ours
    assert ref_from_tags(None) is None and ref_from_tags([]) is None
    assert ref_from_tags([{"Key": "sk8s.io/namespace", "Value": "a"}, {"Key": "sk8s.io/name", "Value": "b"},
                          {"Key": "sk8s.io/uid", "Value": ""}]) is None
