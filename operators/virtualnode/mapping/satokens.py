"""Service-account tokens of projected volumes, as the kubelet's token manager asks for them
(pure functions, no I/O; pkg/kubelet/token/token_manager.go, pkg/volume/projected).

Each `serviceAccountToken` source of a pod's projected volumes is one TokenRequest to the
tenant's own apiserver, for the pod's service account, bound to the pod (so the token dies
with it and names it in its claims); the file gets the token at the source's path. A token
is requested again when it is older than a fraction of its lifetime (the kubelet's 80%,
less up to 10 s of jitter) or 24 hours, whichever comes first.
"""
from __future__ import annotations

from datetime import datetime
from typing import NamedTuple
from urllib.parse import quote

DEFAULT_EXPIRATION = 3600  # the API's default for a serviceAccountToken projection
MIN_EXPIRATION = 600       # the API's minimum; validation refuses less
MAX_TTL = 24 * 3600        # the kubelet refreshes at least daily, whatever the expiry
MAX_JITTER = 10.0          # spreads the refreshes of many pods, as the kubelet does
FS_OWNED_MODE = 0o600      # with fsGroup, group read is added on top (0640), as SetVolumeOwnership does


class TokenSource(NamedTuple):
    volume: str
    index: int    # position in the volume's sources: the key of the token in the volume's files
    source: dict  # the serviceAccountToken projection


class Token(NamedTuple):
    token: str
    expires_at: float  # epoch seconds (status.expirationTimestamp)
    ttl: int           # spec.expirationSeconds of the answer


def token_sources(pod: dict) -> list[TokenSource]:
    """Every serviceAccountToken source of the pod's projected volumes."""
    out = []
    for v in (pod.get("spec") or {}).get("volumes") or []:
        for i, src in enumerate((v.get("projected") or {}).get("sources") or []):
            if src.get("serviceAccountToken") is not None:
                out.append(TokenSource(v["name"], i, src["serviceAccountToken"]))
    return out


def service_account(pod: dict) -> str:
    spec = pod.get("spec") or {}
    return spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"


def token_request(pod: dict, source: dict) -> tuple[str, dict]:
    """The TokenRequest path and body for one source: the source's audience (none: the
    apiserver's own audiences) and expiry, bound to the pod by name and uid."""
    meta = pod["metadata"]
    spec: dict = {"expirationSeconds": int(source.get("expirationSeconds") or DEFAULT_EXPIRATION),
                  "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": meta["name"], "uid": meta["uid"]}}
    if source.get("audience"):
        spec["audiences"] = [source["audience"]]
    path = (f"/api/v1/namespaces/{quote(meta['namespace'], safe='')}/serviceaccounts/"
            f"{quote(service_account(pod), safe='')}/token")
    return path, {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}


def cache_key(pod: dict, source: dict) -> tuple:
    """As the kubelet's keyFunc: the same request for the same pod shares one token."""
    path, body = token_request(pod, source)
    spec = body["spec"]
    return path, tuple(spec.get("audiences") or ()), spec["expirationSeconds"], pod["metadata"]["uid"]


def parse_answer(answer: dict, requested_ttl: int) -> Token:
    status, spec = answer.get("status") or {}, answer.get("spec") or {}
    if not status.get("token") or not status.get("expirationTimestamp"):
        raise ValueError("the TokenRequest answer has no token or no expirationTimestamp")
    expires = datetime.fromisoformat(status["expirationTimestamp"].replace("Z", "+00:00")).timestamp()
    return Token(status["token"], expires, int(spec.get("expirationSeconds") or requested_ttl))


def refresh_at(token: Token, *, fraction: float, jitter: float = 0.0) -> float:
    """When the token must be requested again (epoch seconds): once older than `fraction` of
    its lifetime or MAX_TTL, less the jitter."""
    issued = token.expires_at - token.ttl
    return min(issued + MAX_TTL, issued + fraction * token.ttl) - jitter


def token_mode(pod: dict, projected: dict) -> int:
    """The token file's mode: the volume's defaultMode (0644 by default), or 0600 when the pod
    has an fsGroup (which then adds group read), as pkg/volume/projected does."""
    if ((pod.get("spec") or {}).get("securityContext") or {}).get("fsGroup") is not None:
        return FS_OWNED_MODE
    mode = projected.get("defaultMode")
    return 0o644 if mode is None else int(mode)
