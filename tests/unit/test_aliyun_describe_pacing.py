"""describe_pacing: when the moving container groups are described (pure, a given clock)."""
from __future__ import annotations

import pytest

from operators.providers.aliyun.describe_pacing import DescribePacing, cloud_took


def test_a_new_group_waits_busy_interval_until_a_time_is_learnt_then_the_learnt_time():
    pacing = DescribePacing(0.5, 5.0)
    pacing.created("g1", 100.0)
    assert pacing.next_round() == 100.5 and pacing.take_round(100.4) == []
    assert pacing.take_round(100.5) == [["g1"]]
    pacing.seen("g1", "Pending", True, 100.5)
    assert pacing.next_round() == 101.0
    pacing.seen("g1", "Running", False, 101.0)  # left Pending between 100.5 and 101.0
    assert pacing.typical == 0.75 and pacing.moving() == []
    pacing.created("g2", 200.0)
    assert pacing.next_round() == 200.75


def test_a_first_look_finding_it_running_teaches_a_shorter_time_never_below_zero_nor_above_the_bound():
    pacing = DescribePacing(0.5, 5.0, first_max=3.0)
    pacing.created("g1", 0.0)
    pacing.seen("g1", "Running", False, 0.5)
    assert pacing.typical == 0.0 and pacing.first_delay() == 0.0  # quicker than 0.5: an interval less
    pacing.created("g2", 10.0)
    pacing.seen("g2", "Pending", True, 10.1)
    pacing.seen("g2", "Running", False, 10.5)
    assert pacing.typical == pytest.approx(0.25 * 0.3)  # out in (0.1, 0.5]: 0.3, above the average: a quarter of the way
    for i in range(40):  # groups that take 20 s
        pacing.created(f"s{i}", 1000.0 * i)
        pacing.seen(f"s{i}", "Pending", True, 1000.0 * i + 19.9)
        pacing.seen(f"s{i}", "Running", False, 1000.0 * i + 20.1)
    assert 19 < pacing.typical < 21 and pacing.first_delay() == 3.0


def test_a_look_far_too_late_learns_the_clouds_own_time_at_once():
    pacing = DescribePacing(0.5, 5.0)
    pacing.typical = 8.0
    pacing.created("g", 0.0)
    pacing.seen("g", "Running", False, 8.0, took=1.0)  # the cloud ran it after a second
    assert pacing.typical == 4.5  # half way down to 1 s
    pacing.created("h", 100.0)
    pacing.seen("h", "Running", False, 104.5, took=4.0)  # within the timestamps' second: not trusted
    assert pacing.typical == 4.25


def test_the_clouds_time_is_read_from_the_group():
    group = {"CreationTime": "2026-11-30T10:00:00Z", "Containers": [
        {"CurrentState": {"State": "Running", "StartTime": "2026-11-30T10:00:02Z"}},
        {"CurrentState": {"State": "Running", "StartTime": "2026-11-30T10:00:03Z"}}]}
    assert cloud_took(group) == 3.0
    group["Containers"][1]["CurrentState"] = {"State": "Waiting"}
    assert cloud_took(group) is None  # not all running: no time to learn
    assert cloud_took({"Containers": []}) is None


def test_a_group_still_moving_is_described_again_after_a_quarter_of_its_time_between_the_intervals():
    pacing = DescribePacing(0.5, 5.0)
    pacing.created("g", 0.0)
    pacing.seen("g", "Pending", True, 1.0)
    assert pacing.next_round() == 1.5  # busy_interval: a quarter of 1 s is less
    pacing.take_round(1.5)
    pacing.seen("g", "Pending", True, 8.0)
    assert pacing.next_round() == 10.0  # 8 s moving: 2 s
    pacing.take_round(10.0)
    pacing.seen("g", "Pending", True, 60.0)
    assert pacing.next_round() == 65.0  # at most idle_interval


def test_rounds_come_at_most_every_busy_interval_and_fill_their_call_with_the_other_moving_groups():
    pacing = DescribePacing(0.5, 5.0)
    for i in range(25):
        pacing.created(f"g{i:02}", 0.01 * i)
    assert pacing.take_round(0.5) == [[f"g{i:02}" for i in range(20)]]  # g00 due, 19 more fill the call
    assert pacing.next_round() == 1.0  # g20 is due at 0.7, but a round came at 0.5
    for i in range(20):
        pacing.seen(f"g{i:02}", "Pending", True, 0.5)
    assert [len(c) for c in pacing.take_round(1.0)] == [20, 5]  # all 25 due now: two calls
    for i in range(25):
        pacing.created(f"h{i:02}", 2.0)
    calls = pacing.take_round(2.5)
    assert [len(c) for c in calls] == [20, 20, 10]  # 30 due after the five g's: two calls and a third
    assert {g for c in calls for g in c} == set(pacing.moving())


def test_a_group_seen_moving_in_a_sweep_or_sent_an_update_is_described_by_the_next_rounds():
    pacing = DescribePacing(0.5, 5.0)
    pacing.seen("restarting", "Restarting", True, 10.0)
    assert pacing.next_round() == 10.5 and pacing.typical is None  # not made here: nothing learnt
    pacing.soon("updating", 10.2)
    assert pacing.next_round() == 10.2
    pacing.forget("updating")
    pacing.seen("restarting", "Running", False, 10.5)
    assert pacing.moving() == [] and pacing.next_round() is None


def test_without_backoff_and_first_delay_it_is_the_old_fixed_schedule():
    pacing = DescribePacing(0.5, 5.0, first_max=0.0, backoff=0.0)
    pacing.created("g", 0.0)
    assert pacing.next_round() == 0.0
    for t in (0.0, 0.5, 1.0, 1.5, 2.0):
        assert pacing.take_round(t) == [["g"]]
        pacing.seen("g", "Pending", True, t)
