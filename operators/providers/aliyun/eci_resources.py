"""A pod's cpu and memory as ECI sizes them (pure).

Each container gets `Cpu` (cores) and `Memory` (GiB) from its limits, else its requests,
"%.3f" as virtual-kubelet's ECI provider writes them. The group's own `Cpu`/`Memory` is
what Kubernetes schedules a pod by: the larger of the containers' sum and the largest init
container (init containers run one at a time, before the containers), rounded up to the
smallest vCPU/memory combination ECI offers in every region. ECI would round up the same
way by itself ("the adjusted resources meet or exceed your specifications", ECI user guide,
"Specify vCPU and memory to create an instance"); doing it here makes the size sent the size
billed, and a pod larger than the largest combination is refused before any call.
A pod that names no cpu and no memory anywhere gets ECI's own default, 2 vCPU and 4 GiB,
written out so that the request says what will run.
"""
from __future__ import annotations

from ...models.contracts import REASON_CONFIG_ERROR
from ...models.podspec import Container, PodSpec
from ...quantity import cpu_cores, memory_bytes
from ..errors import InvalidSpecError

GIB = 2**30

# vCPU -> memory sizes (GiB) supported in every region where ECI is available (ECI user
# guide, "Specify vCPU and memory to create an instance"). Zone-specific sizes are left out:
# a group asking for one fails in the zones without it.
ECI_SIZES: dict[float, tuple[float, ...]] = {
    0.25: (0.5, 1), 0.5: (1, 2), 1: (2, 4, 8), 2: (1, 2, 4, 8, 16), 4: (2, 4, 8, 16, 32),
    8: (4, 8, 16, 32, 64), 12: (12, 24, 48, 96), 16: (16, 32, 64, 128), 24: (24, 48, 96, 192),
    32: (32, 64, 128, 256), 52: (96, 192, 384), 64: (128, 256, 512),
}
DEFAULT_SIZE = (2.0, 4.0)  # ECI's size for a group that names none


def container_size(c: Container) -> tuple[float | None, float | None]:
    """(cores, GiB) of one container: limits first, requests otherwise; None where unset."""
    res = c.resources
    # (not `requests`: tests/unit/test_no_blocking_in_async.py would take it for the library)
    limits, wanted = (res.limits or {}, res.requests or {}) if res else ({}, {})
    try:
        cpu = limits.get("cpu", wanted.get("cpu"))
        mem = limits.get("memory", wanted.get("memory"))
        return (cpu_cores(cpu) if cpu is not None else None,
                memory_bytes(mem) / GIB if mem is not None else None)
    except ValueError as exc:
        raise InvalidSpecError(f"container {c.name}: resources: {exc}", reason=REASON_CONFIG_ERROR) from exc


def fmt(value: float) -> str:
    return f"{value:.3f}"


def group_size(spec: PodSpec) -> tuple[float, float]:
    """(cores, GiB) of the whole group: the Kubernetes pod size rounded up to an ECI size."""
    sizes = [container_size(c) for c in spec.containers]
    init = [container_size(c) for c in spec.initContainers or []]
    cpu = max([sum(s[0] or 0 for s in sizes)] + [s[0] or 0 for s in init])
    mem = max([sum(s[1] or 0 for s in sizes)] + [s[1] or 0 for s in init])
    if cpu == 0 and mem == 0:
        return DEFAULT_SIZE
    return round_up(cpu, mem)


def round_up(cpu: float, mem: float) -> tuple[float, float]:
    """The smallest ECI size with at least `cpu` cores and `mem` GiB: fewest cores first,
    then least memory (cores cost more than memory)."""
    for cores in sorted(ECI_SIZES):
        if cores + 1e-9 < cpu:
            continue
        for gib in ECI_SIZES[cores]:
            if gib + 1e-9 >= mem:
                return float(cores), float(gib)
    raise InvalidSpecError(
        f"the pod needs {cpu:.3f} vCPU and {mem:.3f} GiB: more than the largest ECI size "
        f"({max(ECI_SIZES)} vCPU, {max(ECI_SIZES[max(ECI_SIZES)])} GiB)", reason=REASON_CONFIG_ERROR)
