"""ServiceLB: a load balancer for one tenant Service (local proxy or Alibaba SLB).

The shape follows an SLB instance: an address of a type (internet, or intranet inside a
VPC), listeners (port, protocol, backend port) and a backend server group. The virtual
node keeps `backends` equal to the Service's ready endpoints.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from .base import DNS1123_LABEL, KOPF_STATUS_FIELD, Condition, K8sModel, LocalObjectRef, cel


class ServiceRef(K8sModel):
    namespace: str = Field(min_length=1, max_length=63, pattern=DNS1123_LABEL)
    name: str = Field(min_length=1, max_length=63, pattern=DNS1123_LABEL)


class Listener(K8sModel):
    name: str | None = Field(default=None, max_length=63)
    protocol: Literal["TCP", "UDP"] = "TCP"
    port: int = Field(ge=1, le=65535, description="Port the load balancer listens on.")
    targetPort: int = Field(ge=1, le=65535, description="Port on the backends.")


class BackendPort(K8sModel):
    protocol: Literal["TCP", "UDP"] = "TCP"
    port: int = Field(ge=1, le=65535, description="The listener's port.")
    targetPort: int = Field(ge=1, le=65535, description="Port on this backend.")


class Backend(K8sModel):
    ip: str = Field(min_length=1, description="Backend (pod) IP.")
    ready: bool = True
    targetRef: str | None = Field(default=None, description="namespace/name of the backing pod.")
    ports: list[BackendPort] | None = Field(
        default=None, max_length=64,
        description="The listeners this backend serves, each on its own port (a Service's EndpointSlices may "
                    "list different ports). Unset: every listener, on the listener's targetPort.")


class ServiceLBSpec(K8sModel):

    clusterRef: LocalObjectRef | None = None
    provider: Literal["local", "aliyun", "metapod"] | None = Field(
        default=None, description="Provider that serves the load balancer (its cluster's); defaults to local.")
    service: ServiceRef | None = Field(default=None, description="The tenant Service this LB serves.")
    addressType: Literal["internet", "intranet"] = Field(
        default="internet", description="internet (public address) or intranet (VPC-only).")
    vpcID: str | None = Field(
        default=None, max_length=128,
        description="The VPC of the backends, and of an intranet address; sk8s gives each tenant cluster its "
                    "own VPC, named by the ServerlessCluster's uid. Backends outside it are refused.")
    loadBalancerIP: str | None = Field(
        default=None, max_length=45,
        description="The address wanted (the Service's spec.loadBalancerIP): taken if free and in the range of "
                    "the address type, else refused with a SyncLoadBalancerFailed Event naming this field.")
    listeners: list[Listener] = Field(
        min_length=1,
        max_length=64,
        json_schema_extra={"x-kubernetes-validations": [
            cel("self.all(l, self.exists_one(m, m.port == l.port && m.protocol == l.protocol))",
                "listener port and protocol must be unique"),
        ]},
    )
    backends: list[Backend] | None = Field(default=None, max_length=10000)
    sessionAffinityTimeoutSeconds: int | None = Field(
        default=None, ge=1, le=86400,
        description="The Service's sessionAffinity ClientIP: each client address keeps its backend while it "
                    "connects again within this many seconds (kube-proxy's rule). Unset: round robin.")
    apiServer: bool | None = Field(
        default=None,
        description="The backend is the API server of the cluster whose VPC is vpcID (a tenant's `kubernetes` "
                    "Service): the operator finds its address from that ServerlessCluster, every listener "
                    "forwards to it (targetPort and backends are not used). Intranet only.")


class BackendStatus(K8sModel):
    ip: str
    port: int | None = None
    healthy: bool = False
    message: str | None = None


class ListenerStatus(K8sModel):
    protocol: Literal["TCP", "UDP"] = "TCP"
    port: int
    targetPort: int
    healthyBackends: int = 0


class ServiceLBStatus(K8sModel):
    phase: Literal["Pending", "Provisioning", "Ready", "Failed"] | None = None
    address: str | None = None
    providerID: str | None = None
    listeners: list[ListenerStatus] | None = None
    backends: list[BackendStatus] | None = None
    conditions: list[Condition] | None = None
    observedGeneration: int | None = None
    message: str | None = None
    kopf: dict | None = KOPF_STATUS_FIELD


class ServiceLB(K8sModel):
    """A load balancer in front of a tenant Service."""

    spec: ServiceLBSpec = Field(json_schema_extra={"x-kubernetes-validations": [
        cel("self.addressType != 'intranet' || has(self.vpcID)", "vpcID is required for an intranet address",
            field_path=".vpcID"),
        cel("!has(oldSelf.vpcID) || (has(self.vpcID) && self.vpcID == oldSelf.vpcID)", "vpcID is immutable",
            field_path=".vpcID"),
        cel("self.addressType == oldSelf.addressType", "addressType is immutable: delete and re-create",
            field_path=".addressType"),
        cel("(has(self.provider) ? self.provider : 'local') == (has(oldSelf.provider) ? oldSelf.provider : 'local')",
            "provider is immutable: delete and re-create", field_path=".provider"),
        cel("!has(self.apiServer) || !self.apiServer || self.addressType == 'intranet'",
            "apiServer: only an intranet load balancer may front the API server", field_path=".apiServer"),
    ]})
    status: ServiceLBStatus | None = None
