"""Lifecycle hooks (postStart, preStop) as the kubelet runs them (pkg/kubelet/lifecycle/handlers.go):
exec in the container, through the runtime as exec probes (the command reaches podman after
`--`, as data); httpGet from inside the pod's network namespace, to the pod itself, through
the prober's request builder and its refusals (prober.py); sleep. The kubelet's messages,
since users read them in the FailedPostStartHook/FailedPreStopHook events.

Unlike a probe, an httpGet hook succeeds on any HTTP response: upstream only fails it when
the request itself fails. The caller bounds a hook's time (preStop: the grace period).
"""
from __future__ import annotations

import asyncio
import json
from typing import Awaitable, Callable

from ....models.podspec import Container, LifecycleHandler, Probe
from .prober import STATUS_FAILURE, ExecFn, PodNetwork, probe

# An exec hook has no timeout upstream; this only stops a wedged `podman exec` from
# holding the container's kubelet loop forever.
EXEC_TIMEOUT = 24 * 3600.0
HTTP_TIMEOUT = 60  # seconds to connect and read the status line of an httpGet hook


def _go_list(words: list[str]) -> str:
    """Go's %v of a []string, as the kubelet's message prints the command."""
    return "[" + " ".join(words) + "]"


async def run(handler: LifecycleHandler, container: Container, pod_ident: str, *, exec_fn: ExecFn,
              network: Callable[[], Awaitable[PodNetwork]]) -> str | None:
    """Run one hook: None when it succeeded, else the kubelet's message."""
    who = f"for Container {json.dumps(container.name)} in Pod {json.dumps(pod_ident)}"
    if handler.exec is not None:
        command = list(handler.exec.command)
        try:
            code, output = await exec_fn(command, EXEC_TIMEOUT)
        except asyncio.TimeoutError:
            code, output = -1, ""
        if code == 0:
            return None
        error = f"command '{' '.join(command)}' exited with {code}: {output}"
        return (f"Exec lifecycle hook ({_go_list(command)}) {who} failed - error: {error}, "
                f"message: {json.dumps(output)}")
    if handler.httpGet is not None:
        ok, message = await probe(Probe(httpGet=handler.httpGet, timeoutSeconds=HTTP_TIMEOUT), container,
                                  await network(), exec_fn)
        if ok or message.startswith(STATUS_FAILURE):
            return None  # any response will do
        return f"HTTP lifecycle hook ({handler.httpGet.path or ''}) {who} failed - error: {message}"
    if handler.sleep is not None:
        await asyncio.sleep(handler.sleep.seconds)
        return None
    return "Cannot run handler: invalid handler"
