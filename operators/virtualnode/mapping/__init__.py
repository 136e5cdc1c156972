"""Pure mappings between tenant objects and meta-cluster objects (no I/O)."""

DEFAULT_PROVIDER = "local"


def with_provider(obj: dict, provider: str) -> dict:
    """A meta-cluster object (SandboxPod, ServiceLB, PrivateZone) made for a cluster on
    another provider than the default names it: that provider's operators take it."""
    if provider and provider != DEFAULT_PROVIDER:
        obj["spec"]["provider"] = provider
    return obj
