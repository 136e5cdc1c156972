"""PrivateZone: a private DNS zone bound to VPCs (Alibaba Cloud PrivateZone's model).

A zone (e.g. `cluster.local`) holds record sets (RR relative to the zone, type, values,
TTL) and answers only inside the VPCs it is bound to. sk8s gives each tenant cluster
one zone, bound to the tenant's VPC, with a record set per Service.
"""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from .base import DNS1123_SUBDOMAIN, KOPF_STATUS_FIELD, Condition, K8sModel, LocalObjectRef, cel
from .contracts import CLUSTER_DOMAIN

RECORD_TYPES = ("A", "AAAA", "CNAME", "SRV", "TXT", "PTR")


class ZoneRecord(K8sModel):
    rr: str = Field(min_length=1, max_length=253, pattern=r"^(@|\*|[A-Za-z0-9_]([-A-Za-z0-9_]*[A-Za-z0-9_])?"
                    r"(\.[A-Za-z0-9_]([-A-Za-z0-9_]*[A-Za-z0-9_])?)*)$",
                    description="Name relative to the zone (`nginx.default.svc`), or @ for the apex.")
    type: Literal["A", "AAAA", "CNAME", "SRV", "TXT", "PTR"] = "A"
    values: list[str] = Field(min_length=1, max_length=1000,
                              description="Record data; SRV as `priority weight port target`.")
    ttl: int = Field(default=5, ge=0, le=86400, description="Seconds resolvers may cache the answer.")


class PrivateZoneSpec(K8sModel):
    zoneName: str = Field(default=CLUSTER_DOMAIN, min_length=1, max_length=253, pattern=DNS1123_SUBDOMAIN)
    clusterRef: LocalObjectRef | None = None
    provider: Literal["local", "aliyun"] | None = Field(
        default=None, description="Provider that serves the zone (its cluster's); defaults to local.")
    vpcIDs: list[Annotated[str, Field(min_length=1, max_length=128)]] = Field(
        min_length=1, max_length=16, description="VPCs the zone answers in (sk8s: the tenant cluster's uid).",
        json_schema_extra={"x-kubernetes-list-type": "set"})
    records: list[ZoneRecord] | None = Field(
        default=None, max_length=20000,
        # One record set per rr and type, enforced by the apiserver as list-map keys.
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["rr", "type"]})


class PrivateZoneStatus(K8sModel):
    phase: Literal["Pending", "Ready", "Failed"] | None = None
    resolvers: list[str] | None = Field(default=None, description="Addresses of the resolvers in the bound VPCs.")
    recordCount: int | None = None
    providerID: str | None = None
    conditions: list[Condition] | None = None
    observedGeneration: int | None = None
    message: str | None = None
    kopf: dict | None = KOPF_STATUS_FIELD


class PrivateZone(K8sModel):
    """A private DNS zone answering inside the VPCs it is bound to."""

    spec: PrivateZoneSpec = Field(json_schema_extra={"x-kubernetes-validations": [
        cel("(has(self.provider) ? self.provider : 'local') == (has(oldSelf.provider) ? oldSelf.provider : 'local')",
            "provider is immutable: delete and re-create", field_path=".provider"),
    ]})
    status: PrivateZoneStatus | None = None
