"""The kopf settings every sk8s operator shares."""
from __future__ import annotations

import logging

import kopf


def configure(settings: kopf.OperatorSettings, *, finalizer: str, max_workers: int) -> None:
    # Explicit watch timeouts: a silently dead watch connection must not stall the operator.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 10
    settings.watching.reconnect_backoff = 1.0
    settings.persistence.finalizer = finalizer
    # Progress in status (kept by the CRDs' status.kopf), the diff base in an annotation.
    settings.persistence.progress_storage = kopf.StatusProgressStorage(field="status.kopf.progress")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="sk8s.io", key="last-handled-configuration")
    settings.posting.level = logging.INFO
    settings.execution.max_workers = max_workers
