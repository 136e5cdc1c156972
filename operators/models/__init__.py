from .sandboxpod import SandboxPod, SandboxPodSpec, SandboxPodStatus
from .serverlesscluster import ServerlessCluster
from .servicelb import ServiceLB

__all__ = ["SandboxPod", "SandboxPodSpec", "SandboxPodStatus", "ServerlessCluster", "ServiceLB"]
