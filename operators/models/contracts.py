"""Keys that cross operators: labels, annotations, finalizers, condition types, versions.

Each operator runs as its own process and reads what another wrote (a virtual node
labels a SandboxPod, the SandboxPod operator and its provider act on those labels), so a
key spelled twice is a contract that can drift silently. Every such key is defined here
once, beside the models, as kubebuilder keeps its keys beside the API types; writers
and readers import it from here. tests/unit/test_contracts.py fails when an
`sk8s.io/...` literal appears anywhere else in operators/.

They are spelled out (not built from operators.GROUP) so that a key seen in `kubectl
get -o yaml` is found here by grep.

Logic over these keys (label_value, sandbox_namespace, tenancy checks) stays with the
module that owns it; only the keys live here.
"""
from __future__ import annotations

# --- Tenant identity -------------------------------------------------------------------
# Written by the ServerlessCluster operator on the tenant's meta namespace (and its
# kubeconfig Secret), by the virtual node on the SandboxPods, ServiceLBs and PrivateZone it
# writes, by the SandboxPod operator on the labels it hands the provider. Read by
# tenancy.py (whose namespace is whose), the virtual node (its informers' selector) and
# the local provider (which VPC a sandbox joins).
LABEL_CLUSTER = "sk8s.io/cluster"  # the ServerlessCluster's name
LABEL_CLUSTER_UID = "sk8s.io/cluster-uid"  # its uid, which is also its VPC's id
# On a tenant's meta namespace: its cluster's provider (absent: local), set at creation
# (ServerlessCluster.spec.provider is immutable); the objects in it must name the same.
LABEL_PROVIDER = "sk8s.io/provider"

# --- Tenant pod <-> SandboxPod -----------------------------------------------------------
# Written by the virtual node on each SandboxPod (virtualnode/mapping/spec.py), read back
# by the virtual node to find a SandboxPod's pod. Label values stop at 63 characters, so
# the annotations (same keys) keep the exact namespace and name.
LABEL_POD_NAMESPACE = "sk8s.io/pod-namespace"
LABEL_POD_NAME = "sk8s.io/pod-name"
LABEL_POD_UID = "sk8s.io/pod-uid"
ANNOTATION_POD_NAMESPACE = "sk8s.io/pod-namespace"
ANNOTATION_POD_NAME = "sk8s.io/pod-name"
# The grace period of a deletion when it differs from spec.terminationGracePeriodSeconds
# (`kubectl delete --grace-period`): custom resources have no graceful deletion of their
# own. Written by the virtual node before it deletes a SandboxPod, read by the SandboxPod
# operator's delete handler.
ANNOTATION_DELETION_GRACE = "sk8s.io/deletion-grace-period-seconds"

# --- Tenant Service <-> ServiceLB ---------------------------------------------------------
# Written by the virtual node on each ServiceLB (virtualnode/mapping/services.py), read by
# its service controller to requeue the Service of a changed ServiceLB.
LABEL_SERVICE_NAMESPACE = "sk8s.io/service-namespace"
LABEL_SERVICE_NAME = "sk8s.io/service-name"
LABEL_SERVICE_UID = "sk8s.io/service-uid"
# The metapod LoadBalancers provider: its meta Services name their ServiceLB; with an address
# pool of its own it is the load-balancer controller of this class (config.metapod_lb_settings).
LABEL_LB_UID = "sk8s.io/servicelb-uid"
METAPOD_LB_CLASS = "sk8s.io/metapod-pool"

# --- Volume content Secrets ---------------------------------------------------------------
# Written by the virtual node on the Secret carrying a pod's volume files
# (operators/volumecontent.py), watched by the SandboxPod operator (its label selector),
# which hands changed content (the hash says whether it did) to the provider.
LABEL_VOLUME_CONTENT = "sk8s.io/volume-content"
ANNOTATION_CONTENT_HASH = "sk8s.io/volume-content-hash"

# --- Host objects of the local provider (podman labels) ----------------------------------
# Written and read by providers/local only (pods, containers, volumes, networks); `sk8s
# down` removes what carries this home's LABEL_HOME. LABEL_CLUSTER_UID (above) on a
# network names the tenant VPC it is. providers/aliyun tags its cloud resources with the
# same keys (LABEL_HOME, LABEL_CLUSTER_UID, LABEL_SANDBOX_*): its sweep and GC read them back.
LABEL_HOME = "sk8s.io/home"                    # config.home_id(): one installation's objects
LABEL_SANDBOX_NAMESPACE = "sk8s.io/namespace"  # the SandboxPod's namespace, name and uid
LABEL_SANDBOX_NAME = "sk8s.io/name"
LABEL_SANDBOX_UID = "sk8s.io/uid"
# The SandboxPod's name on what a provider makes for it in the meta-cluster (a metapod
# Pod, its files Secret): a name may be too long for a label value.
ANNOTATION_SANDBOX_NAME = "sk8s.io/sandbox-name"
LABEL_CONTAINER = "sk8s.io/container"          # the container's name in the pod spec
LABEL_INIT_CONTAINER = "sk8s.io/init-container"  # "true" on an init container
LABEL_EPHEMERAL_CONTAINER = "sk8s.io/ephemeral-container"  # "true" on a container added by `kubectl debug`
LABEL_CONTAINER_IMAGE = "sk8s.io/image"         # the image its spec named (a pod's image may change)
LABEL_VPC = "sk8s.io/vpc"                      # a VPC's network and anchor pod

