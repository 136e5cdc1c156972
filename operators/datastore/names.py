"""The names the datastore's auth is made of, checked before any of them reaches etcd.

A tenant's etcd user is the CN of its apiserver's client certificate and its key range is
the tenant's `--etcd-prefix` plus "/": both are derived from tenant uids and plane ids, so
they are treated as hostile. A user name is a DNS label (at most 64 characters, the X.509
upper bound of a CN) and never "root" (etcd's administrator). A prefix is exactly
/sk8s/tenants/<label>/ (planes.py's convention, with the slash that ends the apiserver's
keys): one label deep, so no tenant's range can contain another's (/sk8s/tenants/a/ would
contain /sk8s/tenants/a/b/), and no "..", empty segment or byte outside [a-z0-9-] can
widen it. All pure."""
from __future__ import annotations

import re

ROOT_USER = "root"        # etcd's administrator: user and role of this name (auth/store.go)
ROOT_ROLE = "root"
TENANTS_ROOT = "/sk8s/tenants/"
ROLE_PREFIX = "tenant-"
MAX_CN = 64               # RFC 5280's ub-common-name
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?")


class InvalidName(ValueError):
    """A user name or key prefix that the datastore refuses to grant anything to."""


def check_user(user: str) -> str:
    if not isinstance(user, str) or len(user) > MAX_CN or not _LABEL.fullmatch(user):
        raise InvalidName(f"not a tenant etcd user (a DNS label of at most {MAX_CN} characters): {user!r}")
    if user == ROOT_USER:
        raise InvalidName("the root user is the operator's, never a tenant's")
    return user


def check_prefix(prefix: str) -> str:
    if not isinstance(prefix, str) or not prefix.startswith(TENANTS_ROOT) or not prefix.endswith("/"):
        raise InvalidName(f"not a tenant key prefix ({TENANTS_ROOT}<label>/): {prefix!r}")
    label = prefix[len(TENANTS_ROOT):-1]
    if len(label) > 63 or not _LABEL.fullmatch(label):
        raise InvalidName(f"not a tenant key prefix ({TENANTS_ROOT}<label>/): {prefix!r}")
    return prefix


def tenant_prefix(plane_id: str) -> str:
    """The key range's prefix of a plane whose apiserver runs with
    `--etcd-prefix=/sk8s/tenants/<plane_id>` (planes.py)."""
    return check_prefix(f"{TENANTS_ROOT}{plane_id}/")


def role_name(user: str) -> str:
    return ROLE_PREFIX + check_user(user)


def range_end(prefix: bytes) -> bytes:
    """etcd's end of the range of every key that starts with `prefix` (clientv3.GetPrefixRangeEnd):
    the prefix with its last byte below 0xff incremented and what follows dropped."""
    end = bytearray(prefix)
    for i in range(len(end) - 1, -1, -1):
        if end[i] < 0xFF:
            end[i] += 1
            return bytes(end[:i + 1])
    return b"\x00"  # all 0xff: to the end of the keyspace
