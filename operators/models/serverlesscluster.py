"""ServerlessCluster: a tenant's own Kubernetes control plane plus a virtual node."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from .base import KOPF_STATUS_FIELD, Condition, K8sModel, cel, quantity
from .contracts import DEFAULT_VERSION, MAX_VIRTUAL_NODES, SUPPORTED_VERSIONS


class Quotas(K8sModel):
    maxPods: int | None = Field(default=100, ge=1, le=10000, description="Most pods the tenant may run.")
    cpu: str | int | None = quantity("Total cpu the tenant's pods may request, e.g. '16'.", nonnegative=True)
    memory: str | int | None = quantity("Total memory the tenant's pods may request, e.g. '64Gi'.",
                                      nonnegative=True)


class SecretReference(K8sModel):
    name: str = Field(description="A Secret in the ServerlessCluster's own namespace.", min_length=1,
                      max_length=253, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


class ServerlessClusterSpec(K8sModel):
    version: Literal[SUPPORTED_VERSIONS] = Field(  # type: ignore[valid-type]
        default=DEFAULT_VERSION, description="Kubernetes version of the tenant control plane.")
    provider: Literal["local", "aliyun", "metapod"] = Field(
        default="local", description="Provider for the sandboxes. metapod: Pods of the meta-cluster, on its nodes.")
    region: str | None = Field(default=None, description="Cloud region (aliyun provider only).",
                               pattern=r"^[a-z]{2}-[a-z0-9-]+$")
    credentialsSecretRef: SecretReference | None = Field(
        default=None,
        description="The cloud account the tenant's resources are made in (aliyun provider only): a Secret in this "
                    "namespace with keys access-key-id and access-key-secret. Unset: the installation's account. "
                    "Immutable: the cluster's VPC, instances and load balancers live in that account.")
    quotas: Quotas | None = Field(default=None, description="Limits enforced on the tenant.")
    sleepWhenIdle: bool | None = Field(
        default=None,
        description="Stop the control plane after spec.sleepAfterIdleSeconds with no API request and no pod change; "
                    "pods and load balancers keep serving, and the first request to the endpoint wakes it (the client "
                    "waits a few seconds, and sees no error). status.phase is Sleeping meanwhile.")
    sleepAfterIdleSeconds: int | None = Field(
        default=None, ge=10, le=7 * 24 * 3600,
        description="How long the tenant must be idle before it sleeps (spec.sleepWhenIdle); default 900.")
    # Immutable: the Nodes, their zones and their share of the quota are fixed at claim, and
    # pods bound to a node that went away would have to be moved (nothing does that).
    virtualNodes: int = Field(
        default=1, ge=1, le=MAX_VIRTUAL_NODES,
        description="How many virtual Nodes the tenant cluster has, one per zone; the quotas are split across "
                    "them and kube-scheduler places pods when there is more than one. Immutable.",
        json_schema_extra={"x-kubernetes-validations": [
            cel("self == oldSelf", "spec.virtualNodes is immutable")]})


class NetworkStatus(K8sModel):
    vpcCIDR: str | None = Field(default=None, description="The tenant VPC's address range.")
    podCIDR: str | None = Field(default=None, description="Where the tenant's pods take addresses.")
    serviceCIDR: str | None = Field(
        default=None, description="The tenant apiserver's ClusterIP range: each Service's load balancer and the "
                                  "VPC resolver (kube-system/kube-dns) answer on ClusterIPs of it.")


class ServerlessClusterStatus(K8sModel):
    phase: Literal["Pending", "Provisioning", "Ready", "Sleeping", "Failed", "Deleting"] | None = None
    endpoint: str | None = Field(default=None, description="URL of the tenant's API server.")
    kubeconfigSecretName: str | None = None
    sandboxNamespace: str | None = Field(default=None, description="Meta namespace of the tenant's SandboxPods.")
    nodeName: str | None = Field(default=None, description="The tenant's (first) virtual node.")
    nodeNames: list[str] | None = Field(default=None, description="All of the tenant's virtual nodes.")
    network: NetworkStatus | None = Field(default=None, description="The tenant's address plan (unset for a "
                                                                    "cluster made before plans: 10.96.0.0/16).")
    version: str | None = None
    conditions: list[Condition] | None = None
    pods: int | None = Field(default=None, description="Pods the tenant runs.")
    requestedCPU: str | None = None
    requestedMemory: str | None = None
    observedGeneration: int | None = None
    message: str | None = None
    kopf: dict | None = KOPF_STATUS_FIELD


class ServerlessCluster(K8sModel):
    """A tenant Kubernetes cluster with no nodes to manage."""

    spec: ServerlessClusterSpec = Field(
        json_schema_extra={"x-kubernetes-validations": [
            cel("self.provider != 'aliyun' || has(self.region)", "region is required for the aliyun provider",
                field_path=".region"),
            # The tenant's network, sandboxes and load balancers live with the provider, in
            # the region and the account they were made in; nothing moves them.
            cel("self.provider == oldSelf.provider", "spec.provider is immutable: delete and re-create",
                field_path=".provider"),
            cel("has(self.region) == has(oldSelf.region) && (!has(self.region) || self.region == oldSelf.region)",
                "spec.region is immutable: delete and re-create", field_path=".region"),
            cel("self.provider == 'aliyun' || !has(self.credentialsSecretRef)",
                "spec.credentialsSecretRef: only the aliyun provider takes a cloud account", field_path=".credentialsSecretRef"),
            cel("has(self.credentialsSecretRef) == has(oldSelf.credentialsSecretRef) && (!has(self.credentialsSecretRef)"
                " || self.credentialsSecretRef.name == oldSelf.credentialsSecretRef.name)",
                "spec.credentialsSecretRef is immutable: the cluster's cloud resources live in its account",
                field_path=".credentialsSecretRef"),
            # Each node's pod capacity is its share of maxPods (at least one pod each).
            cel("!has(self.quotas) || !has(self.quotas.maxPods) || self.quotas.maxPods >= self.virtualNodes",
                "spec.quotas.maxPods must be at least spec.virtualNodes", field_path=".virtualNodes"),
        ]},
    )
    status: ServerlessClusterStatus | None = None
