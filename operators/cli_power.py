"""`sk8s cluster sleep|wake NAME` (sleep mode: operators/serverlesscluster/power.py)."""
from __future__ import annotations

import subprocess
import sys
import time

from .config import layout


def cmd_cluster_power(args) -> int:
    """`sk8s cluster sleep|wake NAME`: ask the operator (an annotation it acts on and removes)
    and wait for the phase that follows."""
    from .embedded.binaries import ensure_binaries
    from .models.contracts import ANNOTATION_POWER_REQUEST  # here: the models cost every command 0.3 s
    lay = layout()
    kubectl = [str(ensure_binaries(quiet=True) / "kubectl"), f"--kubeconfig={lay.kubeconfig}", "-n", args.namespace]
    want = args.cluster_cmd
    t0 = time.monotonic()
    proc = subprocess.run(kubectl + ["annotate", "--overwrite", f"serverlesscluster/{args.name}",
                                     f"{ANNOTATION_POWER_REQUEST}={want}"], capture_output=True, text=True)
    if proc.returncode != 0:
        print(proc.stderr.strip(), file=sys.stderr)
        return 1
    phase = "Sleeping" if want == "sleep" else "Ready"
    wait = subprocess.run(kubectl + ["wait", f"--for=jsonpath={{.status.phase}}={phase}",
                                     f"--timeout={int(args.timeout)}s", f"serverlesscluster/{args.name}"],
                          capture_output=True, text=True)
    if wait.returncode != 0:
        print(f"cluster {args.name} is not {phase}: {wait.stderr.strip()}", file=sys.stderr)
        return 1
    print(f"cluster {args.name} is {phase} ({time.monotonic() - t0:.2f}s)")
    return 0


def add_power_parsers(clsub) -> None:
    for verb, what in (("sleep", "stop a cluster's control plane now (its first request wakes it)"),
                       ("wake", "start a sleeping cluster's control plane now")):
        pw = clsub.add_parser(verb, help=what)
        pw.add_argument("name")
        pw.add_argument("-n", "--namespace", default="default")
        pw.add_argument("--timeout", type=float, default=60)
        pw.set_defaults(func=cmd_cluster_power)
