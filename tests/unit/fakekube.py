"""An in-memory stand-in for KubeClient (operators/kubeclient/client.py), as client-go's
fake clientset is for controllers: the subset of the API the virtual node's controllers
use, with the apiserver's semantics they rely on.

- Objects live at REST paths (/api/v1/namespaces/ns/pods/name, /apis/g/v/...); every
  write bumps one resourceVersion counter and is recorded as a watch event.
- get/get_or_none, create (409 AlreadyExists), patch (merge or strategic merge; a
  metadata.resourceVersion in the body is a precondition: 409 Conflict when stale), delete
  (uid precondition: 409; missing: 404; a bound pod with a grace period, or an object with
  finalizers, is only marked deleting, as the apiserver does).
- Subresources: pods/binding (sets spec.nodeName, 409 if bound), */status (only the
  status changes; a write to the object itself leaves status alone) and
  serviceaccounts/token (a TokenRequest: 404 without the ServiceAccount, else a new token
  `token-<n>` that expires expirationSeconds from now; requests kept in `token_requests`).
- list_all returns items and the list's resourceVersion; watch yields the events after a
  resourceVersion, then waits for new ones. `compact()` forgets the history, so a watch
  resuming from an older version gets 410 Gone; `end_watches()` closes open watches (a
  server restart or timeout) so that informers reconnect.
- Equality label selectors and fieldSelectors (dotted paths) filter lists and watches.
"""
from __future__ import annotations

import asyncio
import copy
import itertools
import re
from datetime import datetime, timezone

from operators.kubeclient.client import MERGE, STRATEGIC, ApiError

# Lists that a strategic merge patch merges by key (the subset of the API's patchMergeKeys we use).
STRATEGIC_KEYS = {"conditions": "type", "containers": "name", "initContainers": "name", "ports": "containerPort"}
HAS_STATUS = {"pods", "services", "sandboxpods", "servicelbs", "privatezones", "nodes"}
_PATH = re.compile(r"^/(?:api/(?P<core>v1)|apis/(?P<group>[^/]+)/(?P<version>[^/]+))"
                   r"(?:/namespaces/(?P<ns>[^/]+))?/(?P<plural>[^/]+)(?:/(?P<name>[^/]+))?(?:/(?P<sub>[^/]+))?$")


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def merge_patch(target, patch):
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


def strategic_patch(target, patch, key: str | None = None):
    """A strategic merge patch, for the lists in STRATEGIC_KEYS; otherwise a merge patch."""
    if isinstance(patch, list) and key in STRATEGIC_KEYS and isinstance(target, list):
        mk = STRATEGIC_KEYS[key]
        out = [copy.deepcopy(x) for x in target]
        for item in patch:
            i = next((n for n, x in enumerate(out) if x.get(mk) == item.get(mk)), None)
            if i is None:
                out.append(copy.deepcopy(item))
            else:
                out[i] = strategic_patch(out[i], item)
        return out
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = strategic_patch(out.get(k), v, k)
    return out


def _field(obj: dict, dotted: str):
    for part in dotted.split("."):
        obj = (obj or {}).get(part) if isinstance(obj, dict) else None
    return obj


def _selected(obj: dict, params: dict | None) -> bool:
    params = params or {}
    labels = obj["metadata"].get("labels") or {}
    for term in filter(None, (params.get("labelSelector") or "").split(",")):
        k, _, v = term.partition("=")
        if labels.get(k) != v:
            return False
    for term in filter(None, (params.get("fieldSelector") or "").split(",")):
        k, _, v = term.partition("=")
        if str(_field(obj, k)) != v:
            return False
    return True


