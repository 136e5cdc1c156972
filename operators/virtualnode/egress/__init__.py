"""The tenant apiserver's egress: a CONNECT proxy that lets it reach its own VPC and kubelet only."""
