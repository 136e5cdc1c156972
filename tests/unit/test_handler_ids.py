"""A delete handler never shares its id with a create/resume/update handler of the same
kind: kopf keeps progress by handler id, and a deletion that supersedes an unfinished
update (the resume handlers run with the first cause after a restart) took the resume's
'success' record for its own and removed the finalizer without deleting anything (a
churn run left a sandbox running, its SandboxPod gone)."""
from __future__ import annotations

import importlib

import kopf



def test_delete_handlers_have_ids_of_their_own():
    registry = kopf.get_default_registry()
    for name in ("sandboxpod", "servicelb", "privatezone", "serverlesscluster"):
        importlib.import_module(f"operators.{name}.operator")
    by_resource: dict = {}
    for h in registry._changing.get_all_handlers():
        by_resource.setdefault(str(h.selector), []).append(h)
    assert len(by_resource) == 4
    for selector, handlers in by_resource.items():
        deleting = {h.id for h in handlers if h.reason == kopf.Reason.DELETE}
        others = {h.id for h in handlers if h.reason != kopf.Reason.DELETE}
        assert deleting and not deleting & others, (selector, deleting, others)
