"""Writes tenant pod status, only when it changes.

Patches carry the cached resourceVersion: lists (conditions, containerStatuses) are
replaced as a whole by a merge patch, so a write based on a stale pod must fail (409)
rather than drop a condition someone else just added; the caller then retries on the
fresh object the watch brings.
"""
from __future__ import annotations

import logging

from ...kubeclient.informer import Informer
from ...kubeclient.client import MERGE, ApiError, KubeClient
from ..mapping.podstatus import status_patch

log = logging.getLogger(__name__)


class Conflict(Exception):
    pass


class StatusWriter:
    def __init__(self, client: KubeClient, pods: Informer):
        self.client = client
        self.pods = pods
        self.writes = 0

    async def write(self, pod: dict, desired: dict) -> bool:
        """True if something was written. Raises Conflict when the cached pod is stale."""
        changes = status_patch(pod, desired)
        if not changes:
            return False
        meta = pod["metadata"]
        body = {"metadata": {"resourceVersion": meta["resourceVersion"]}, "status": changes}
        try:
            fresh = await self.client.patch(f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/status",
                                            body, MERGE)
        except ApiError as exc:
            if exc.status == 409:
                raise Conflict(str(exc)) from exc
            if exc.status == 404:
                return False  # deleted meanwhile
            raise
        self.writes += 1
        log.debug("status of %s/%s: wrote %s", meta["namespace"], meta["name"], ", ".join(sorted(changes)))
        self.pods.put_if_newer(fresh)
        return True
