"""Elastic Container Instance (ECI, API version 2018-08-08): the subset sk8s's provider
calls, with the cloud's semantics.

- CreateContainerGroup validates the required parameters and answers at once with an id;
  the group then moves on its own: Scheduling (`schedule_delay`), Pending (the backend
  starts it), Running, and Succeeded / Failed as its RestartPolicy and its containers'
  exits decide. A ClientToken makes a create idempotent: the same token with the same
  parameters answers the first id, with other parameters IdempotentParameterMismatch.
- DescribeContainerGroups filters by ContainerGroupIds (a JSON array), ContainerGroupName,
  Status and Tag.N.Key/Value, pages by Limit (default 10, at most 20) and NextToken, and
  counts all matches in TotalCount. Groups in a final state stay listed for `retention`
  seconds (1 h, as the cloud keeps them).
- DeleteContainerGroup removes a group at once (it is no longer listed) and has the
  backend clean up behind. An unknown id is HTTP 404 InvalidParameter.NotFound: the ECI
  documentation lists no code for it, and the public references checked
  (virtual-kubelet/alibabacloud-eci) never look at one; clients should treat it as gone.
- DescribeContainerLog reads a container's output from the backend.
- ExecContainerCommand runs a command in a running container (eci_exec): its output in
  the answer (Sync), or a one-time WebSocketUri this service serves itself (`routes()`).
- Accounts (accounts.py): a call lists and names its own account's groups only; another
  account's id is InvalidParameter.NotFound, as an unknown one."""
from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import secrets
import string
import time
from dataclasses import dataclass, replace
from typing import Any, Awaitable, Callable

from aiohttp import web

from ...providers.sessions import StdioSession
from . import eci_exec
from . import params as p
from .accounts import DEFAULT
from .backends import GroupBackend, LogOptions
from .eci_groups import FINAL, GroupRecord, group_status, render
from .eci_update import apply_update
from .errors import ApiError, invalid, missing
from .resources import ClientTokens, owned

VERSION = "2018-08-08"
PRODUCT = "Eci"
HOST_ID = "eci.aliyuncs.com"
RETENTION = 3600.0
NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,126}[a-z0-9])$")
RESTART_POLICIES = ("Always", "Never", "OnFailure")
MAX_TAGS = 20
EVENTS = {
    "Pending": ("Normal", "Scheduled", "Successfully assigned the container group to a node."),
    "Running": ("Normal", "Started", "Started the containers."),
    "Succeeded": ("Normal", "Completed", "All containers exited successfully."),
    "Failed": ("Warning", "Failed", "A container exited with an error."),
    "Restarting": ("Warning", "BackOff", "Restarting a failed container."),
}
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Call:
    """One authenticated request, as an action sees it."""

    params: dict[str, str]  # the API's own parameters, flat (common ones removed)
    region: str
    access_key_id: str
    host: str = ""  # the Host the request was sent to: where URIs in answers point
    account: str = DEFAULT  # the account of the key (accounts.py): the resources the call sees


def not_found(group_id: str) -> ApiError:
    return ApiError(404, "InvalidParameter.NotFound", f"The specified ContainerGroupId {group_id} is not found.")


def new_id() -> str:
    alphabet = string.ascii_lowercase + string.digits
    return "eci-" + "".join(secrets.choice(alphabet) for _ in range(20))


def validate_create(group: dict[str, Any]) -> None:
    for name in ("SecurityGroupId", "VSwitchId", "ContainerGroupName"):
        if not p.text(group, name):
            raise missing(name)
    if not NAME.match(group["ContainerGroupName"]):
        raise invalid("ContainerGroupName", "2 to 128 lowercase letters, digits and hyphens, "
                      "starting and ending with a letter or digit.")
    if (group.get("RestartPolicy") or "Always") not in RESTART_POLICIES:
        raise invalid("RestartPolicy", f"One of {', '.join(RESTART_POLICIES)}.")
    p.number(group, "Cpu"), p.number(group, "Memory")
    if not group.get("Container"):
        raise missing("Container.1.Image")
    names = set()
    for kind in ("InitContainer", "Container"):
        for i, c in enumerate(group.get(kind, []), 1):
            for field in ("Name", "Image"):
                if not isinstance(c, dict) or not p.text(c, field):
                    raise missing(f"{kind}.{i}.{field}")
            if c["Name"] in names:
                raise invalid(f"{kind}.{i}.Name", "Container names must be unique in a group.")
            names.add(c["Name"])
            p.number(c, "Cpu"), p.number(c, "Memory")
            for j, port in enumerate(c.get("Port", []), 1):
                p.integer(port, "Port", low=1, high=65535)
    tags = group.get("Tag", [])
    if len(tags) > MAX_TAGS or any(not isinstance(t, dict) or not t.get("Key") for t in tags):
        raise invalid("Tag", f"At most {MAX_TAGS} tags, each with a Key.")
    for i, t in enumerate(tags, 1):
        for field in ("Key", "Value"):
            if not _tag_text_ok(t.get(field, "")):
                raise invalid(f"Tag.{i}.{field}", "At most 128 characters, not starting with aliyun or acs:, "
                              "without http:// or https://.")


