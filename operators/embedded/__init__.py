"""The embedded meta-cluster: etcd, kube-apiserver and the operators on this host."""
