"""sk8s: a serverless Kubernetes built as a set of independent kopf operators."""

GROUP = "sk8s.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
