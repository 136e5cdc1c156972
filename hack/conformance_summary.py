#!/usr/bin/env python3
"""Summary of a ginkgo JSON report of e2e.test (hack/conformance.sh): counts of passed,
failed and skipped tests, the failures one line each grouped by test, and the failures
grouped by a normalised first line of their message (the likely shared cause).

    conformance_summary.py report.json [--skip REGEX] [--version V]

Stdlib only: it runs with any python3. The pure functions are unit-tested
(tests/unit/test_conformance_summary.py)."""
from __future__ import annotations

import argparse
import datetime
import json
import re
import sys
from collections import Counter, defaultdict

FAILED = {"failed", "panicked", "timedout", "interrupted", "aborted"}


def specs(report: list[dict]) -> list[dict]:
    """The It specs of every suite report: name, state, run time (s), failure message."""
    out = []
    for suite in report:
        for s in suite.get("SpecReports") or []:
            if s.get("LeafNodeType") != "It":
                if s.get("State") in FAILED:  # a failed BeforeSuite fails everything after it
                    out.append({"name": f"[{s.get('LeafNodeType')}]", "state": s["State"],
                                "seconds": s.get("RunTime", 0) / 1e9,
                                "message": (s.get("Failure") or {}).get("Message", "")})
                continue
            name = " ".join([*(s.get("ContainerHierarchyTexts") or []), s.get("LeafNodeText", "")])
            out.append({"name": name.strip(), "state": s.get("State", "unknown"),
                        "seconds": s.get("RunTime", 0) / 1e9,
                        "message": (s.get("Failure") or {}).get("Message", "")})
    return out


def classify(spec: dict, skip: re.Pattern | None) -> str | None:
    """passed | failed | skipped (at run time, or by the skip list); None: not selected."""
    state = spec["state"]
    if state == "passed":
        return "passed"
    if state in FAILED:
        return "failed"
    if state == "skipped":
        if spec["message"]:  # skipped by the test itself (e2eskipper), with its reason
            return "skipped"
        if skip is not None and skip.search(spec["name"]):
            return "skipped"
        return None  # filtered out by the focus
    return state


def reason(message: str) -> str:
    """A failure message's first meaningful line, with what differs between runs (names with
    random suffixes, numbers, addresses) blanked, so that failures of one cause group."""
    lines = [ln.strip() for ln in message.splitlines() if ln.strip()]
    line = lines[0] if lines else "(no message)"
    line = re.sub(r"\b[a-z0-9-]*[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", "<name>", line)
    line = re.sub(r"\b\d{1,3}(\.\d{1,3}){3}(:\d+)?\b", "<addr>", line)
    line = re.sub(r"\b[a-z0-9]+(-[a-z0-9]+)*-(?=[a-z]*\d)[a-z0-9]{4,5}\b", "<name>", line)
    line = re.sub(r"\b\d+(\.\d+)?\b", "N", line)
    return line[:200]


def summarize(report: list[dict], skip: str | None = None) -> dict:
    pattern = re.compile(skip) if skip else None
    counts: Counter = Counter()
    failures: list[dict] = []
    for s in specs(report):
        c = classify(s, pattern)
        if c is None:
            continue
        counts[c] += 1
        if c == "failed":
            failures.append(s)
    by_reason: dict[str, list[str]] = defaultdict(list)
    for f in failures:
        by_reason[reason(f["message"])].append(f["name"])
    return {"counts": counts, "failures": sorted(failures, key=lambda f: f["name"]),
            "by_reason": dict(sorted(by_reason.items(), key=lambda kv: -len(kv[1])))}


def render(summary: dict, version: str = "") -> str:
    c = summary["counts"]
    total = c["passed"] + c["failed"]
    out = [f"## Conformance summary {version} ({datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC)",
           "", "| passed | failed | skipped | ran |", "|---|---|---|---|",
           f"| {c['passed']} | {c['failed']} | {c['skipped']} | {total} |", ""]
    if summary["failures"]:
        out += ["### Failed tests", "", "| test | first line of the failure |", "|---|---|"]
        for f in summary["failures"]:
            first = reason(f["message"]).replace("|", "\\|")
            out.append(f"| {f['name'].replace('|', chr(92) + '|')} | {first} |")
        out += ["", "### Failures grouped by message", ""]
        for r, names in summary["by_reason"].items():
            out.append(f"- {len(names)} x `{r}`")
            out += [f"  - {n}" for n in names]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("report")
    ap.add_argument("--skip", default="")
    ap.add_argument("--version", default="")
    args = ap.parse_args(argv)
    try:
        with open(args.report) as f:
            report = json.load(f)
    except (OSError, ValueError) as exc:
        print(f"no usable ginkgo report: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(render(summarize(report, args.skip or None), args.version))
    return 0


if __name__ == "__main__":
    sys.exit(main())
