"""Every cache the virtual node keeps: one list+watch per resource, made and started in one place.

The controllers are handed the informers they read and register their handlers on them;
they never start one. `VirtualNode.run` starts `early` at once and `late` once pods and
SandboxPods are in sync (`late` handlers read those caches, and an event they drop for
want of its pod is not delivered again).
"""
from __future__ import annotations

from dataclasses import dataclass

from .. import API_VERSION
from ..kubeclient.client import KubeClient
from ..kubeclient.informer import Informer
from ..models.contracts import LABEL_CLUSTER_UID
from .mapping.spec import label_value

SANDBOX_EVENT_SELECTOR = "involvedObject.kind=SandboxPod"


def ns_name(obj: dict) -> tuple[str, str]:
    return obj["metadata"]["namespace"], obj["metadata"]["name"]


def name_of(obj: dict) -> str:
    return obj["metadata"]["name"]


def meta_path(meta_namespace: str, plural: str) -> str:
    return f"/apis/{API_VERSION}/namespaces/{meta_namespace}/{plural}"


@dataclass
class NodeInformers:
    # tenant cluster
    node: Informer  # this virtual node's Node only (all Nodes when it registers several: they are all its)
    pods: Informer
    configmaps: Informer
    secrets: Informer
    services: Informer
    slices: Informer
    # meta-cluster, this cluster's objects only
    sandboxes: Informer
    servicelbs: Informer
    sandbox_events: Informer

    @classmethod
    def create(cls, tenant: KubeClient, meta: KubeClient, *, meta_namespace: str, cluster_uid: str,
               node_name: str, all_nodes: bool = False) -> "NodeInformers":
        """`all_nodes`: watch every Node (a field selector names one only); handlers filter."""
        mine = {"labelSelector": f"{LABEL_CLUSTER_UID}={label_value(cluster_uid)}"}
        return cls(
            node=Informer(tenant, "/api/v1/nodes", name="node", key=name_of,
                          params={} if all_nodes else {"fieldSelector": f"metadata.name={node_name}"}),
            pods=Informer(tenant, "/api/v1/pods", name="tenant pods", key=ns_name),
            configmaps=Informer(tenant, "/api/v1/configmaps", name="tenant configmaps", key=ns_name),
            secrets=Informer(tenant, "/api/v1/secrets", name="tenant secrets", key=ns_name),
            services=Informer(tenant, "/api/v1/services", name="tenant services", key=ns_name),
            slices=Informer(tenant, "/apis/discovery.k8s.io/v1/endpointslices", name="endpointslices", key=ns_name),
            sandboxes=Informer(meta, meta_path(meta_namespace, "sandboxpods"), name="sandboxpods", key=name_of,
                               params=mine),
            servicelbs=Informer(meta, meta_path(meta_namespace, "servicelbs"), name="servicelbs", key=name_of,
                                params=mine),
            sandbox_events=Informer(meta, f"/api/v1/namespaces/{meta_namespace}/events", name="sandbox events",
                                    key=name_of, params={"fieldSelector": SANDBOX_EVENT_SELECTOR}),
        )

    @property
    def early(self) -> list[Informer]:
        return [self.sandboxes, self.node, self.pods, self.configmaps, self.secrets, self.services, self.slices,
                self.servicelbs]

    @property
    def late(self) -> list[Informer]:
        return [self.sandbox_events]
