"""The local provider's streaming side (streaming.SandboxStreams): `podman logs`, `podman
exec` and `podman attach` processes, and connections made inside the pod's network
namespace. It needs only podman, never the lifecycle side's networks, VPCs or kubelets.

Every log option is honoured: podman's own for follow, tail, timestamps and since; the
byte limit by cutting the stream; `previous` reads the run kept aside by the kubelet.
"""
from __future__ import annotations

import asyncio
import datetime as dt
from typing import AsyncIterator

from ..logopts import ContainerLogOpts, truncated
from ..sandbox import SandboxRef
from ..sessions import StdioSession
from ..streaming import SandboxStreams
from . import netns
from .podman import Podman, pod_netns
from .spec import container_name, previous_container_name
from .stdio import attach_args, exec_args, open_session

_CHUNK = 65536


def logs_args(name: str, opts: ContainerLogOpts) -> list[str]:
    """`podman logs` arguments for the options (the container name is data, after `--`)."""
    args = ["logs"]
    if opts.follow:
        args.append("--follow")
    if opts.tail is not None:
        args.append(f"--tail={opts.tail}")
    if opts.timestamps:
        args.append("--timestamps")  # RFC 3339 with nanoseconds, as the kubelet's
    if opts.since_seconds is not None:
        args.append(f"--since={opts.since_seconds}s")  # podman: a duration back from now
    if opts.since_time is not None:
        since = opts.since_time.astimezone(dt.timezone.utc)
        args.append(f"--since={since.strftime('%Y-%m-%dT%H:%M:%S.%f')}Z")
    return args + ["--", name]


class LocalStreams(SandboxStreams):
    name = "local"

    def __init__(self, *, containers_conf: str):
        self.podman = Podman(containers_conf)

    def logs(self, ref: SandboxRef, container: str, opts: ContainerLogOpts) -> AsyncIterator[bytes]:
        name = previous_container_name(ref, container) if opts.previous else container_name(ref, container)
        return truncated(self._podman_logs(logs_args(name, opts)), opts.limit_bytes)

    async def _podman_logs(self, args: list[str]) -> AsyncIterator[bytes]:
        proc = await asyncio.create_subprocess_exec(
            self.podman.binary, *args, env=self.podman.env, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT, stdin=asyncio.subprocess.DEVNULL)
        try:
            assert proc.stdout
            while chunk := await proc.stdout.read(_CHUNK):
                yield chunk
        finally:
            if proc.returncode is None:
                proc.kill()
            await proc.wait()

    async def open_exec_session(self, ref: SandboxRef, container: str, command: list[str], *,
                                stdin: bool, tty: bool) -> StdioSession:
        return await open_session(self.podman.binary, self.podman.env,
                                  exec_args(container_name(ref, container), command, stdin=stdin, tty=tty),
                                  stdin=stdin, tty=tty)

    async def open_attach_session(self, ref: SandboxRef, container: str, *, stdin: bool,
                                  tty: bool) -> StdioSession:
        return await open_session(self.podman.binary, self.podman.env,
                                  attach_args(container_name(ref, container), stdin=stdin), stdin=stdin, tty=tty)

    async def open_port_stream(self, ref: SandboxRef, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await netns.open_connection(await pod_netns(self.podman, ref), port)
