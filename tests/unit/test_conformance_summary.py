"""hack/conformance_summary.py: counting and grouping a ginkgo JSON report of e2e.test."""
from __future__ import annotations

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "conformance_summary", Path(__file__).resolve().parents[2] / "hack" / "conformance_summary.py")
summary_mod = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(summary_mod)


def _spec_report(text: str, state: str, message: str = "", leaf: str = "It") -> dict:
    return {"ContainerHierarchyTexts": ["[sig-node] Pods"], "LeafNodeText": text, "LeafNodeType": leaf,
            "State": state, "RunTime": 2_000_000_000, "Failure": {"Message": message} if message else None}


REPORT = [{"SpecReports": [
    _spec_report("should run [Conformance]", "passed"),
    _spec_report("should fail A [Conformance]", "failed", "pod pod-ab12c did not start\nmore"),
    _spec_report("should fail B [Conformance]", "timedout", "pod pod-xy34z did not start"),
    _spec_report("not focused", "skipped"),
    _spec_report("skip-listed [Conformance]", "skipped"),
    _spec_report("skips itself [Conformance]", "skipped", "Only supported for providers [gce]"),
    _spec_report("", "passed", leaf="SynchronizedBeforeSuite"),
]}]


def test_counts_only_selected_specs():
    s = summary_mod.summarize(REPORT, skip="skip-listed")
    assert dict(s["counts"]) == {"passed": 1, "failed": 2, "skipped": 2}


def test_failures_of_one_cause_group_together_despite_random_names():
    s = summary_mod.summarize(REPORT)
    assert list(s["by_reason"]) == ["pod <name> did not start"]
    assert len(s["by_reason"]["pod <name> did not start"]) == 2


def test_failed_suite_setup_counts_as_a_failure():
    report = [{"SpecReports": [_spec_report("", "failed", "no schedulable node", leaf="SynchronizedBeforeSuite")]}]
    s = summary_mod.summarize(report)
    assert s["counts"]["failed"] == 1 and s["failures"][0]["name"] == "[SynchronizedBeforeSuite]"


def test_render_has_table_and_escapes_pipes():
    report = [{"SpecReports": [_spec_report("a|b [Conformance]", "failed", "x | y")]}]
    out = summary_mod.render(summary_mod.summarize(report), "v1.37.2")
    assert "| 0 | 1 | 0 | 1 |" in out
    assert "a\\|b" in out and "x \\| y" in out


def test_reason_blanks_uuid_names_and_addresses():
    r = summary_mod.reason("error getting pods dns-test-a73edec3-5b18-48d9-a931-72262d4c6e1d from 10.112.3.4:8080")
    assert r == "error getting pods <name> from <addr>"
