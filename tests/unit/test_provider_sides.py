"""The provider's two sides and the local kubelet's runtime protocol hold as designed: the
streaming side is made without importing the lifecycle side (the virtual node's process),
the kubelet worker knows the runtime only through its protocol, and PodmanRuntime has
every call of that protocol with the same signature."""
from __future__ import annotations

import inspect
import subprocess
import sys

from operators.providers.local.kubelet.runtime import ContainerRuntime
from operators.providers.local.runtime import PodmanRuntime

LIFECYCLE = ("operators.providers.local.provider", "operators.providers.local.vpc",
             "operators.providers.local.networks", "operators.providers.local.kubelet.worker")


def _modules_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", f"{code}\nimport sys\nprint('\\n'.join(sys.modules))"],
                         capture_output=True, text=True, check=True).stdout
    return set(out.split())


def test_the_streaming_side_is_made_without_the_lifecycle_side(tmp_path):
    loaded = _modules_after(f"import os\nos.environ['SK8S_HOME'] = {str(tmp_path)!r}\n"
                            "from operators.providers import make_streams\nmake_streams('local')")
    assert "operators.providers.local.streams" in loaded
    assert not loaded & set(LIFECYCLE), loaded & set(LIFECYCLE)


def test_the_kubelet_worker_does_not_import_the_provider():
    loaded = _modules_after("import operators.providers.local.kubelet.worker")
    assert "operators.providers.local.provider" not in loaded
    assert "operators.providers.local.runtime" not in loaded  # the protocol, not podman's implementation


def test_podman_runtime_implements_the_kubelet_protocol():
    wanted = {n: f for n, f in vars(ContainerRuntime).items() if callable(f) and not n.startswith("_")}
    assert {"create_container", "inspect_container", "exec_command", "pod_netns"} <= set(wanted)
    for name, proto in wanted.items():
        impl = getattr(PodmanRuntime, name)
        assert inspect.iscoroutinefunction(impl) == inspect.iscoroutinefunction(proto), name
        assert list(inspect.signature(impl).parameters) == list(inspect.signature(proto).parameters), name
