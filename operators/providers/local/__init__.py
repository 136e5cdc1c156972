"""The local provider: sandboxes as podman pods on this host (provider.py, the lifecycle
side, with a small kubelet per pod in kubelet/), their streams (streams.py), and the
tenants' VPCs, load balancers and private zones."""
