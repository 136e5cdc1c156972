"""The scheduler's NodeAffinity filter for the virtual node (pure): a pod's nodeSelector and
its required node affinity (component-helpers/scheduling/corev1/nodeaffinity), matched
against the Node as the apiserver has it.

- nodeSelectorTerms are ORed, the requirements of one term ANDed; an empty term matches
  nothing; `matchFields` knows only `metadata.name` (the DaemonSet controller pins each of
  its pods to a node that way).
- Preferred affinity is a preference: with the choice of one node it changes nothing.
"""
from __future__ import annotations

MISMATCH = "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector."


def _int(value: str) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def requirement_matches(req: dict, values_of: dict[str, str]) -> bool:
    """One NodeSelectorRequirement against a key -> value map (labels, or fields)."""
    key, op, values = req.get("key"), req.get("operator"), req.get("values") or []
    present = key in values_of
    value = values_of.get(key)
    if op == "In":
        return present and value in values
    if op == "NotIn":
        return not present or value not in values
    if op == "Exists":
        return present
    if op == "DoesNotExist":
        return not present
    if op in ("Gt", "Lt") and present and len(values) == 1:
        have, want = _int(value), _int(values[0])
        if have is None or want is None:
            return False
        return have > want if op == "Gt" else have < want
    return False


def term_matches(term: dict, labels: dict[str, str], fields: dict[str, str]) -> bool:
    exprs, mfields = term.get("matchExpressions") or [], term.get("matchFields") or []
    if not exprs and not mfields:
        return False  # an empty term selects no node
    return (all(requirement_matches(r, labels) for r in exprs)
            and all(r.get("key") == "metadata.name" and requirement_matches(r, fields) for r in mfields))


def node_mismatch(pod: dict, node: dict) -> str | None:
    """None if the pod may run on `node`, else the scheduler's message."""
    spec = pod.get("spec") or {}
    labels = (node.get("metadata") or {}).get("labels") or {}
    if any(labels.get(k) != v for k, v in (spec.get("nodeSelector") or {}).items()):
        return MISMATCH
    required = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution"))
    if required is None:
        return None
    fields = {"metadata.name": (node.get("metadata") or {}).get("name") or ""}
    if any(term_matches(t, labels, fields) for t in required.get("nodeSelectorTerms") or []):
        return None
    return MISMATCH
