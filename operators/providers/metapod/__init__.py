"""The metapod provider: each SandboxPod runs as one Pod of the meta-cluster, on its nodes
(the meta-cluster's scheduler places it, its kubelets run it)."""
