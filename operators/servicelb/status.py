"""ServiceLB spec <-> provider terms, and the status it reports (pure functions)."""
from __future__ import annotations

from urllib.parse import urlsplit

from ..conditions import condition
from ..models.contracts import CONDITION_READY
from ..providers.services import LBListener, LBSpec, LBState


def api_server_address(cluster: dict | None) -> tuple[str, int]:
    """(host, port) of a ServerlessCluster's API server, from the status its operator wrote
    (never a tenant's value); only a loopback address of this host qualifies. ValueError
    names what is missing."""
    endpoint = ((cluster or {}).get("status") or {}).get("endpoint") or ""
    if cluster is None or not endpoint:
        raise ValueError("spec.apiServer: the VPC's cluster has no API server endpoint yet")
    parsed = urlsplit(endpoint)
    if parsed.scheme != "https" or parsed.hostname != "127.0.0.1" or not parsed.port:
        raise ValueError(f"spec.apiServer: the cluster's endpoint {endpoint} is not an API server on this host")
    return parsed.hostname, parsed.port


def lb_spec(uid: str, spec: dict, api_server: tuple[str, int] | None = None, version: str | None = None,
            *, namespace: str | None = None, name: str | None = None) -> LBSpec:
    listeners = [LBListener(lst.get("protocol") or "TCP", int(lst["port"]), int(lst["targetPort"]))
                 for lst in spec.get("listeners") or []]
    ready = [b for b in spec.get("backends") or [] if b.get("ready", True) and b.get("ip")]
    backends = sorted({b["ip"] for b in ready})
    ports: dict[str, list[tuple[str, int, int]]] = {}
    for b in ready:
        if b.get("ports") is not None:
            ports.setdefault(b["ip"], []).extend(
                (p.get("protocol") or "TCP", int(p["port"]), int(p["targetPort"])) for p in b["ports"])
    return LBSpec(uid, spec.get("addressType") or "internet", spec.get("vpcID"), listeners,
                  [] if api_server else backends, spec.get("loadBalancerIP") or None, api_server,
                  spec.get("sessionAffinityTimeoutSeconds"), {} if api_server else ports,
                  int(version) if version and str(version).isdigit() else None, namespace, name)


def build_status(state: LBState, *, provider: str, generation: int | None, previous: list[dict] | None) -> dict:
    listeners = [{"protocol": lst.protocol, "port": lst.port, "targetPort": lst.target_port,
                  "healthyBackends": healthy} for lst, healthy in state.listeners]
    starved = [f"{lst.protocol}/{lst.port}" for lst, healthy in state.listeners if healthy == 0]
    conditions = [
        condition(CONDITION_READY, True, "Listening", f"serving on {state.address}", generation=generation,
                  previous=previous),
        condition("BackendsHealthy", not starved,
                  "NoHealthyBackends" if starved else "Healthy",
                  f"no healthy backend for {', '.join(starved)}" if starved else "every listener has a healthy backend",
                  generation=generation, previous=previous),
    ]
    return {
        "phase": "Ready",
        "address": state.address,
        "providerID": f"{provider}://{state.address}",
        "listeners": listeners,
        "backends": [{"ip": b.ip, "port": b.port, "healthy": b.healthy, **({"message": b.message} if b.message else {})}
                     for b in state.backends],
        "conditions": conditions,
        "observedGeneration": generation,
        "message": None,
    }


def failed_status(message: str, reason: str, *, generation: int | None, previous: list[dict] | None) -> dict:
    return {
        "phase": "Failed",
        "message": message,
        "conditions": [condition(CONDITION_READY, False, reason, message, generation=generation, previous=previous)],
        "observedGeneration": generation,
    }


def health_view(status: dict) -> tuple:
    """What the health reporter compares, so that it patches only on a change."""
    return (tuple((lst.get("port"), lst.get("healthyBackends")) for lst in status.get("listeners") or []),
            tuple((b.get("ip"), b.get("port"), b.get("healthy")) for b in status.get("backends") or []))
