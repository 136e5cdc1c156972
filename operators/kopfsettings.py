"""The kopf settings every sk8s operator shares."""
from __future__ import annotations

import hashlib
import json
import logging

import kopf

from .config import in_cluster_apiserver, provider_name
from .models.contracts import KOPF_ANNOTATION_PREFIX

DIFFBASE_KEY = "last-handled-configuration"
DEFAULT_PROVIDER = "local"
UNEXPECTED_ERROR_RETRY = 5.0  # seconds


class DigestDiffBaseStorage(kopf.AnnotationsDiffBaseStorage):
    """The diff base as a digest of the essence, for kinds without update handlers.

    kopf keeps a copy of the whole spec, labels and annotations in one annotation; the
    apiserver caps all annotations of an object at 256 KiB, so an object whose spec is
    larger could never be patched again, not even to remove its finalizer. A digest still
    tells kopf whether anything changed, which is all that create/resume/delete need.
    """

    def build(self, *, body, extra_fields=None):
        essence = super().build(body=body, extra_fields=extra_fields)
        encoded = json.dumps(essence, sort_keys=True, separators=(",", ":")).encode()
        return {"digest": hashlib.sha256(encoded).hexdigest()}


def configure(settings: kopf.OperatorSettings, *, finalizer: str, max_workers: int,
              digest_diffbase: bool = False, storage_suffix: str = "") -> None:
    """`digest_diffbase`: for kinds whose handlers never diff fields (no on.field, and an
    on.update handler reads the body, not `diff`/`old`: SandboxPod's ephemeral containers).
    `storage_suffix`: for a second operator of the same kind, which takes other objects of it
    (a provider's SandboxPod operator): its own progress field and diff base, never the other's."""
    # Explicit watch timeouts: a silently dead watch connection must not stall the operator.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 10
    settings.watching.reconnect_backoff = 1.0
    # A handler (or startup) that fails with an unexpected error is tried again after this
    # many seconds, not kopf's default minute: such errors here are a restarting apiserver or
    # a runtime hiccup, and a minute of it meant a pod not started, a health timer silent.
    settings.execution.default_backoff = UNEXPECTED_ERROR_RETRY
    settings.persistence.finalizer = finalizer
    # Progress in status (kept by the CRDs' status.kopf), the diff base in an annotation.
    settings.persistence.progress_storage = kopf.StatusProgressStorage(field="status.kopf.progress" + storage_suffix)
    storage = DigestDiffBaseStorage if digest_diffbase else kopf.AnnotationsDiffBaseStorage
    settings.persistence.diffbase_storage = storage(prefix=KOPF_ANNOTATION_PREFIX, key=DIFFBASE_KEY + storage_suffix)
    settings.posting.level = logging.INFO
    settings.execution.max_workers = max_workers


def login(**kwargs) -> kopf.ConnectionInfo | None:
    """kopf's credentials, chosen by the rule operators.kubeclient uses (config.in_cluster_apiserver).

    Without this, kopf piggybacks on the `kubernetes` package when it happens to be
    installed (a dev venv with the test extras) and logs in by itself when not (the
    operator image): two paths for one deployment."""
    if in_cluster_apiserver():
        return kopf.login_with_service_account(**kwargs)
    return kopf.login_with_kubeconfig(**kwargs)


def provider_of(spec) -> str:
    """The provider an object (SandboxPod, ServiceLB, PrivateZone) names; local if none."""
    return (spec or {}).get("provider") or DEFAULT_PROVIDER


def storage_suffix() -> str:
    """"" for the default provider's operators, "-<provider>" for another provider's (each
    provider has operators of its own, as each virtual-kubelet provider runs its own node):
    their own finalizer, progress and diff base. With one finalizer, the other operator would
    remove it (kopf drops a finalizer no handler of its own requires), and with one diff base
    would mark an object handled before its provider's operator ever saw it."""
    provider = provider_name()
    return "" if provider == DEFAULT_PROVIDER else f"-{provider}"


def owns(spec, **_) -> bool:
    """kopf's `when=` filter of a per-provider operator's handlers: the objects of its provider."""
    return provider_of(spec) == provider_name()
