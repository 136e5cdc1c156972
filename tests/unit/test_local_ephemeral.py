"""Ephemeral-storage eviction decisions (pure), du, and fsGroup ownership of volumes."""
import os
import stat

import pytest

from operators.models.podspec import PodSpec
from operators.providers.sandbox import SandboxRef
from operators.providers.local import fsgroup
from operators.providers.local.kubelet import ephemeral
from operators.providers.local.volumes import volume_dir, write_files

MI = 2**20


def spec(*limits, init=(), volumes=None) -> PodSpec:
    def c(name, lim, **extra):
        out = {"name": name, "image": "i", **extra}
        if lim is not None:
            out["resources"] = {"limits": {"ephemeral-storage": lim}}
        return out
    body = {"containers": [c(f"c{i}", lim) for i, lim in enumerate(limits)]}
    if init:
        body["initContainers"] = [c(f"i{i}", lim, **extra) for i, (lim, extra) in enumerate(init)]
    if volumes:
        body["volumes"] = volumes
    return PodSpec.model_validate(body)


def test_no_limit_no_watch():
    assert not ephemeral.limits(spec(None, None))


def test_pod_limit_is_the_sum_of_the_containers_limits():
    lim = ephemeral.limits(spec("10Mi", "5Mi", None))
    assert lim.pod == (15 * MI, "15Mi")
    assert lim.containers == {"c0": (10 * MI, "10Mi"), "c1": (5 * MI, "5Mi")}


def test_pod_limit_counts_sidecars_and_the_largest_init_container():
    lim = ephemeral.limits(spec("10Mi", init=[("100Mi", {}), ("1Mi", {"restartPolicy": "Always"})]))
    assert lim.pod == (100 * MI, "100Mi")
    lim = ephemeral.limits(spec("10Mi", init=[("2Mi", {}), ("1Mi", {"restartPolicy": "Always"})]))
    assert lim.pod == (11 * MI, "11Mi") and "i1" in lim.containers and "i0" not in lim.containers


@pytest.mark.parametrize("raw,printed", [("10Mi", "10Mi"), ("10240Ki", "10Mi"), ("50M", "50M"), ("1G", "1G"),
                                         ("1500000", "1500k"), ("1.5Gi", "1536Mi")])
def test_limits_print_as_the_kubelet_prints_quantities(raw, printed):
    assert ephemeral.limits(spec(raw)).pod[1] == printed


def test_a_container_past_its_limit_is_evicted_with_the_kubelets_message():
    lim = ephemeral.limits(spec("10Mi", "100Mi"))
    assert ephemeral.decide(lim, {"c0": 9 * MI, "c1": 50 * MI}, {}) is None
    assert ephemeral.decide(lim, {"c0": 11 * MI, "c1": 0}, {}) == \
        'Container c0 exceeded its local ephemeral storage limit "10Mi". '


def test_the_pod_total_includes_its_local_volumes():
    lim = ephemeral.limits(spec("10Mi"))
    assert ephemeral.decide(lim, {"c0": 5 * MI}, {"scratch": 6 * MI}) == \
        "Pod ephemeral local storage usage exceeds the total limit of containers 10Mi. "
    assert ephemeral.decide(lim, {"c0": 5 * MI}, {"scratch": 4 * MI}) is None


def test_local_volumes_are_disk_empty_dirs_config_maps_and_downward_api():
    s = spec("1Mi", volumes=[{"name": "disk", "emptyDir": {}}, {"name": "sized", "emptyDir": {"sizeLimit": "5Mi"}},
                             {"name": "mem", "emptyDir": {"medium": "Memory"}},
                             {"name": "cm", "configMap": {"name": "x"}}, {"name": "sec", "secret": {"secretName": "x"}},
                             {"name": "down", "downwardAPI": {"items": []}}])
    assert ephemeral.local_volumes(s) == ["disk", "sized", "cm", "down"]


def test_disk_usage_counts_blocks_and_follows_no_symlink(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "big").write_bytes(os.urandom(3 * MI))
    (tmp_path / "sparse").touch()
    os.truncate(tmp_path / "sparse", 1 << 30)  # 1 GiB that occupies nothing
    os.symlink("/usr", tmp_path / "link")
    used = ephemeral.disk_usage(str(tmp_path))
    assert 3 * MI <= used < 4 * MI
    assert ephemeral.disk_usage(str(tmp_path / "missing")) == 0


REF = SandboxRef("ns", "p", "uid-1")


def test_fs_group_owns_empty_dirs_setgid_and_content_read_only(tmp_path):
    s = PodSpec.model_validate({
        "containers": [{"name": "c", "image": "i"}], "securityContext": {"fsGroup": 4321},
        "volumes": [{"name": "scratch", "emptyDir": {}}, {"name": "cm", "configMap": {"name": "x"}}]})
    scratch = volume_dir(tmp_path, REF, "scratch")
    scratch.mkdir(parents=True)
    os.chmod(scratch, 0o777)
    write_files(volume_dir(tmp_path, REF, "cm"), {"a.conf": (b"x", 0o600), "sub/b": (b"y", 0o644)})
    fsgroup.apply(REF, s, tmp_path)
    st = scratch.stat()
    assert st.st_gid == 4321 and stat.S_IMODE(st.st_mode) == 0o2777
    f = volume_dir(tmp_path, REF, "cm") / "a.conf"
    assert f.stat().st_gid == 4321 and stat.S_IMODE(f.stat().st_mode) == 0o640
    assert os.lstat(f).st_gid == 4321  # the user-visible symlink itself too
    sub = (volume_dir(tmp_path, REF, "cm") / "sub").resolve()
    assert sub.stat().st_gid == 4321 and sub.stat().st_mode & stat.S_ISGID


def test_fs_group_never_follows_a_symlink_out_of_the_volume(tmp_path):
    outside = tmp_path / "host-file"
    outside.write_text("host")
    os.chmod(outside, 0o600)
    s = PodSpec.model_validate({"containers": [{"name": "c", "image": "i"}], "securityContext": {"fsGroup": 99},
                                "volumes": [{"name": "cm", "configMap": {"name": "x"}}]})
    d = volume_dir(tmp_path, REF, "cm")
    d.mkdir(parents=True)
    os.symlink(outside, d / "escape")
    fsgroup.apply(REF, s, tmp_path)
    assert outside.stat().st_gid != 99 and stat.S_IMODE(outside.stat().st_mode) == 0o600
    assert os.lstat(d / "escape").st_gid == 99


def test_no_fs_group_changes_nothing(tmp_path):
    s = PodSpec.model_validate({"containers": [{"name": "c", "image": "i"}],
                                "volumes": [{"name": "scratch", "emptyDir": {}}]})
    d = volume_dir(tmp_path, REF, "scratch")
    d.mkdir(parents=True)
    os.chmod(d, 0o777)
    fsgroup.apply(REF, s, tmp_path)
    assert stat.S_IMODE(d.stat().st_mode) == 0o777 and d.stat().st_gid == 0
