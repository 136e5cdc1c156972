"""`sk8s cluster sleep|wake NAME` (sleep mode: operators/serverlesscluster/power.py)."""
from __future__ import annotations

import json
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
    # Done when the operator took the request (it removes the annotation) and the phase says so:
    # the phase alone may still be the one from before.
    deadline = t0 + args.timeout
    while True:
        got = subprocess.run(kubectl + ["get", f"serverlesscluster/{args.name}", "-o", "json"], capture_output=True,
                             text=True)
        obj = json.loads(got.stdout) if got.returncode == 0 else {}
        pending = ANNOTATION_POWER_REQUEST in ((obj.get("metadata") or {}).get("annotations") or {})
        now = (obj.get("status") or {}).get("phase")
        if not pending and now == phase:
            break
        if time.monotonic() > deadline:
            print(f"cluster {args.name} is not {phase} after {args.timeout:.0f}s (phase {now}"
                  f"{', request not taken yet' if pending else ''}); see `kubectl describe serverlesscluster "
                  f"{args.name}`", file=sys.stderr)
            return 1
        time.sleep(0.2)
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
