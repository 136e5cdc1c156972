"""The ServerlessCluster operator: a tenant's own Kubernetes control plane plus a virtual node."""
