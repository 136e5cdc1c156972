from .privatezone import PrivateZone
from .sandboxpod import SandboxPod, SandboxPodSpec, SandboxPodStatus
from .serverlesscluster import ServerlessCluster
from .servicelb import ServiceLB

__all__ = ["PrivateZone", "SandboxPod", "SandboxPodSpec", "SandboxPodStatus", "ServerlessCluster", "ServiceLB"]
