"""The CRDs in crds/ are generated from the pydantic models and must not go stale."""
import yaml

from operators import crdgen


def test_crds_are_current():
    stale = [name for name, text in crdgen.expected_files().items()
             if not (crdgen.CRD_DIR / name).exists() or (crdgen.CRD_DIR / name).read_text() != text]
    assert not stale, f"crds/ is stale, run `python -m operators.crdgen`: {stale}"


def _walk(node, path="$"):
    if isinstance(node, dict):
        yield path, node
        for k, v in node.items():
            yield from _walk(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _walk(v, f"{path}[{i}]")


def test_schemas_are_structural():
    for info in crdgen.CRDS:
        schema = crdgen.openapi_schema(info.model)
        for path, node in _walk(schema):
            assert "$ref" not in node and "anyOf" not in node and "$defs" not in node, path
            if node.get("x-kubernetes-int-or-string"):
                assert "type" not in node, path


def test_every_crd_has_status_subresource_columns_shortnames_and_category():
    for name, text in crdgen.expected_files().items():
        if name == "kustomization.yaml":
            continue
        crd = yaml.safe_load(text)
        version = crd["spec"]["versions"][0]
        assert version["subresources"] == {"status": {}}
        names = [c["name"] for c in version["additionalPrinterColumns"]]
        assert "Age" in names and "Ready" in names
        assert crd["spec"]["names"]["shortNames"]
        assert "sk8s" in crd["spec"]["names"]["categories"]


def test_status_keeps_kopf_progress():
    for info in crdgen.CRDS:
        status = crdgen.openapi_schema(info.model)["properties"]["status"]
        assert status["properties"]["kopf"]["x-kubernetes-preserve-unknown-fields"] is True


def test_sandboxpod_schema_validates_what_users_get_wrong():
    spec = crdgen.openapi_schema(crdgen.CRDS[0].model)["properties"]["spec"]
    assert spec["required"] == ["containers"]
    containers = spec["properties"]["containers"]
    assert containers["minItems"] == 1
    assert any("unique" in r["message"] for r in containers["x-kubernetes-validations"])
    assert spec["properties"]["restartPolicy"]["enum"] == ["Always", "OnFailure", "Never"]
    port = containers["items"]["properties"]["ports"]["items"]["properties"]["containerPort"]
    assert (port["minimum"], port["maximum"]) == (1, 65535)
