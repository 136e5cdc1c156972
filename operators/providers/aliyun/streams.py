"""The aliyun provider's streaming side: container logs through ECI's DescribeContainerLog.

ECI serves a log as one answer (no stream), so `follow` polls: each round asks for the
lines of the last few seconds with their timestamps and passes on only those after the
last line passed on. `previous` (the run before a restart) is a log ECI does not keep
apart: refused, with a message, rather than answered with the current run's.
`kubectl exec` is ExecContainerCommand (the command a JSON array: data, never a shell
line) and the WebSocket it answers (exec_session). ECI has no way to attach to a
container's own stdio nor to forward a port (a group's address is in the tenant's VPC,
out of the virtual node's reach): `kubectl attach` and `kubectl port-forward` are refused
with a message saying so.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import json
import math
from typing import AsyncIterator

from aliyunsdkeci.request.v20180808.DescribeContainerGroupsRequest import DescribeContainerGroupsRequest
from aliyunsdkeci.request.v20180808.DescribeContainerLogRequest import DescribeContainerLogRequest
from aliyunsdkeci.request.v20180808.ExecContainerCommandRequest import ExecContainerCommandRequest

from ...models.contracts import LABEL_HOME
from ..errors import ProviderError
from ..logopts import ContainerLogOpts, truncated
from ..sandbox import SandboxRef
from ..sessions import StdioSession
from ..streaming import SandboxStreams
from . import exec_session
from .client import AliyunClient, AliyunError
from .eci_status import ref_from_tags

FOLLOW_INTERVAL = 1.0


def split_stamp(line: str) -> tuple[str, str]:
    """("2026-11-30T13:00:00.123456789Z", "text") of a line logged with Timestamps."""
    stamp, _, text = line.partition(" ")
    return stamp, text


def new_lines(content: str, after: str | None, seen_at_after: int) -> tuple[list[str], str | None, int]:
    """The lines of a timestamped answer later than those passed on already: those after
    `after`, and of the lines stamped exactly `after`, all but the `seen_at_after` first.
    RFC 3339 stamps of one width sort as text."""
    out, last, same = [], after, seen_at_after
    count_at_after = 0
    for line in content.splitlines():
        stamp, _ = split_stamp(line)
        if after is not None and stamp < after:
            continue
        if after is not None and stamp == after:
            count_at_after += 1
            if count_at_after <= seen_at_after:
                continue
        out.append(line)
        if stamp == last:
            same += 1
        else:
            last, same = stamp, 1
    return out, last, same


def exec_params(region: str, group_id: str, container: str, command: list[str], *, stdin: bool,
                tty: bool) -> dict[str, str]:
    """ExecContainerCommand's parameters: the command as one JSON array (each argument a JSON
    string, whatever it holds), streamed (Sync false) over the WebSocket."""
    return {"RegionId": region, "ContainerGroupId": group_id, "ContainerName": container,
            "Command": json.dumps(list(command)), "TTY": str(tty).lower(), "Stdin": str(stdin).lower(),
            "Sync": "false"}


class AliyunStreams(SandboxStreams):
    name = "aliyun"

    def __init__(self, client: AliyunClient, home_id: str):
        self.client, self.home_id = client, home_id

    async def _group_id(self, ref: SandboxRef) -> str:
        answer = await self.client.call(DescribeContainerGroupsRequest, {
            "RegionId": self.client.region, "ContainerGroupName": ref.instance_name, "Limit": 20,
            "Tag.1.Key": LABEL_HOME, "Tag.1.Value": self.home_id})
        for group in answer.get("ContainerGroups") or []:
            if ref_from_tags(group.get("Tags") or []) == ref:
                return group["ContainerGroupId"]
        raise ProviderError(f"no container group for {ref.namespace}/{ref.name}", reason="NotFound", retryable=False)

    async def _read(self, group_id: str, container: str, **params) -> str:
        try:
            answer = await self.client.call(DescribeContainerLogRequest, {
                "RegionId": self.client.region, "ContainerGroupId": group_id, "ContainerName": container, **params})
        except AliyunError as err:
            err.retryable = False
            raise
        return answer.get("Content") or ""

    async def open_exec_session(self, ref: SandboxRef, container: str, command: list[str], *,
                                stdin: bool, tty: bool) -> StdioSession:
        group_id = await self._group_id(ref)
        try:
            answer = await self.client.call(ExecContainerCommandRequest, exec_params(
                self.client.region, group_id, container, command, stdin=stdin, tty=tty))
        except AliyunError as err:
            err.retryable = False  # the client is waiting: the cloud's answer now, not later
            raise
        return await exec_session.connect(answer.get("WebSocketUri") or "", tty=tty)

    async def open_attach_session(self, ref: SandboxRef, container: str, *, stdin: bool,
                                  tty: bool) -> StdioSession:
        raise ProviderError("attach: ECI has no API to attach to a container's own stdio "
                            "(ExecContainerCommand runs a new command); use kubectl exec or kubectl logs",
                            reason="NotSupported", retryable=False)

    async def open_port_stream(self, ref: SandboxRef, port: int):
        raise ProviderError("port-forward: ECI has no API to forward a port of a container group, and its "
                            "address is in the tenant's VPC; use a Service", reason="NotSupported",
                            retryable=False)

    def logs(self, ref: SandboxRef, container: str, opts: ContainerLogOpts) -> AsyncIterator[bytes]:
        return truncated(self._logs(ref, container, opts), opts.limit_bytes)

    async def _logs(self, ref: SandboxRef, container: str, opts: ContainerLogOpts) -> AsyncIterator[bytes]:
        if opts.previous:
            raise ProviderError("previous: ECI keeps no log of a container's run before its restart",
                                reason="NotSupported", retryable=False)
        group_id = await self._group_id(ref)
        since = opts.since_seconds
        if opts.since_time is not None:
            since = max(1, math.ceil((dt.datetime.now(dt.timezone.utc) - opts.since_time).total_seconds()))
        if not opts.follow:  # one answer, cut by the cloud as asked
            yield (await self._read(group_id, container, Tail=opts.tail, SinceSeconds=since,
                                    Timestamps=str(opts.timestamps).lower(), LimitBytes=opts.limit_bytes)).encode()
            return
        content = await self._read(group_id, container, Tail=opts.tail, SinceSeconds=since, Timestamps="true")
        lines, last, same = new_lines(content, None, 0)
        yield _render(lines, opts.timestamps)
        while True:
            await asyncio.sleep(FOLLOW_INTERVAL)
            window = math.ceil(FOLLOW_INTERVAL * 3)
            try:
                content = await self._read(group_id, container, SinceSeconds=window, Timestamps="true")
            except AliyunError as err:
                if "NotFound" in err.code:  # the group is gone: the stream ends as a kubelet's does
                    return
                raise
            lines, last, same = new_lines(content, last, same)
            if lines:
                yield _render(lines, opts.timestamps)


def _render(lines: list[str], timestamps: bool) -> bytes:
    if not timestamps:
        lines = [split_stamp(line)[1] for line in lines]
    return "".join(line + "\n" for line in lines).encode()