def _not_found(plural: str, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{plural} "{name}" not found')


class FakeKube:
    def __init__(self, name: str = "fake"):
        self.name = name
        self.objects: dict[tuple, dict] = {}     # (api, plural, ns, name) -> object
        self.events: list[tuple[int, str, tuple, dict]] = []  # (rv, type, key, object)
        self.oldest = 0                           # a watch from below this is 410 Gone
        self.calls: list[tuple[str, str]] = []    # (verb, path), for assertions
        self._rv = itertools.count(100)
        self._uids = itertools.count(1)
        self._generation = 0
        self._tokens = itertools.count(1)
        self.token_requests: list[tuple[str, dict]] = []  # (path, body) of every TokenRequest
        self._waiters: list[asyncio.Future] = []
        self.version = "v1.37.2"

    # --- paths ------------------------------------------------------------------------
    @staticmethod
    def _parse(path: str) -> tuple[tuple, str | None, str | None, str | None]:
        m = _PATH.match(path.split("?")[0])
        if not m:
            raise ApiError(404, "NotFound", f"no such path {path}")
        api = m["core"] or f"{m['group']}/{m['version']}"
        return (api, m["plural"]), m["ns"], m["name"], m["sub"]

    def _key(self, path: str) -> tuple[tuple, str | None, str | None]:
        (api, plural), ns, name, sub = self._parse(path)
        return (api, plural, ns or "", name), plural, sub

    # --- writes -----------------------------------------------------------------------
    def _record(self, type_: str, key: tuple, obj: dict) -> dict:
        rv = next(self._rv)
        obj["metadata"]["resourceVersion"] = str(rv)
        if type_ == "DELETED":
            self.objects.pop(key, None)
        else:
            self.objects[key] = obj
        self.events.append((rv, type_, key, copy.deepcopy(obj)))
        self._wake()
        return copy.deepcopy(obj)

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for w in waiters:
            if not w.done():
                w.set_result(None)

    def put(self, path: str, obj: dict) -> dict:
        """Store `obj` in the collection at `path` (a test's direct write, any fields)."""
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        (api, plural), ns, _, _ = self._parse(path)
        if ns:
            meta["namespace"] = ns
        meta.setdefault("uid", f"uid-{next(self._uids)}")
        meta.setdefault("creationTimestamp", _now())
        key = (api, plural, meta.get("namespace", ""), meta["name"])
        return self._record("MODIFIED" if key in self.objects else "ADDED", key, obj)

    def remove(self, path: str) -> None:
        """Delete at once, whatever its grace period or finalizers (the end of a graceful deletion)."""
        key, plural, _ = self._key(path)
        obj = self.objects.get(key)
        if obj is None:
            raise _not_found(plural, key[3])
        self._record("DELETED", key, copy.deepcopy(obj))

    def compact(self) -> None:
        self.oldest = next(self._rv)
        self.events.clear()

    def end_watches(self) -> None:
        self._generation += 1
        self._wake()

    def stored(self, path: str) -> dict | None:
        key, _, _ = self._key(path)
        obj = self.objects.get(key)
        return copy.deepcopy(obj) if obj is not None else None

    # --- the KubeClient API -----------------------------------------------------------
    async def close(self) -> None:
        pass

    async def get(self, path: str, **params) -> dict:
        self.calls.append(("get", path))
        if path == "/version":
            return {"gitVersion": self.version}
        key, plural, sub = self._key(path)
        if key[3] is None:
            items, rv = await self.list_all(path, params)
            return {"items": items, "metadata": {"resourceVersion": rv}}
        obj = self.objects.get(key)
        if obj is None:
            raise _not_found(plural, key[3])
        return copy.deepcopy(obj)

    async def get_or_none(self, path: str) -> dict | None:
        try:
            return await self.get(path)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    async def create(self, path: str, body: dict) -> dict:
        self.calls.append(("create", path))
        key, plural, sub = self._key(path)
        if key[3] is not None:
            if key[1] == "pods" and sub == "binding":
                return self._bind(key, body)
            if key[1] == "serviceaccounts" and sub == "token":
                return self._token(path, key, body)
            raise ApiError(405, "MethodNotAllowed", f"POST {path}")
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        if not meta.get("name"):
            raise ApiError(422, "Invalid", "metadata.name: Required value")
        if key[2]:
            meta["namespace"] = key[2]
        full = (key[0], key[1], key[2], meta["name"])
        if full in self.objects:
            raise ApiError(409, "AlreadyExists", f'{plural} "{meta["name"]}" already exists')
        meta["uid"] = f"uid-{next(self._uids)}"
        meta["creationTimestamp"] = _now()
        meta.pop("resourceVersion", None)
        return self._record("ADDED", full, obj)

    def _token(self, path: str, key: tuple, body: dict) -> dict:
        self.token_requests.append((path, copy.deepcopy(body)))
        if key not in self.objects:
            raise _not_found("serviceaccounts", key[3])
        out = copy.deepcopy(body)
        ttl = int(out.setdefault("spec", {}).setdefault("expirationSeconds", 3600))
        expires = datetime.fromtimestamp(datetime.now(timezone.utc).timestamp() + ttl, timezone.utc)
        out["status"] = {"token": f"token-{next(self._tokens)}",
                         "expirationTimestamp": expires.strftime("%Y-%m-%dT%H:%M:%SZ")}
        return out

    def _bind(self, key: tuple, body: dict) -> dict:
        pod = self.objects.get(key)
        if pod is None:
            raise _not_found("pods", key[3])
        if (pod.get("spec") or {}).get("nodeName"):
            raise ApiError(409, "Conflict", f'pod {key[3]} is already assigned to node "{pod["spec"]["nodeName"]}"')
        pod = copy.deepcopy(pod)
        pod.setdefault("spec", {})["nodeName"] = body["target"]["name"]
        self._record("MODIFIED", key, pod)
        return {"kind": "Status", "status": "Success"}

    async def patch(self, path: str, body: dict, content_type: str = MERGE) -> dict:
        self.calls.append(("patch", path))
        key, plural, sub = self._key(path)
        obj = self.objects.get(key)
        if obj is None:
            raise _not_found(plural, key[3])
        want_rv = (body.get("metadata") or {}).get("resourceVersion")
        if want_rv and want_rv != obj["metadata"]["resourceVersion"]:
            raise ApiError(409, "Conflict", f'Operation cannot be fulfilled on {plural} "{key[3]}": '
                                            "the object has been modified")
        if sub == "status":
            body = {"status": body.get("status")} if "status" in body else {}
        elif plural in HAS_STATUS:
            body = {k: v for k, v in body.items() if k != "status"}
        apply = strategic_patch if content_type == STRATEGIC else merge_patch
        new = apply(copy.deepcopy(obj), body)
        new["metadata"]["uid"] = obj["metadata"]["uid"]
        return self._record("MODIFIED", key, new)

    async def delete(self, path: str, *, grace: int | None = None, uid: str | None = None) -> dict:
        self.calls.append(("delete", path))
        key, plural, _ = self._key(path)
        obj = self.objects.get(key)
        if obj is None:
            raise _not_found(plural, key[3])
        if uid and obj["metadata"]["uid"] != uid:
            raise ApiError(409, "Conflict", f"Precondition failed: UID in precondition: {uid}, "
                                            f"UID in object meta: {obj['metadata']['uid']}")
        meta = obj["metadata"]
        if plural == "pods" and grace is None:
            grace = (obj.get("spec") or {}).get("terminationGracePeriodSeconds", 30)
        graceful = plural == "pods" and grace and (obj.get("spec") or {}).get("nodeName")
        if graceful or meta.get("finalizers"):
            if meta.get("deletionTimestamp"):
                return copy.deepcopy(obj)
            new = copy.deepcopy(obj)
            new["metadata"]["deletionTimestamp"] = _now()
            new["metadata"]["deletionGracePeriodSeconds"] = grace or 0
            return self._record("MODIFIED", key, new)
        return self._record("DELETED", key, copy.deepcopy(obj))

    def _in_scope(self, key: tuple, path: str) -> bool:
        (api, plural), ns, name, _ = self._parse(path)
        return key[0] == api and key[1] == plural and (not ns or key[2] == ns)

    async def list_all(self, path: str, params: dict) -> tuple[list[dict], str]:
        self.calls.append(("list", path))
        items = [copy.deepcopy(o) for k, o in sorted(self.objects.items())
                 if self._in_scope(k, path) and _selected(o, params)]
        return items, str(next(self._rv))

    async def watch(self, path: str, params: dict, resource_version: str, timeout_seconds: int):
        self.calls.append(("watch", path))
        since = int(resource_version or 0)
        generation = self._generation
        if since < self.oldest:
            yield {"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Expired",
                                               "message": f"too old resource version: {since}"}}
            return
        checked = since  # every event up to here was looked at (in scope or not)
        while generation == self._generation:
            for rv, type_, key, obj in list(self.events):
                if rv <= checked:
                    continue
                checked = rv
                if self._in_scope(key, path) and _selected(obj, params):
                    yield {"type": type_, "object": copy.deepcopy(obj)}
            if any(rv > checked for rv, *_ in self.events):
                continue  # written while we yielded
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            await waiter


async def until(check, timeout=2.0):
    """Wait for `check()` to hold; the informer works on the same loop."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.005)


class Tasks:
    """Runs informers and controllers for the length of a test (an async fixture would run on
    another event loop than the test's)."""

    def __init__(self):
        self.tasks = []

    def __call__(self, runnable):
        """Start `runnable.run()` (an informer, a controller)."""
        self.tasks.append(asyncio.create_task(runnable.run()))
        return runnable

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        # Cancelled until they end (bounded): a task that swallowed one cancellation (3.11's
        # wait_for does, see operators/aio.py) would hang the test instead of failing it.
        for _ in range(50):
            pending = [t for t in self.tasks if not t.done()]
            if not pending:
                return
            for t in pending:
                t.cancel()
            await asyncio.wait(pending, timeout=0.1)
        raise AssertionError(f"tasks that do not end when cancelled: {pending}")
