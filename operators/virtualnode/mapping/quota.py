"""Quota arithmetic of the binder: what a pod requests, and whether it still fits (pure)."""
from __future__ import annotations

import math
from dataclasses import dataclass

from ...quantity import format_cpu, format_memory, parse


@dataclass(frozen=True)
class Resources:
    cpu_millis: int = 0
    memory: int = 0

    def __add__(self, other: "Resources") -> "Resources":
        return Resources(self.cpu_millis + other.cpu_millis, self.memory + other.memory)


def _container_requests(c: dict) -> Resources:
    res = c.get("resources") or {}
    requests, limits = res.get("requests") or {}, res.get("limits") or {}

    def amount(name: str) -> str | int | None:
        # The apiserver defaults requests to limits; do the same for objects that skipped it.
        return requests.get(name, limits.get(name))

    cpu, mem = amount("cpu"), amount("memory")
    try:
        return Resources(math.ceil(parse(cpu) * 1000) if cpu is not None else 0,
                         math.ceil(parse(mem)) if mem is not None else 0)
    except ValueError:
        return Resources()  # the apiserver validated it; an unparsable value counts as nothing


def pod_requests(pod: dict) -> Resources:
    """As the scheduler computes it: the sum over containers, at least the largest init
    container (they run one at a time, before the others), plus the pod overhead."""
    spec = pod.get("spec") or {}
    total = Resources()
    for c in spec.get("containers") or []:
        total += _container_requests(c)
    for c in spec.get("initContainers") or []:
        r = _container_requests(c)
        if c.get("restartPolicy") == "Always":  # a sidecar keeps running alongside the others
            total += r
        else:
            total = Resources(max(total.cpu_millis, r.cpu_millis), max(total.memory, r.memory))
    overhead = spec.get("overhead") or {}
    if overhead:
        total += _container_requests({"resources": {"requests": overhead}})
    return total


@dataclass(frozen=True)
class Capacity:
    pods: int
    cpu_millis: int
    memory: int
    cpu_limited: bool = True
    memory_limited: bool = True


def check_fit(cap: Capacity, used: Resources, used_pods: int, req: Resources) -> str | None:
    """None if the pod fits; otherwise the scheduler-style reason, naming the quota.

    The message leaves out current usage on purpose: it is written to the pod only
    when it changes, and usage changes all the time."""
    problems = []
    if used_pods + 1 > cap.pods:
        problems.append(f"Too many pods (cluster quota maxPods={cap.pods})")
    if cap.cpu_limited and used.cpu_millis + req.cpu_millis > cap.cpu_millis:
        problems.append(f"Insufficient cpu (cluster quota cpu={format_cpu(cap.cpu_millis / 1000)}, "
                        f"pod requests {format_cpu(req.cpu_millis / 1000)})")
    if cap.memory_limited and used.memory + req.memory > cap.memory:
        problems.append(f"Insufficient memory (cluster quota memory={format_memory(cap.memory)}, "
                        f"pod requests {format_memory(req.memory)})")
    if not problems:
        return None
    return "0/1 nodes are available: " + ", ".join(f"1 {p}" for p in problems) + "."


def is_terminal(pod: dict) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")
