"""subPath resolution of the local provider against a volume full of hostile symlinks: the
walk never leaves the volume, what it opened is what gets mounted, and nothing stays mounted."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from operators.models.podspec import PodSpec
from operators.providers.errors import ProviderError
from operators.providers.sandbox import SandboxRef
from operators.providers.local import subpath, volumes

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="bind mounts need root (the provider runs as root)")

REF = SandboxRef("ns", "default.web", "uid-1")


@pytest.fixture
def host(tmp_path):
    """A volume next to 'host' files that no subPath may reach."""
    vol = tmp_path / "vol"
    vol.mkdir()
    secret = tmp_path / "host-secret"
    secret.mkdir()
    (secret / "shadow").write_text("root:x\n")
    yield vol, secret
    subpath.unmount_all(tmp_path)


def resolved(fd: int) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    finally:
        os.close(fd)


def refused(vol: Path, sub: str, match: str, **kw) -> str:
    with pytest.raises(subpath.SubPathError, match=match) as exc:
        subpath.safe_open(vol, sub, **kw)
    assert str(vol.parent) not in str(exc.value)  # the Event must not describe the host
    return str(exc.value)


def test_subpath_components_are_relative_without_backsteps():
    assert subpath.components("a//./b/") == ["a", "b"]
    assert subpath.components(".") == []
    for bad, match in [("/etc", "relative"), ("..", r"'\.\.'"), ("a/../..", r"'\.\.'"), ("a/..", r"'\.\.'"),
                       ("a\0b", "NUL")]:
        with pytest.raises(subpath.SubPathError, match=match):
            subpath.components(bad)
    assert subpath.components("..data/key") == ["..data", "key"]  # a name, not a backstep


def test_symlinks_out_of_the_volume_are_refused(host):
    vol, secret = host
    (vol / "root").symlink_to("/")
    (vol / "etc").symlink_to("/etc")
    (vol / "up").symlink_to("../host-secret")
    (vol / "deep").mkdir()
    (vol / "deep" / "up2").symlink_to("../../host-secret/shadow")
    (vol / "inside-abs").symlink_to(vol / "deep")  # absolute, though it names the volume's own path
    (vol / "loop").symlink_to("loop")
    refused(vol, "root", "symlink to an absolute path")
    refused(vol, "etc", "symlink to an absolute path")
    refused(vol, "root/etc", "symlink to an absolute path")  # a symlink in an intermediate component
    refused(vol, "up", "leaves the volume")
    refused(vol, "deep/up2", "leaves the volume")
    refused(vol, "inside-abs", "absolute")
    refused(vol, "loop", "too many levels")


def test_a_file_subpath_replaced_by_a_symlink_is_refused(host):
    vol, secret = host
    (vol / "conf").write_text("mine")
    assert resolved(subpath.safe_open(vol, "conf")) == str(vol / "conf")
    (vol / "conf").unlink()
    (vol / "conf").symlink_to(secret / "shadow")
    refused(vol, "conf", "absolute")
    (vol / "conf").unlink()
    (vol / "conf").symlink_to("../host-secret/shadow")
    refused(vol, "conf", "leaves the volume")


def test_symlinks_that_stay_inside_resolve_as_the_kubelets_evalsymlinks(host):
    vol, _ = host
    (vol / "a" / "b").mkdir(parents=True)
    (vol / "a" / "b" / "f").write_text("x")
    (vol / "rel").symlink_to("a/b")
    (vol / "a" / "sib").symlink_to("../a/b/f")
    (vol / "self").symlink_to(".")
    assert resolved(subpath.safe_open(vol, "rel")) == str(vol / "a" / "b")
    assert resolved(subpath.safe_open(vol, "a/sib")) == str(vol / "a" / "b" / "f")
    assert resolved(subpath.safe_open(vol, "self/self/rel/f")) == str(vol / "a" / "b" / "f")
    assert resolved(subpath.safe_open(vol, ".")) == str(vol)


def test_atomic_writer_volumes_resolve_through_their_data_link(host):
    """configMap/secret/downwardAPI: `key -> ..data/key`, `..data -> ..<time>`, as upstream."""
    vol, _ = host
    volumes.write_files(vol, {"app.conf": (b"port=80", 0o644), "dir/b": (b"B", 0o600)})
    stamp = os.readlink(vol / "..data")
    assert resolved(subpath.safe_open(vol, "app.conf")) == str(vol / stamp / "app.conf")
    assert resolved(subpath.safe_open(vol, "..data/dir/b")) == str(vol / stamp / "dir" / "b")
    assert resolved(subpath.safe_open(vol, "dir/b")) == str(vol / stamp / "dir" / "b")
    refused(vol, "missing", "no such file")  # not created in the writer's directory


def test_missing_directories_are_created_beneath_the_volume_only(host):
    vol, secret = host
    fd = subpath.safe_open(vol, "new/sub", create=True, mode=0o777)
    assert resolved(fd) == str(vol / "new" / "sub")
    assert stat.S_IMODE((vol / "new").stat().st_mode) == 0o777  # not narrowed by the umask
    (vol / "esc").symlink_to("../host-secret")
    refused(vol, "esc/planted", "leaves the volume", create=True)
    (vol / "abs").symlink_to(secret)
    refused(vol, "abs/planted", "absolute", create=True)
    assert not (secret / "planted").exists()
    (vol / "file").write_text("x")
    refused(vol, "file/sub", "not a directory", create=True)


def test_bind_mounts_what_was_opened_even_if_the_path_is_swapped_after(host, tmp_path):
    vol, secret = host
    (vol / "d").mkdir()
    (vol / "d" / "mine").write_text("pod data")
    fd = subpath.safe_open(vol, "d")
    # The pod swaps the path between the check and the mount (a sidecar's race).
    os.rename(vol / "d", vol / "moved")
    (vol / "d").symlink_to(secret)
    target = tmp_path / "subpaths" / "data" / "app" / "0"
    try:
        subpath.bind(fd, target)
    finally:
        os.close(fd)
    assert sorted(os.listdir(target)) == ["mine"]
    assert subpath.mounts_under(tmp_path) == [str(target)]
    subpath.release(tmp_path / "subpaths")
    assert subpath.mounts_under(tmp_path) == [] and not (tmp_path / "subpaths").exists()
    assert (vol / "moved" / "mine").read_text() == "pod data"  # release removed nothing of the volume


def test_a_file_is_bound_over_a_file_and_stacked_mounts_all_go(host, tmp_path):
    vol, _ = host
    (vol / "f").write_text("one file")
    target = tmp_path / "t" / "0"
    for _ in range(2):  # mounted twice at one place: both must go
        fd = subpath.safe_open(vol, "f")
        try:
            subpath.bind(fd, target)
        finally:
            os.close(fd)
    assert target.read_text() == "one file"
    assert len(subpath.mounts_under(tmp_path)) == 2
    subpath.release(tmp_path / "t")
    assert subpath.mounts_under(tmp_path) == []


def test_mountinfo_paths_are_unescaped():
    info = "36 35 98:0 / /srv/my\\040vol/x rw,noatime master:1 - ext3 /dev/root rw\n" \
           "37 35 98:0 / /srv/other rw - ext3 /dev/root rw\n"
    assert subpath.mounts_under(Path("/srv/my vol"), info) == ["/srv/my vol/x"]


def pod(mounts, volumes_=None, init_mounts=None) -> PodSpec:
    return PodSpec.model_validate({
        "initContainers": [{"name": "init", "image": "i", "volumeMounts": init_mounts or []}],
        "containers": [{"name": "app", "image": "i", "volumeMounts": mounts}],
        "volumes": volumes_ or [{"name": "data", "emptyDir": {}}, {"name": "cfg", "configMap": {"name": "cm"}}]})


def test_container_subpaths_are_bound_per_run_and_cleaned_with_the_sandbox(tmp_path):
    root = tmp_path / "volumes"
    s = pod([{"name": "data", "mountPath": "/a", "subPath": "logs/app"},
             {"name": "data", "mountPath": "/b"},
             {"name": "cfg", "mountPath": "/etc/app.conf", "subPath": "app.conf"}])
    volumes.prepare(REF, s, root)
    volumes.write_content(REF, s, root, {"cfg": {"app.conf": (b"port=80", 0o644)}})
    app = s.containers[0]
    got = volumes.prepare_subpaths(REF, s, app, root)
    sub = root / REF.uid / ".volume-subpaths"
    assert got == {0: str(sub / "data" / "app" / "0"), 2: str(sub / "cfg" / "app" / "2")}
    assert Path(got[2]).read_text() == "port=80"
    assert volumes.mount_args(REF, s, app, root, got) == [
        f"--volume={got[0]}:/a:rw", f"--volume={root / REF.uid / 'data'}:/b:rw", f"--volume={got[2]}:/etc/app.conf:ro"]
    (root / REF.uid / "data" / "logs" / "app" / "x").write_text("1")
    assert os.listdir(got[0]) == ["x"]

    # The next run: the pod replaced the directory by a link to the host.
    outside = tmp_path / "outside"
    outside.mkdir()
    os.rename(root / REF.uid / "data" / "logs", root / REF.uid / "data" / "old")
    (root / REF.uid / "data" / "logs").symlink_to(outside)
    with pytest.raises(ProviderError) as exc:
        volumes.prepare_subpaths(REF, s, app, root)
    assert exc.value.reason == "CreateContainerConfigError"
    assert str(exc.value).startswith('failed to prepare subPath for volumeMount "data" of container "app": '
                                     '"logs" is a symlink to an absolute path')
    assert subpath.mounts_under(root) == []  # the last run's mounts went before the check
    assert list(outside.iterdir()) == []      # and nothing was created through the link

    volumes.cleanup(REF, root)
    assert subpath.mounts_under(root) == [] and not (root / REF.uid).exists()
    assert outside.exists()


def test_mount_args_never_join_a_subpath_itself(tmp_path):
    s = pod([{"name": "data", "mountPath": "/a", "subPath": "x"}])
    with pytest.raises(ProviderError, match="not prepared"):
        volumes.mount_args(REF, s, s.containers[0], Path("/v"))
    s = pod([{"name": "share", "mountPath": "/a", "subPath": "x"}],
            [{"name": "data", "emptyDir": {}}, {"name": "share", "nfs": {"server": "10.0.0.5", "path": "/e"}}])
    volumes.prepare(REF, s, tmp_path)
    with pytest.raises(ProviderError, match='subPath is not supported on nfs volume "share"') as exc:
        volumes.prepare_subpaths(REF, s, s.containers[0], tmp_path)
    assert exc.value.reason == "CreateContainerConfigError"


def test_a_start_after_the_sandbox_was_cleaned_up_mounts_nothing(tmp_path):
    """A container start cancelled by the sandbox's deletion still finishes its thread: it
    must not bind-mount into (and recreate) a sandbox directory that is gone."""
    s = pod([{"name": "data", "mountPath": "/a", "subPath": "x"}])
    volumes.prepare(REF, s, tmp_path)
    volumes.cleanup(REF, tmp_path)
    with pytest.raises(ProviderError, match="are gone"):
        volumes.prepare_subpaths(REF, s, s.containers[0], tmp_path)
    assert not (tmp_path / REF.uid).exists() and subpath.mounts_under(tmp_path) == []


def test_preparing_the_volumes_again_creates_nothing_through_a_link(tmp_path):
    """prepare runs again on every operator resume, after containers changed the volume: it
    must not create subPath directories itself (it once did, following the pod's links)."""
    s = pod([{"name": "data", "mountPath": "/a", "subPath": "x/new"}])
    root = tmp_path / "volumes"
    volumes.prepare(REF, s, root)
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / REF.uid / "data" / "x").symlink_to(outside)
    volumes.prepare(REF, s, root)
    assert list(outside.iterdir()) == []
    with pytest.raises(ProviderError, match='"x" is a symlink to an absolute path'):
        volumes.prepare_subpaths(REF, s, s.containers[0], root)
    assert list(outside.iterdir()) == []
    volumes.cleanup(REF, root)
