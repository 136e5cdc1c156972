"""The emulator's HTTP server: RPC-style OpenAPI on GET and POST at "/", parameters from
the query and the form body, dispatched by (Version, Action) to a product module.

A product module (ECI today; ECS, SLB, PVTZ and VPC later) is an object with `version`,
`product`, `host_id`, `actions()` -> {Action: coroutine(Call) -> dict}, `inventory()` ->
{kind: [resource, ...]}, and `start()` / `close()` coroutines for its background work; it
may serve more with `routes()` -> [(method, path, handler)] (ECI's exec WebSocket).

Every request is authenticated first (signature.Verifier), then faults are drawn
(faults.Faults), then the action runs. Errors are answered in the cloud's shape with its
HTTP status. Control endpoints, unauthenticated (bind the emulator to loopback):
`GET /_emulator/inventory` (every resource held, by kind), `GET /_emulator/calls` (calls
received by action, and errors by code; `DELETE` resets them), `GET|POST /_emulator/faults`
(the fault settings, changed by a JSON object), `POST /_emulator/keys` (access keys
disabled or enabled again, as in the RAM console), `POST /_emulator/accounts` (an account
and its keys added: accounts.py; the starting keys are the account "default")."""
from __future__ import annotations

import asyncio
import collections
import logging
import time
import uuid
from typing import Any, Callable, Iterable, Mapping

from aiohttp import web

from . import errors, pvtz, slb
from .accounts import Accounts
from .backends import GroupBackend, MemoryBackend
from .eci import Call, EciService
from .errors import ApiError
from .faults import FaultConfig, Faults
from .networking import networking
from .params import business
from .signature import Verifier

log = logging.getLogger(__name__)
ACTION_NOT_FOUND = ApiError(404, "InvalidAction.NotFound", "Specified api is not found, please check your url and method.")


class Emulator:
    def __init__(self, credentials: Mapping[str, str], services: Iterable[Any], faults: Faults | None = None,
                 clock: Callable[[], float] = time.time):
        self.verifier = Verifier(credentials, clock)
        self.accounts = Accounts(credentials, self.verifier.credentials)
        self.faults = faults or Faults()
        self.services = list(services)
        self.routes = {(s.version, action): (s, handler)
                       for s in self.services for action, handler in s.actions().items()}
        self.calls: collections.Counter[str] = collections.Counter()
        self.errors: collections.Counter[str] = collections.Counter()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("GET", "/", self.rpc)
        app.router.add_route("POST", "/", self.rpc)
        app.router.add_get("/_emulator/inventory", self.inventory)
        app.router.add_get("/_emulator/calls", self.call_counts)
        app.router.add_delete("/_emulator/calls", self.reset_calls)
        app.router.add_get("/_emulator/faults", self.get_faults)
        app.router.add_post("/_emulator/faults", self.set_faults)
        app.router.add_post("/_emulator/keys", self.set_keys)
        app.router.add_post("/_emulator/accounts", self.add_account)
        for s in self.services:  # what a product serves besides its API (ECI's exec WebSocket)
            for method, path, handler in getattr(s, "routes", list)():
                app.router.add_route(method, path, handler)
        app.on_startup.append(self._start)
        app.on_cleanup.append(self._close)
        return app

    async def _start(self, _app: web.Application) -> None:
        for s in self.services:
            await s.start()

    async def _close(self, _app: web.Application) -> None:
        for s in self.services:
            await s.close()

    async def rpc(self, request: web.Request) -> web.StreamResponse:
        params = dict(request.query)
        if request.method == "POST":
            form = await request.post()
            params.update({k: v for k, v in form.items() if isinstance(v, str)})
        request_id = str(uuid.uuid4()).upper()
        action, version = params.get("Action", ""), params.get("Version", "")
        service, handler = self.routes.get((version, action), (None, None))
        self.calls[action or "(none)"] += 1
        drop = False
        try:
            key_id = self.verifier.verify(request.method, params)
            if handler is None:
                raise self._unrouted(action, version)
            decision = self.faults.decide()
            if decision.latency:
                await asyncio.sleep(decision.latency)
            if decision.error is not None:
                raise decision.error
            result = await handler(Call(business(params), params.get("RegionId", ""), key_id, request.host,
                                        self.accounts.account(key_id)))
            drop = decision.drop
        except ApiError as e:
            self.errors[e.code] += 1
            host = service.host_id if service else request.host
            return web.json_response(errors.body(e, request_id, host, service.product if service else ""),
                                     status=e.status)
        if drop:
            return self._dropped(request)
        return web.json_response({"RequestId": request_id, **result})

    def _unrouted(self, action: str, version: str) -> ApiError:
        if not action:
            return errors.missing("Action")
        if version not in {s.version for s in self.services}:
            return ApiError(400, "InvalidVersion", "Specified parameter Version is not valid.")
        return ACTION_NOT_FOUND

    @staticmethod
    def _dropped(request: web.Request) -> web.StreamResponse:
        """The call was applied; its answer is lost: the connection closes with nothing sent."""
        if request.transport is not None:
            request.transport.abort()
        raise asyncio.CancelledError  # aiohttp's way for a handler to end with no response

    async def inventory(self, _request: web.Request) -> web.Response:
        out: dict[str, list] = {}
        for s in self.services:
            for kind, items in s.inventory().items():
                out.setdefault(kind, []).extend(items)
        return web.json_response(out)

    async def call_counts(self, _request: web.Request) -> web.Response:
        return web.json_response({"calls": dict(self.calls), "total": sum(self.calls.values()),
                                  "errors": dict(self.errors), "faults": dict(self.faults.injected)})

    async def reset_calls(self, _request: web.Request) -> web.Response:
        self.calls.clear()
        self.errors.clear()
        self.faults.injected.clear()
        return web.json_response({})

    async def set_keys(self, request: web.Request) -> web.Response:
        """{"disable": [AccessKeyId...], "enable": [...]}: a key switched off answers
        InvalidAccessKeyId.Inactive, as a key disabled in the RAM console does."""
        try:
            changes = await request.json()
            unknown = [k for k in (changes.get("disable") or []) + (changes.get("enable") or [])
                       if k not in self.verifier.credentials]
            if unknown:
                raise ValueError(f"unknown access keys: {unknown}")
        except (ValueError, AttributeError, TypeError) as e:
            return web.json_response({"error": str(e)}, status=400)
        self.verifier.disabled |= set(changes.get("disable") or [])
        self.verifier.disabled -= set(changes.get("enable") or [])
        return web.json_response({"disabled": sorted(self.verifier.disabled)})

    async def add_account(self, request: web.Request) -> web.Response:
        """{"name": NAME, "keys": {ACCESS_KEY_ID: SECRET}}: the account made, or given more
        keys; a key already known to any account is refused (400)."""
        try:
            self.accounts.add(await request.json())
        except ValueError as e:  # a body that is no JSON is a ValueError too
            return web.json_response({"error": str(e)}, status=400)
        return web.json_response({})

    async def get_faults(self, _request: web.Request) -> web.Response:
        return web.json_response(self.faults.describe())

    async def set_faults(self, request: web.Request) -> web.Response:
        try:
            changes = await request.json()
            if not isinstance(changes, dict):
                raise ValueError("a JSON object of fault settings is expected")
            self.faults.update(changes)
        except ValueError as e:
            return web.json_response({"error": str(e)}, status=400)
        return web.json_response(self.faults.describe())


