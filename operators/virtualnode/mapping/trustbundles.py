"""ClusterTrustBundle projections, as the kubelet's clustertrustbundle manager computes them
(pure): the trust anchors of one bundle by name, or of every bundle of a signer whose
labels the selector matches, each certificate once.

- By `name`: that bundle's `spec.trustBundle` as it is.
- By `signerName`: the PEM blocks of all matching bundles, de-duplicated and written out
  again as CERTIFICATE blocks. A nil selector matches nothing, an empty one everything
  (metav1.LabelSelector). The kubelet orders them by a salted hash that changes with each
  restart, so no order is promised; here they are sorted by the certificate's bytes.
- Nothing found: an empty file if the projection is `optional`, else an error, and the pod
  stays ContainerCreating (MountVolume.SetUp failed).
"""
from __future__ import annotations

import base64
import re

from .nodeaffinity import requirement_matches

_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.*?)-----END \1-----", re.S)


def selector_matches(selector: dict | None, labels: dict[str, str]) -> bool:
    """metav1.LabelSelector: nil matches nothing, {} everything; matchLabels and matchExpressions ANDed."""
    if selector is None:
        return False
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    return all(requirement_matches(r, labels) for r in selector.get("matchExpressions") or [])


def pem_certificates(bundle: str) -> list[bytes]:
    """The DER bytes of each CERTIFICATE block (the API validates the bundle as such)."""
    return [base64.b64decode(b"".join(body.split())) for kind, body in _PEM_BLOCK.findall(bundle.encode())
            if kind == b"CERTIFICATE"]


def encode_certificate(der: bytes) -> bytes:
    b64 = base64.b64encode(der)
    lines = b"\n".join(b64[i:i + 64] for i in range(0, len(b64), 64))
    return b"-----BEGIN CERTIFICATE-----\n" + lines + b"\n-----END CERTIFICATE-----\n"


def trust_anchors(projection: dict, bundles: list[dict]) -> bytes:
    """The file of one clusterTrustBundle projection; ValueError when it cannot be made."""
    optional = bool(projection.get("optional"))
    name = projection.get("name")
    if name:
        found = next((b for b in bundles if (b.get("metadata") or {}).get("name") == name), None)
        if found is None:
            if optional:
                return b""
            raise ValueError(f'clustertrustbundle "{name}" not found')
        return ((found.get("spec") or {}).get("trustBundle") or "").encode()
    signer = projection.get("signerName")
    selector = projection.get("labelSelector")
    anchors: set[bytes] = set()
    for b in bundles:
        if (b.get("spec") or {}).get("signerName") == signer and \
                selector_matches(selector, (b.get("metadata") or {}).get("labels") or {}):
            anchors.update(pem_certificates((b.get("spec") or {}).get("trustBundle") or ""))
    if not anchors and not optional:
        raise ValueError(f'combined trust anchor set for signer "{signer}" was empty')
    return b"".join(encode_certificate(der) for der in sorted(anchors))
