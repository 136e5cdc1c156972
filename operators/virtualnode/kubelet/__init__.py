"""The kubelet HTTPS API the tenant apiserver proxies to: logs, exec, attach, port-forward."""