def _tag_text_ok(value: str) -> bool:
    """The cloud's rule for tag keys and values."""
    return (len(value) <= 128 and not value.startswith(("aliyun", "acs:"))
            and "http://" not in value and "https://" not in value)


def _tagged(record: GroupRecord, wanted: dict[str, str]) -> bool:
    """A Tag.N filter: the key, and the value when one is given."""
    return any(t["Key"] == wanted.get("Key") and ("Value" not in wanted or t["Value"] == wanted["Value"])
               for t in record.tags)


def _address(group: dict[str, Any], n: int) -> str:
    """A made-up IntranetIp: the n-th of the group's VSwitch when it is the emulator's."""
    local = group.get("LocalVpc")
    if local:
        net = ipaddress.ip_network(local["VSwitchCidr"])
        return str(net[2 + (n - 1) % max(net.num_addresses - 4, 1)])
    return f"192.168.{n // 250 % 250}.{n % 250 + 2}"


class EciService:
    version = VERSION
    product = PRODUCT
    host_id = HOST_ID

    def __init__(self, backend: GroupBackend, *, schedule_delay: float = 0.5, tick: float = 0.5,
                 retention: float = RETENTION, clock: Callable[[], float] = time.time):
        self.backend = backend
        self.schedule_delay = schedule_delay
        self.tick = tick
        self.retention = retention
        self.clock = clock
        self.groups: dict[str, GroupRecord] = {}
        self.tokens = ClientTokens()
        self._seq = 0
        self._ips = 0
        self._tasks: dict[str, asyncio.Task] = {}  # starts and deletes under way, by group id
        self._loop_task: asyncio.Task | None = None
        self.network: Any = None  # networking.Placement: groups in the emulator's own VSwitches
        self.tickets = eci_exec.Tickets()

    def actions(self) -> dict[str, Callable[[Call], Awaitable[dict[str, Any]]]]:
        return {"CreateContainerGroup": self.create, "DescribeContainerGroups": self.describe,
                "DeleteContainerGroup": self.delete, "DescribeContainerLog": self.logs,
                "ExecContainerCommand": self.exec, "UpdateContainerGroup": self.update}

    def routes(self) -> list[tuple[str, str, Callable[[web.Request], Awaitable[web.StreamResponse]]]]:
        """What the service serves besides the API: the exec WebSocket of ExecContainerCommand."""
        return [("GET", eci_exec.WS_PATH, self._serve_exec), ("GET", eci_exec.HTTP_PATH, eci_exec.terminal)]

    async def _serve_exec(self, request: web.Request) -> web.StreamResponse:
        return await eci_exec.serve(request, self.tickets, self._open_exec)

    def inventory(self) -> dict[str, list[dict[str, Any]]]:
        return {"ContainerGroup": [
            {"ContainerGroupId": r.id, "ContainerGroupName": r.name, "Status": r.status,
             "RegionId": r.group.get("RegionId"), "Tags": r.tags, "Account": r.account}
            for r in sorted(self.groups.values(), key=lambda r: r.seq)]}

    # -- actions -------------------------------------------------------------------------

    async def create(self, call: Call) -> dict[str, Any]:
        earlier = self.tokens.seen("CreateContainerGroup", call.account, call.region, call.params)
        if earlier is not None:
            return {"ContainerGroupId": earlier}
        group = p.unflatten({k: v for k, v in call.params.items() if k != "ClientToken"})
        validate_create(group)
        if self.network is not None:
            self.network.place(group, call.account)  # an emulator VSwitch: its VPC, its security group
        self.backend.admit(group)  # what the backend cannot run is refused now, by name
        record = self._add(group, call.region, call.account)
        self.tokens.remember("CreateContainerGroup", call.account, call.region, call.params, record.id)
        return {"ContainerGroupId": record.id}

    def _add(self, group: dict[str, Any], region: str, account: str) -> GroupRecord:
        gid = new_id()
        self._seq += 1
        self._ips += 1
        group.update({"ContainerGroupId": gid, "RegionId": region})
        own = self.backend.intranet_ip(group)
        ip = own if own is not None else _address(group, self._ips)
        now = self.clock()
        record = GroupRecord(id=gid, seq=self._seq, group=group, created=now, ip=ip, moved_at=now, account=account)
        self.groups[gid] = record
        return record

    async def describe(self, call: Call) -> dict[str, Any]:
        f = call.params
        ids = p.json_list(f, "ContainerGroupIds", limit=20)
        name, status = p.text(f, "ContainerGroupName"), p.text(f, "Status")
        tags = p.unflatten({k: v for k, v in f.items() if k.startswith("Tag.")}).get("Tag", [])
        limit = p.integer(f, "Limit", 10, low=1, high=20)
        after = self._cursor(p.text(f, "NextToken"))
        wanted = set(ids) if ids is not None else None
        matches = sorted((r for r in self.groups.values()
                          if r.group.get("RegionId") == call.region and r.account == call.account
                          and (wanted is None or r.id in wanted)
                          and (name is None or r.name == name)
                          and (status is None or r.status == status)
                          and all(_tagged(r, t) for t in tags)),
                         key=lambda r: r.seq)
        rest = [r for r in matches if r.seq > after]
        page = rest[:limit]
        return {"ContainerGroups": [render(r) for r in page], "TotalCount": len(matches),
                "NextToken": str(page[-1].seq) if len(rest) > limit else ""}

    @staticmethod
    def _cursor(token: str | None) -> int:
        if token is None:
            return 0
        if not token.isdigit():
            raise invalid("NextToken")
        return int(token)

    def _group(self, gid: str, account: str) -> GroupRecord:
        """The account's group; another account's is one that does not exist."""
        record = owned(self.groups, gid, account)
        if record is None:
            raise not_found(gid)
        return record

    async def delete(self, call: Call) -> dict[str, Any]:
        gid = p.text(call.params, "ContainerGroupId")
        if gid is None:
            raise missing("ContainerGroupId")
        record = self.groups.pop(self._group(gid, call.account).id)
        starting = self._tasks.pop(gid, None)
        self._tasks[gid] = asyncio.create_task(self._clean_up(record, starting))
        return {}

    async def _clean_up(self, record: GroupRecord, starting: asyncio.Task | None) -> None:
        if starting is not None and not starting.done():
            starting.cancel()
            await asyncio.gather(starting, return_exceptions=True)
        try:
            await self.backend.delete(record.group)
        except Exception:  # the group is gone from the API either way; the backend says why
            log.exception("backend could not delete %s", record.id)
        finally:
            if self._tasks.get(record.id) is asyncio.current_task():
                del self._tasks[record.id]

    async def update(self, call: Call) -> dict[str, Any]:
        """UpdateContainerGroup (eci_update): the group Updating while the backend applies the
        change (new images restart their containers, new files are written), then Running as
        its containers say. A ClientToken seen before answers again without a second update."""
        gid = p.text(call.params, "ContainerGroupId") or ""
        if self.tokens.seen("UpdateContainerGroup", call.account, call.region, call.params) is not None:
            return {}
        if not gid:
            raise missing("ContainerGroupId")
        record = self._group(gid, call.account)
        group, images, volumes = apply_update(record.group, record.status, call.params)
        self.backend.admit(group)
        self.tokens.remember("UpdateContainerGroup", call.account, call.region, call.params, gid)
        record.group = group
        self._move(record, "Updating", self.clock())
        self._tasks[gid] = asyncio.create_task(self._apply(record, images, volumes))
        return {}

    async def _apply(self, record: GroupRecord, images: list[str], volumes: list[str]) -> None:
        try:
            await self.backend.update(record.group, images, volumes)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # the containers' states say the rest
            log.warning("backend could not update %s: %s", record.id, e)
            record.event(self.clock(), "Warning", "UpdateFailed", str(e)[:500])
        finally:
            if self._tasks.get(record.id) is asyncio.current_task():
                del self._tasks[record.id]

    async def logs(self, call: Call) -> dict[str, Any]:
        gid = p.text(call.params, "ContainerGroupId")
        container = p.text(call.params, "ContainerName")
        if gid is None:
            raise missing("ContainerGroupId")
        if container is None:
            raise missing("ContainerName")
        record = self._group(gid, call.account)
        names = {c.get("Name") for kind in ("Container", "InitContainer") for c in record.group.get(kind, [])}
        if container not in names:
            raise invalid("ContainerName", f"The group has no container {container}.")
        opts = LogOptions(tail=p.integer(call.params, "Tail", low=0),
                          since_seconds=p.integer(call.params, "SinceSeconds", low=0),
                          limit_bytes=p.integer(call.params, "LimitBytes", low=0),
                          timestamps=p.boolean(call.params, "Timestamps"))
        content = "" if record.status == "Scheduling" else await self.backend.logs(record.group, container, opts)
        return {"ContainerName": container, "Content": content}

    async def exec(self, call: Call) -> dict[str, Any]:
        """ExecContainerCommand (see eci_exec): its output at once with Sync, else a WebSocket."""
        request = eci_exec.parse(call.params, call.account)
        self._running_container(request)
        if request.sync:  # no input: there is no socket to send it on
            request = replace(request, stdin=False)
            return {"SyncResponse": await eci_exec.run_sync(await self._open_exec(request))}
        return eci_exec.answer(call.host, self.tickets.issue(request))

    def _running_container(self, request: eci_exec.ExecRequest) -> GroupRecord:
        record = self._group(request.group_id, request.account)
        if request.container not in {c.get("Name") for c in record.group.get("Container", [])}:
            raise invalid("ContainerName", f"The group has no container {request.container}.")
        state = record.statuses.get(request.container)
        if record.status != "Running" or state is None or state.current.state != "Running":
            raise eci_exec.incorrect_status(request.container)
        return record

    async def _open_exec(self, request: eci_exec.ExecRequest) -> StdioSession:
        """The command started in the container, checked again: the group may have moved on
        since the WebSocketUri was given."""
        record = self._running_container(request)
        return await self.backend.exec(record.group, request.container, request.command,
                                       stdin=request.stdin, tty=request.tty)

    # -- the groups' own progress --------------------------------------------------------

    async def start(self) -> None:
        self._loop_task = asyncio.create_task(self._run())

    async def close(self) -> None:
        tasks = [t for t in (self._loop_task, *self._tasks.values()) if t is not None]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            try:
                await self.step()
            except Exception:  # one bad step must not stop every group's progress
                log.exception("ECI emulator step failed")
            await asyncio.sleep(self.tick)

    async def step(self) -> None:
        """Move every group one step: expire old final ones, schedule, observe."""
        now = self.clock()
        observed = []
        for record in list(self.groups.values()):
            if record.status in FINAL:
                if now - (record.final_at or now) > self.retention:
                    del self.groups[record.id]
            elif record.status == "Scheduling":
                if now - record.created >= self.schedule_delay:
                    self._schedule(record, now)
            elif record.id not in self._tasks:  # not while its start is under way
                observed.append(record)
        results = await asyncio.gather(*(self.backend.state(r.group) for r in observed), return_exceptions=True)
        for record, statuses in zip(observed, results):
            if isinstance(statuses, BaseException):
                log.warning("backend state of %s: %s", record.id, statuses)
            elif self.groups.get(record.id) is record:  # not deleted meanwhile
                record.statuses = statuses
                self._address(record)
                self._move(record, group_status(record.group, statuses), self.clock())

    def _schedule(self, record: GroupRecord, now: float) -> None:
        self._move(record, "Pending", now)
        self._tasks[record.id] = asyncio.create_task(self._start(record))

    async def _start(self, record: GroupRecord) -> None:
        try:
            ip = await self.backend.start(record.group)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # the cloud's answer to a group it cannot place
            self._move(record, "ScheduleFailed", self.clock(), ("Warning", "ScheduleFailed", str(e)[:500]))
        else:
            if ip:
                record.ip = ip
            self._address(record)
        finally:
            if self._tasks.get(record.id) is asyncio.current_task():
                del self._tasks[record.id]

    def _address(self, record: GroupRecord) -> None:
        """The backend's address for the group, once it knows one (a sandbox's pod exists)."""
        own = self.backend.intranet_ip(record.group)
        if own:
            record.ip = own

    def _move(self, record: GroupRecord, status: str, now: float,
              event: tuple[str, str, str] | None = None) -> None:
        if status == record.status:
            return
        record.status, record.moved_at = status, now
        if status in FINAL:
            record.final_at = now
        kind, reason, message = event or EVENTS.get(status, ("Normal", status, f"The container group is {status}."))
        record.event(now, kind, reason, message)
