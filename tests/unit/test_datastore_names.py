"""The datastore's pure parts: names checked as hostile, etcd's prefix range end, the
hand-made protobuf encoding (against bytes that protoc's encoding gives)."""
from __future__ import annotations

import pytest

from operators.datastore import auth, names, proto


@pytest.mark.parametrize("user", ["sk8s-plane-0123456789ab", "a", "0f3c2b1e-9d8a-4c7b-8e6f-5a4b3c2d1e0f", "x" * 64])
def test_tenant_users_of_the_plane_and_uid_conventions_pass(user):
    assert names.check_user(user) == user


@pytest.mark.parametrize("user", ["", "root", "Root", "a/b", "a b", "a\x00", "-a", "a-", "a.b", "x" * 65,
                                  "sk8s-plane-1,O=system:masters", "é", None, 7])
def test_hostile_users_are_refused(user):
    with pytest.raises(names.InvalidName):
        names.check_user(user)


@pytest.mark.parametrize("prefix", ["/sk8s/tenants/0123456789ab/", "/sk8s/tenants/a/"])
def test_tenant_prefixes_pass(prefix):
    assert names.check_prefix(prefix) == prefix


@pytest.mark.parametrize("prefix", ["", "/", "/sk8s/", "/sk8s/tenants/", "/sk8s/tenants//", "/sk8s/tenants/a",
                                    "/sk8s/tenants/../", "/sk8s/tenants/a/../b/", "/sk8s/tenants/a/b/",
                                    "/sk8s/meta/", "/registry/", "sk8s/tenants/a/", "/sk8s/tenants/A/",
                                    "/sk8s/tenants/a\x00/", "/sk8s/tenants/a.b/", "/sk8s/tenants/" + "a" * 64 + "/",
                                    None])
def test_hostile_or_nested_prefixes_are_refused(prefix):
    with pytest.raises(names.InvalidName):
        names.check_prefix(prefix)


def test_tenant_prefix_is_planes_convention_with_its_slash():
    assert names.tenant_prefix("0123456789ab") == "/sk8s/tenants/0123456789ab/"
    with pytest.raises(names.InvalidName):
        names.tenant_prefix("../meta")


def test_range_end_is_etcds_prefix_end():
    assert names.range_end(b"/sk8s/tenants/a/") == b"/sk8s/tenants/a0"
    assert names.range_end(b"a\xff") == b"b"
    assert names.range_end(b"\xff\xff") == b"\x00"


def test_role_is_named_for_the_user_and_checked():
    assert names.role_name("sk8s-plane-1") == "tenant-sk8s-plane-1"
    with pytest.raises(names.InvalidName):
        names.role_name("root")


def test_a_tenant_permission_is_readwrite_on_its_range():
    assert auth.tenant_permission("/sk8s/tenants/a/") == \
        proto.Permission(proto.READWRITE, b"/sk8s/tenants/a/", b"/sk8s/tenants/a0")


def test_encoding_matches_protobuf_wire_format():
    # AuthUserAddRequest{name: "u", options: {no_password: true}}, as protoc encodes it.
    assert proto.encode((1, "u"), (3, proto.encode((1, True)))) == b"\x0a\x01u\x1a\x02\x08\x01"
    # Defaults are left out; a 300-byte field's length is a two-byte varint.
    assert proto.encode((1, ""), (2, 0), (3, False), (4, None)) == b""
    assert proto.encode((2, b"k" * 300))[:3] == b"\x12\xac\x02"
    assert proto.encode((1, -1)) == b"\x08" + b"\xff" * 9 + b"\x01"


def test_decoding_round_trips_and_refuses_truncation():
    perm = proto.Permission(proto.READWRITE, b"/a/", b"/a0")
    assert proto.Permission.decode(perm.encode()) == perm
    assert proto.decode(proto.encode((2, "x"), (2, "y"), (4, 5))) == {2: [b"x", b"y"], 4: [5]}
    for broken in (b"\x0a\x05ab", b"\x08", b"\x08" + b"\xff" * 11, b"\x0b"):
        with pytest.raises(ValueError):
            proto.decode(broken)


def test_three_members_are_one_initial_cluster_started_in_parallel():
    from operators.datastore import manifests
    sts = manifests.statefulset(replicas=3, storage_class="fast")
    args = sts["spec"]["template"]["spec"]["containers"][0]["args"]
    (cluster,) = [a for a in args if a.startswith("--initial-cluster=")]
    assert cluster == "--initial-cluster=" + ",".join(
        f"sk8s-datastore-{i}=https://sk8s-datastore-{i}.sk8s-datastore-peers.sk8s-system.svc:2380" for i in range(3))
    assert "--initial-advertise-peer-urls=https://$(POD_NAME).sk8s-datastore-peers.$(POD_NAMESPACE).svc:2380" in args
    assert sts["spec"]["podManagementPolicy"] == "Parallel" and sts["spec"]["replicas"] == 3
    assert sts["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"] == "fast"
