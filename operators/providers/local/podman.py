"""Async calls of the podman CLI, with the project's own containers.conf."""
from __future__ import annotations

import asyncio
import errno
import json
import os
from dataclasses import dataclass

from ..errors import ProviderError
from ..sandbox import SandboxRef


@dataclass
class Result:
    rc: int
    out: str
    err: str


class Podman:
    def __init__(self, containers_conf: str, binary: str = "podman"):
        self.binary = binary
        self.env = dict(os.environ, CONTAINERS_CONF=containers_conf)

    async def run(self, *args: str, timeout: float = 120, check: bool = True) -> Result:
        try:
            proc = await asyncio.create_subprocess_exec(
                self.binary, *args, env=self.env, stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        except (OSError, ValueError) as exc:
            raise cannot_run(args, exc) from exc
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
            raise ProviderError(f"podman {args[0]} timed out after {timeout:.0f}s", reason="ProviderTimeout")
        res = Result(proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace"))
        if check and res.rc != 0:
            raise ProviderError(f"podman {' '.join(args[:2])}: {_last_error(res.err)}")
        return res

    async def json(self, *args: str) -> list | dict:
        res = await self.run(*args)
        return json.loads(res.out or "null") or []

    async def stream(self, *args: str) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            self.binary, *args, env=self.env, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)


def cannot_run(args, exc: Exception) -> ProviderError:
    """podman could not even be executed (E2BIG: "Argument list too long", a NUL byte in
    an argument): a failure that names its cause rather than an exception nobody reports."""
    cause = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    final = isinstance(exc, ValueError) or getattr(exc, "errno", None) == errno.E2BIG  # not a passing shortage
    return ProviderError(f"podman {args[0] if args else ''}: cannot run podman: {cause}",
                         reason="RunContainerError", retryable=not final)


def _last_error(stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip() and "syslog" not in ln]
    errors = [ln for ln in lines if ln.startswith("Error")]
    return (errors or lines or ["failed"])[-1]


def scrub_host_paths(message: str, paths: dict[str, str]) -> str:
    """`message` with this host's directories replaced by names: podman's errors reach
    tenants (Events, pod status), and the host's layout is none of their business."""
    for path in sorted(paths, key=len, reverse=True):
        if path and path != "/":
            message = message.replace(path, paths[path])
    return message


async def pod_netns(podman: Podman, ref: SandboxRef) -> str:
    """Path of the sandbox's network namespace (its infra container's), where port-forward
    and probes connect from."""
    infra = (await podman.run("pod", "inspect", "--format={{.InfraContainerID}}", ref.instance_name,
                              check=False)).out.strip()
    path = infra and (await podman.run("container", "inspect", "--format={{.NetworkSettings.SandboxKey}}",
                                       infra, check=False)).out.strip()
    if not path:
        raise ProviderError(f"sandbox {ref.instance_name} has no network namespace")
    return path