# --- Finalizers ---------------------------------------------------------------------------
# Each set and removed by kopf for the one operator that owns the kind (kopfsettings.py):
# the object stays until that operator has released what it holds outside the apiserver.
FINALIZER_SANDBOXPOD = "sk8s.io/sandbox"
FINALIZER_SERVERLESSCLUSTER = "sk8s.io/serverlesscluster"
FINALIZER_SERVICELB = "sk8s.io/servicelb"
FINALIZER_PRIVATEZONE = "sk8s.io/privatezone"
# kopf's own annotation prefix: `sk8s.io/last-handled-configuration`, the diff base.
KOPF_ANNOTATION_PREFIX = "sk8s.io"
# `sk8s cluster sleep|wake NAME` asks the ServerlessCluster operator through this annotation
# ("sleep" or "wake"), which the operator removes once it acted. Not under sk8s.io/: kopf
# keeps its own state there and ignores changes of those annotations.
ANNOTATION_POWER_REQUEST = "power.sk8s.io/request"
REASON_SLEEPING = "Sleeping"

# A tenant control plane run as meta-cluster workloads (serverlesscluster/podplane.py): every
# object of one plane carries its id; the claim Secret names the cluster that owns it.
LABEL_PLANE = "sk8s.io/plane"
LABEL_CLAIMED_BY = "sk8s.io/claimed-by"

# --- Condition types and reasons ----------------------------------------------------------
# Every sk8s kind reports Ready (what `kubectl wait --for=condition=Ready` and the CRDs'
# printer columns read). A SandboxPod's Initialized and ContainersReady (written by
# sandboxpod/status.py) are read by the virtual node for the tenant pod's conditions.
CONDITION_READY = "Ready"
CONDITION_SCHEDULED = "Scheduled"
CONDITION_INITIALIZED = "Initialized"
CONDITION_CONTAINERS_READY = "ContainersReady"
# A ServerlessCluster's (serverlesscluster/status.py; `sk8s down` goes through it too).
CONDITION_CONTROL_PLANE_READY = "ControlPlaneReady"
CONDITION_VIRTUAL_NODE_READY = "VirtualNodeReady"
# Whether the cluster's provider accepted its account and built its network (the cloud's
# error code as the reason when not).
CONDITION_PROVIDER_READY = "ProviderReady"
# Container waiting reasons, as a kubelet names them: raised by providers, reported by the
# SandboxPod operator, mirrored onto tenant pods by the virtual node.
REASON_CONFIG_ERROR = "CreateContainerConfigError"
REASON_ERR_IMAGE_PULL = "ErrImagePull"
REASON_IMAGE_PULL_BACKOFF = "ImagePullBackOff"
# A ServerlessCluster or SandboxPod naming a provider this installation does not have.
REASON_PROVIDER_UNAVAILABLE = "ProviderUnavailable"

# --- The tenant's Node ------------------------------------------------------------------------
# The name the virtual node registers its Node under (the ServerlessCluster operator passes
# it as --node-name, checks that Node's health and reports it as status.nodeName).
VIRTUAL_NODE_NAME = "virtual-node"
# spec.virtualNodes: how many Nodes one virtual-node process may register for a tenant.
MAX_VIRTUAL_NODES = 5


def virtual_node_names(count: int, first: str = VIRTUAL_NODE_NAME) -> list[str]:
    """The Nodes of a tenant with `count` virtual nodes: the first keeps its name (a
    single-node cluster is unchanged), the others are `<first>-1`, `<first>-2`, ..."""
    return [first] + [f"{first}-{i}" for i in range(1, count)]

# --- Kubernetes versions --------------------------------------------------------------------
# The versions whose control-plane binaries sk8s builds (hack/build-components.sh); the
# ServerlessCluster schema allows these, and the operator defaults to the first.
SUPPORTED_VERSIONS = ("v1.37.2",)
DEFAULT_VERSION = SUPPORTED_VERSIONS[0]

# --- Tenant networks --------------------------------------------------------------------------
# Service ClusterIPs of every tenant apiserver (and the meta one): the embedded components
# pass it to kube-apiserver, the supervisor rejects it on the host, the local provider's
# policy treats it as the services' range.
SERVICE_CIDR = "10.96.0.0/16"
# The tenant DNS domain: pods' search path (virtual node), the PrivateZone it writes, the
# privatezone operator's default zone.
CLUSTER_DOMAIN = "cluster.local"
# Service environment variables a SandboxPod carries at most (its schema, and the virtual
# node, which refuses a pod over it naming spec.enableServiceLinks).
MAX_SERVICE_ENV = 10000
