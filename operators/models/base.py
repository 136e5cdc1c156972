"""Shared pieces of the CRD models: the base class, schema helpers and conditions.

The pydantic models are the single source of truth for the CRDs: `operators.crdgen`
turns their JSON schema into structural OpenAPI v3. Kubernetes-specific schema
keywords travel through `json_schema_extra`.
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# Kubernetes resource.Quantity, as the apiserver's own validation accepts it.
QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
DNS1123_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS1123_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
# Environment variable names as v1.37 validates them (RelaxedEnvironmentVariableValidation,
# GA and locked since 1.34): printable ASCII except "=".
C_IDENTIFIER_ENV = r"^[ -<>-~]+$"


def cel(rule: str, message: str, field_path: str | None = None, reason: str | None = None) -> dict:
    """One x-kubernetes-validations entry."""
    entry: dict[str, Any] = {"rule": rule, "message": message}
    if field_path:
        entry["fieldPath"] = field_path
    if reason:
        entry["reason"] = reason
    return entry


# The same without a sign: amounts that cannot be negative (quotas, capacities).
NONNEGATIVE_QUANTITY_PATTERN = QUANTITY_PATTERN.replace(r"^(\+|-)?", "^", 1)


def quantity(description: str, *, nonnegative: bool = False) -> Any:
    """A Kubernetes quantity: a string or a number, validated like the apiserver does."""
    extra: dict[str, Any] = {"x-kubernetes-int-or-string": True, "pattern": QUANTITY_PATTERN}
    if nonnegative:
        # The pattern applies to strings only; an integer is checked by a rule.
        extra["pattern"] = NONNEGATIVE_QUANTITY_PATTERN
        extra["x-kubernetes-validations"] = [cel("type(self) == string || self >= 0", "must not be negative")]
    return Field(default=None, description=description, json_schema_extra=extra)


class K8sModel(BaseModel):
    """camelCase on the wire, as every Kubernetes API object."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    def to_wire(self) -> dict:
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class Condition(K8sModel):
    """A status condition per the Kubernetes API conventions."""

    type: str = Field(description="Type of condition in CamelCase.", max_length=316)
    status: Literal["True", "False", "Unknown"]
    reason: str | None = Field(default=None, description="Machine-readable reason, CamelCase.")
    message: str | None = Field(default=None, description="Human-readable details.")
    lastTransitionTime: str | None = Field(
        default=None, description="When the status last changed.", json_schema_extra={"format": "date-time"}
    )
    observedGeneration: int | None = Field(
        default=None, description="The .metadata.generation this condition was set against.", ge=0
    )


class LocalObjectRef(K8sModel):
    name: str = Field(description="Name of the referenced object.", min_length=1, max_length=253,
                      pattern=DNS1123_SUBDOMAIN)


KOPF_STATUS_FIELD = Field(
    default=None,
    description="Operator bookkeeping (kopf progress); not for users.",
    json_schema_extra={"x-kubernetes-preserve-unknown-fields": True, "type": "object"},
)
