"""Generate crds/*.yaml from the pydantic models (the single source of truth).

    python -m operators.crdgen            # rewrite crds/
    python -m operators.crdgen --check    # exit 1 if crds/ is stale

pydantic emits JSON Schema; the apiserver wants a *structural* OpenAPI v3 schema:
no $ref, no anyOf for optional fields, int-or-string instead of type unions.
"""
from __future__ import annotations

import argparse
import copy
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from . import GROUP, VERSION
from .models import PrivateZone, SandboxPod, ServerlessCluster, ServiceLB
from .models.contracts import CONDITION_READY

CRD_DIR = Path(__file__).resolve().parent.parent / "crds"
_DROP = {"title"}


@dataclass(frozen=True)
class CRDInfo:
    model: type[BaseModel]
    kind: str
    plural: str
    short_names: list[str]
    columns: list[dict] = field(default_factory=list)
    categories: tuple[str, ...] = ("sk8s",)


def _ready_column() -> dict:
    return {"name": "Ready", "type": "string", "jsonPath": f'.status.conditions[?(@.type=="{CONDITION_READY}")].status'}


def _age_column() -> dict:
    return {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}


CRDS: list[CRDInfo] = [
    CRDInfo(
        SandboxPod, "SandboxPod", "sandboxpods", ["sbp", "sbpod"],
        [
            {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
            _ready_column(),
            {"name": "Restarts", "type": "integer", "jsonPath": ".status.containerStatuses[0].restartCount"},
            {"name": "IP", "type": "string", "jsonPath": ".status.podIP"},
            {"name": "Cluster", "type": "string", "jsonPath": ".spec.clusterRef.name", "priority": 1},
            {"name": "Provider", "type": "string", "jsonPath": ".status.provider", "priority": 1},
            {"name": "Instance", "type": "string", "jsonPath": ".status.instanceID", "priority": 1},
            {"name": "Reason", "type": "string", "jsonPath": ".status.reason", "priority": 1},
            _age_column(),
        ],
    ),
    CRDInfo(
        ServerlessCluster, "ServerlessCluster", "serverlessclusters", ["slc", "sc"],
        [
            {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
            _ready_column(),
            {"name": "Version", "type": "string", "jsonPath": ".spec.version"},
            {"name": "Endpoint", "type": "string", "jsonPath": ".status.endpoint"},
            {"name": "Pods", "type": "integer", "jsonPath": ".status.pods"},
            {"name": "Nodes", "type": "integer", "jsonPath": ".spec.virtualNodes", "priority": 1},
            {"name": "Provider", "type": "string", "jsonPath": ".spec.provider", "priority": 1},
            _age_column(),
        ],
    ),
    CRDInfo(
        ServiceLB, "ServiceLB", "servicelbs", ["slb"],
        [
            {"name": "Type", "type": "string", "jsonPath": ".spec.addressType"},
            {"name": "Address", "type": "string", "jsonPath": ".status.address"},
            {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
            _ready_column(),
            {"name": "Service", "type": "string", "jsonPath": ".spec.service.name", "priority": 1},
            {"name": "Backends", "type": "integer", "jsonPath": ".status.listeners[0].healthyBackends",
             "priority": 1},
            _age_column(),
        ],
    ),
    CRDInfo(
        PrivateZone, "PrivateZone", "privatezones", ["pvtz"],
        [
            {"name": "Zone", "type": "string", "jsonPath": ".spec.zoneName"},
            {"name": "Records", "type": "integer", "jsonPath": ".status.recordCount"},
            {"name": "Resolvers", "type": "string", "jsonPath": ".status.resolvers[*]"},
            _ready_column(),
            {"name": "VPC", "type": "string", "jsonPath": ".spec.vpcIDs[*]", "priority": 1},
            _age_column(),
        ],
    ),
]


def _structural(node: Any, defs: dict) -> Any:
    """Inline $refs, collapse Optional[...] and int|str unions, drop JSON-Schema-only keys."""
    if isinstance(node, list):
        return [_structural(n, defs) for n in node]
    if not isinstance(node, dict):
        return node
    node = dict(node)
    if "$ref" in node:
        target = copy.deepcopy(defs[node.pop("$ref").split("/")[-1]])
        target.update(node)  # field-level keys (description, extras) win over the model's
        node = target
    if "anyOf" in node:
        branches = [b for b in node.pop("anyOf") if b.get("type") != "null"]
        if {b.get("type") for b in branches} == {"string", "integer"}:
            node["x-kubernetes-int-or-string"] = True
        if node.get("x-kubernetes-int-or-string"):
            pass  # int-or-string carries no type at all
        elif len(branches) == 1:
            inner = dict(branches[0])
            inner.update(node)  # field-level keys (description, extras) win
            return _structural(inner, defs)
        else:
            raise ValueError(f"cannot express union {branches} structurally")
    if "const" in node:
        node["enum"] = [node.pop("const")]
    if node.get("default", 0) is None:
        node.pop("default")
    if node.get("x-kubernetes-int-or-string"):
        node.pop("type", None)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP:
            continue
        if key == "properties":
            out[key] = {k: _structural(v, defs) for k, v in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = _structural(value, defs)
        else:
            out[key] = value
    if "properties" in out:
        out.setdefault("type", "object")
    if out.get("x-kubernetes-preserve-unknown-fields"):
        out.pop("additionalProperties", None)
    return out


def openapi_schema(model: type[BaseModel]) -> dict:
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.pop("$defs", {})
    schema = _structural(raw, defs)
    schema.pop("description", None)
    props = schema.setdefault("properties", {})
    props["apiVersion"] = {"type": "string"}
    props["kind"] = {"type": "string"}
    props["metadata"] = {"type": "object"}
    schema["type"] = "object"
    return schema


def build_crd(info: CRDInfo) -> dict:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{info.plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": info.kind,
                "listKind": f"{info.kind}List",
                "plural": info.plural,
                "singular": info.kind.lower(),
                "shortNames": info.short_names,
                "categories": list(info.categories),
            },
            "versions": [{
                "name": VERSION,
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "additionalPrinterColumns": info.columns,
                "schema": {"openAPIV3Schema": openapi_schema(info.model)},
            }],
        },
    }


def render(info: CRDInfo) -> str:
    header = "# Generated by `python -m operators.crdgen` from operators/models; do not edit.\n"
    return header + yaml.safe_dump(build_crd(info), sort_keys=False, width=120)


KUSTOMIZATION_HEADER = """\
# Generated by `python -m operators.crdgen`; do not edit. Lets manifests/ include the CRDs
# (kustomize refuses single files outside its root, but accepts a kustomization directory).
"""


def expected_files() -> dict[str, str]:
    files = {f"{GROUP}_{info.plural}.yaml": render(info) for info in CRDS}
    kustomization = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
                     "resources": sorted(files)}
    files["kustomization.yaml"] = KUSTOMIZATION_HEADER + yaml.safe_dump(kustomization, sort_keys=False)
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if crds/ is stale")
    args = parser.parse_args(argv)
    files = expected_files()
    if args.check:
        stale = [n for n, text in files.items()
                 if not (CRD_DIR / n).exists() or (CRD_DIR / n).read_text() != text]
        if stale:
            print(f"stale CRDs: {', '.join(stale)}; run python -m operators.crdgen", file=sys.stderr)
            return 1
        return 0
    CRD_DIR.mkdir(exist_ok=True)
    for name, text in files.items():
        (CRD_DIR / name).write_text(text)
        print(f"wrote crds/{name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
