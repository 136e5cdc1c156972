"""ClusterTrustBundle projections as the kubelet's manager makes them: by name as written,
by signer the matching bundles' certificates once each, nil selector nothing, {} all, and
empty-but-optional an empty file."""
import pytest

from operators.embedded.pki import make_ca
from operators.virtualnode.mapping.trustbundles import selector_matches, trust_anchors
from operators.virtualnode.mapping.volumes import projected_payload, sandbox_volumes, volume_type

CA = [make_ca(f"ca-{i}").cert_pem.decode() for i in range(3)]
SIGNER = "example.com/signer"


def bundle(name, pem, signer=None, labels=None):
    return {"metadata": {"name": name, "labels": labels or {}},
            "spec": {"trustBundle": pem, **({"signerName": signer} if signer else {})}}


BUNDLES = [bundle("plain", CA[0]),
           bundle("example.com:signer:a", CA[1] + CA[2], SIGNER, {"alive": "true"}),
           bundle("example.com:signer:b", CA[2], SIGNER, {"alive": "false"}),
           bundle("other.com:signer:c", CA[0], "other.com/signer", {"alive": "true"})]


def test_by_name_is_the_bundle_as_written_and_a_missing_one_fails_unless_optional():
    assert trust_anchors({"name": "plain", "path": "p"}, BUNDLES) == CA[0].encode()
    assert trust_anchors({"name": "gone", "path": "p", "optional": True}, BUNDLES) == b""
    with pytest.raises(ValueError, match='clustertrustbundle "gone" not found'):
        trust_anchors({"name": "gone", "path": "p"}, BUNDLES)


def test_by_signer_each_certificate_once_from_the_matching_bundles_only():
    alive = trust_anchors({"signerName": SIGNER, "labelSelector": {"matchLabels": {"alive": "true"}}}, BUNDLES)
    assert sorted(alive.decode().split("-----END CERTIFICATE-----\n")) == \
        sorted((CA[1] + CA[2]).split("-----END CERTIFICATE-----\n"))
    every = trust_anchors({"signerName": SIGNER, "labelSelector": {}}, BUNDLES)
    assert every == alive  # CA[2] is in both bundles: once
    assert CA[0].encode() not in every  # another signer's
    with pytest.raises(ValueError, match=f'combined trust anchor set for signer "{SIGNER}" was empty'):
        trust_anchors({"signerName": SIGNER}, BUNDLES)  # a nil selector matches nothing
    assert trust_anchors({"signerName": SIGNER, "optional": True}, BUNDLES) == b""


def test_label_selectors_as_metav1():
    assert not selector_matches(None, {"a": "b"}) and selector_matches({}, {})
    assert selector_matches({"matchExpressions": [{"key": "a", "operator": "In", "values": ["b"]}]}, {"a": "b"})
    assert not selector_matches({"matchLabels": {"a": "b"}, "matchExpressions": [
        {"key": "c", "operator": "Exists"}]}, {"a": "b"})


def test_a_projection_of_trust_bundles_is_content_not_spec():
    v = {"name": "ca", "projected": {"defaultMode": 0o600, "sources": [
        {"clusterTrustBundle": {"name": "plain", "path": "ca.pem"}}, {"configMap": {"name": "cm"}}]}}
    assert volume_type(v) == "projected"
    assert sandbox_volumes({"spec": {"volumes": [v]}}) == [
        {"name": "ca", "projected": {"defaultMode": 0o600, "sources": [{"configMap": {"name": "cm"}}]}}]
    files = projected_payload("ca", {"defaultMode": 0o600, "sources": v["projected"]["sources"][:1]}, {},
                              secrets={}, configmaps={}, node_name="n", allocatable={}, trust_bundles=BUNDLES)
    assert files["ca.pem"]["mode"] == 0o600
