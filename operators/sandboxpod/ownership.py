"""Which SandboxPods this operator takes: those of its provider.

Each provider has a SandboxPod operator of its own (the default `local` one, and one per
configured cloud provider), as each virtual-kubelet provider runs its own node. The
default operator also takes the SandboxPods naming a provider this installation does not
have, to refuse them by name (`handle_create_sandboxpod.admitted`): nobody else would.
"""
from __future__ import annotations

from ..config import provider_name
from ..kopfsettings import DEFAULT_PROVIDER, provider_of
from ..providers import available_providers

__all__ = ["DEFAULT_PROVIDER", "provider_of", "takes"]


def takes(spec, **_) -> bool:
    """kopf's `when=` filter of every SandboxPod handler."""
    wanted, mine = provider_of(spec), provider_name()
    return wanted == mine or (mine == DEFAULT_PROVIDER and wanted not in available_providers())