def parse_credentials(pairs: Iterable[str]) -> dict[str, str]:
    """["id:secret", ...] (a CLI's repeated option) -> {id: secret}."""
    out = {}
    for pair in pairs:
        key_id, sep, secret = pair.partition(":")
        if not sep or not key_id or not secret:
            raise ValueError("a credential is ACCESS_KEY_ID:SECRET")
        out[key_id] = secret
    return out


def build(credentials: Mapping[str, str], *, backend: GroupBackend | None = None,
          faults: FaultConfig | None = None, schedule_delay: float = 0.5, tick: float = 0.5,
          settle: float = 0.5) -> Emulator:
    """Every product, wired as one cloud: ECI placing groups in the VPC module's VSwitches,
    SLB and PVTZ placing by its directory. `settle`: seconds a new VPC or VSwitch is Pending."""
    eci = EciService(backend or MemoryBackend(), schedule_delay=schedule_delay, tick=tick)
    vpc, ecs = networking(eci, eci.backend, settle=settle)  # vpc: the directory (local_key, vswitch) SLB and PVTZ place by
    lbs = slb.for_groups(eci, vpc)
    # A VSwitch holding an SLB is not deleted (DependencyViolation), as the cloud refuses it.
    vpc.users.append(lambda vsw_id: "LoadBalancer" if lbs.in_vswitch(vsw_id) else None)
    return Emulator(credentials, [eci, vpc, ecs, pvtz.for_groups(eci.backend, vpc), lbs], Faults(faults))


async def serve(emulator: Emulator, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Start serving; the runner (cleanup() stops it) and the port bound (port 0: a free one)."""
    runner = web.AppRunner(emulator.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    return runner, runner.addresses[0][1]


def run(host: str, port: int, credentials: Mapping[str, str], *, backend: GroupBackend | None = None,
        faults: FaultConfig | None = None, schedule_delay: float = 0.5, tick: float = 0.5,
        ready: Callable[[int], None] | None = None) -> None:
    """Serve until interrupted (a CLI subcommand's body); `ready(port)` once listening."""

    async def main() -> None:
        emulator = build(credentials, backend=backend, faults=faults, schedule_delay=schedule_delay, tick=tick)
        runner, bound = await serve(emulator, host, port)
        log.info("Alibaba Cloud OpenAPI emulator on http://%s:%d", host, bound)
        if ready is not None:
            ready(bound)
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
