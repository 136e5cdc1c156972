"""podman's error text, as it reaches a tenant: no doubled prefix, no host paths."""
from __future__ import annotations

from operators.providers.errors import ImagePullError
from operators.providers.local.podman import scrub_host_paths
from operators.providers.local.runtime import PodmanRuntime


def test_host_paths_are_replaced_longest_first():
    msg = "statfs /home/x/sk8s/volumes/uid/data/x: no such file or directory; see /home/x/sk8s/logs"
    out = scrub_host_paths(msg, {"/home/x/sk8s": "<sk8s>", "/home/x/sk8s/volumes": "<volumes>"})
    assert out == "statfs <volumes>/uid/data/x: no such file or directory; see <sk8s>/logs"
    assert scrub_host_paths("a / b", {"/": "<root>", "": "x"}) == "a / b"


def test_classified_run_error_has_neither_prefix_nor_host_path(tmp_path, monkeypatch):
    monkeypatch.setenv("SK8S_HOME", str(tmp_path))
    runtime = PodmanRuntime.__new__(PodmanRuntime)
    # volume_root is a property (as the runtime reads it): patched as one, so that calling it fails here too
    monkeypatch.setattr(PodmanRuntime, "volume_root", property(lambda self: tmp_path / "volumes"))
    err = runtime._classify("img", f"time=x level=warning\nError: statfs {tmp_path}/volumes/u/d/x: no such file\n")
    assert str(err) == "statfs <volumes>/u/d/x: no such file"
    assert err.reason == "RunContainerError"
    assert str(tmp_path) not in str(err)
    pull = runtime._classify("img", "Trying to pull img...\nError: initializing source: connection refused\n")
    assert isinstance(pull, ImagePullError) and "Error: " not in str(pull)
