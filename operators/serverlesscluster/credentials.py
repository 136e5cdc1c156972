"""A tenant cluster's own cloud account: `spec.credentialsSecretRef` names a Secret in the
ServerlessCluster's namespace (never another's: the reference has no namespace) holding
`access-key-id` and `access-key-secret`.

This operator reads it and hands the key pair to the provider's processes
(providers.bind_account) before the cluster's first cloud call, and again on every
health tick, so a key rotated in the Secret is used from the next call on. The Secret is
never copied into the tenant cluster, and no message here carries a value of it.
"""
from __future__ import annotations

import base64
import binascii

from .. import kube
from ..providers import bind_account
from ..providers.errors import ProviderError


def secret_ref(body) -> str | None:
    return (((body.get("spec") or {}).get("credentialsSecretRef")) or {}).get("name")


def decode(secret: dict) -> dict[str, str]:
    """The Secret's values (stringData is folded into data by the apiserver)."""
    out = {}
    for key, value in (secret.get("data") or {}).items():
        try:
            out[key] = base64.b64decode(value, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise ProviderError(f"the Secret's key {key} is not UTF-8 text", reason="MissingCredentials",
                                retryable=False) from None
    return out


async def sync_account(body, sandbox_namespace: str) -> bool:
    """Record the cluster's account if it names one; whether the key changed."""
    name = secret_ref(body)
    if not name:
        return False
    meta = body["metadata"]
    where = f"spec.credentialsSecretRef: Secret {meta['namespace']}/{name}"
    secret = await kube.read_secret(meta["namespace"], name)
    if secret is None:
        # Retried soon: a Secret applied with its cluster may come a moment later.
        raise ProviderError(f"{where} not found", reason="MissingCredentials", retryable=True)
    provider = (body.get("spec") or {}).get("provider", "local")
    try:
        return bind_account(provider, meta["uid"], sandbox_namespace, decode(secret))
    except ProviderError as exc:
        raise ProviderError(f"{where}: {exc}", reason=exc.reason, retryable=exc.retryable) from None
