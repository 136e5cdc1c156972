"""The virtual node: one per tenant cluster, it makes the tenant's pods run as SandboxPods.

It stands where a kubelet (and, with a single node to choose from, the scheduler) would:
it registers a Node in the tenant cluster, binds the tenant's pods to it, mirrors each
bound pod as a SandboxPod in the meta-cluster, carries the SandboxPod status back and
serves the kubelet API (`kubectl logs`) that the tenant apiserver proxies to.

    python -m operators.virtualnode --tenant-kubeconfig ... --meta-kubeconfig ... (see --help)
"""
