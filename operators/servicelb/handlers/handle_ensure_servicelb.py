"""Create or update a ServiceLB's load balancer; record its address and listeners."""
from __future__ import annotations

import kopf

from ... import kube, tenancy
from ...providers.errors import ProviderError
from ..status import api_server_address, build_status, failed_status, lb_spec


async def ensure_lb(body, spec, status, meta, patch, memo: kopf.Memo, **_) -> None:
    uid, generation = meta["uid"], meta.get("generation")
    previous = (status or {}).get("conditions")
    first = not (status or {}).get("address")
    try:
        await tenancy.check("ServiceLB", dict(body))
    except tenancy.TenancyError as exc:
        # A load balancer into another tenant's VPC (or, without one, onto the host) is
        # never served: what an earlier spec had is torn down too.
        await memo.lbs.delete(uid, (status or {}).get("address"), (spec or {}).get("vpcID"))
        patch.status.update({**failed_status(str(exc), exc.reason, generation=generation, previous=previous),
                             "address": None, "providerID": None, "listeners": None, "backends": None})
        kopf.warn(body, reason="SyncLoadBalancerFailed", message=str(exc))
        raise kopf.PermanentError(str(exc)) from exc
    api_server = None
    if (spec or {}).get("apiServer"):
        try:
            api_server = await _api_server(spec)
        except ValueError as exc:
            patch.status.update(failed_status(str(exc), "ApiServerUnknown", generation=generation, previous=previous))
            raise kopf.TemporaryError(str(exc), delay=5) from exc
    try:
        state = await memo.lbs.ensure(lb_spec(uid, dict(spec), api_server, meta.get("resourceVersion"),
                                              namespace=meta.get("namespace"), name=meta.get("name")),
                                      (status or {}).get("address"))
    except ProviderError as exc:
        patch.status.update(failed_status(str(exc), exc.reason or "ProviderError", generation=generation,
                                          previous=previous))
        kopf.warn(body, reason="SyncLoadBalancerFailed", message=str(exc))
        if exc.reason == "NotSupported":  # never with this spec: the next one may be served
            raise kopf.PermanentError(str(exc)) from exc
        # A refused key or an exhausted quota takes a person to fix: ask again less often.
        raise kopf.TemporaryError(str(exc), delay=10 if exc.retryable else 30) from exc
    patch.status.update(build_status(state, provider=memo.lbs.name, generation=generation, previous=previous))
    if first:
        kopf.info(body, reason="EnsuredLoadBalancer",
                  message=f"{spec.get('addressType', 'internet')} address {state.address}")


async def _api_server(spec) -> tuple[str, int]:
    """The API server of the cluster whose VPC the LB is in: `tenancy.check` has made sure
    that vpcID is the namespace's own cluster (or, for an admin's LB, some cluster's)."""
    vpc = (spec or {}).get("vpcID")
    if (spec or {}).get("addressType") != "intranet" or not vpc:
        raise ValueError("spec.apiServer: only an intranet load balancer in a cluster's VPC may front its API server")
    clusters = await kube.list_objects("serverlessclusters")
    return api_server_address(next((c for c in clusters if c["metadata"]["uid"] == vpc), None))
