"""The fast path for backends: a watch of ServiceLBs hands each new backend list to the
provider the moment it is seen.

kopf's update handler queues each change of an object behind the previous one's run, its
status patch and its wait for that patch to come back (about a second under load: two
endpoint changes in a row, as a scale-down makes, put the second a second late). The
provider takes a list from here only for an LB it serves whose other fields are those the
last handler run checked (tenancy included: backends are data the provider checks against
the LB's VPC itself); anything else waits for the handler, which still runs on every
change and writes the status.
"""
from __future__ import annotations

import asyncio
import logging

from .. import GROUP, VERSION, kube
from ..kopfsettings import owns
from ..kubeclient.informer import Informer
from ..providers.services import LoadBalancers
from .status import lb_spec

log = logging.getLogger(__name__)


def start(lbs: LoadBalancers) -> asyncio.Task:
    pending: set[asyncio.Task] = set()

    def on_event(kind: str, obj: dict, old: dict | None) -> None:
        spec = obj.get("spec") or {}
        if kind != "MODIFIED" or old is None or spec == (old.get("spec") or {}) or not owns(spec):
            return
        if spec.get("apiServer") or obj["metadata"].get("deletionTimestamp"):
            return
        meta = obj["metadata"]
        task = asyncio.get_running_loop().create_task(lbs.follow(lb_spec(
            meta["uid"], spec, version=meta.get("resourceVersion"), namespace=meta.get("namespace"),
            name=meta.get("name"))))
        pending.add(task)
        task.add_done_callback(_done)
        task.add_done_callback(pending.discard)

    informer = Informer(kube.client(), f"/apis/{GROUP}/{VERSION}/servicelbs", name="servicelbs",
                        key=lambda o: o["metadata"]["uid"], on_event=on_event)
    return asyncio.get_running_loop().create_task(informer.run(), name="servicelb-follow")


def _done(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("following backends: %s", task.exception())  # the handler will apply them
