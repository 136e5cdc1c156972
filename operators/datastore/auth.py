"""Turning auth on in the datastore, and one user plus one role per tenant.

- `enable_auth(etcd)`: the root user (no password: it authenticates by certificate CN
  only) with the root role, then auth enable. Before the first run every client of the
  CA may do anything, so the operator runs this before a tenant certificate exists.
- `grant_tenant(etcd, user, prefix)`: a user named by the tenant apiserver's certificate
  CN, with no password, holding exactly one role, tenant-<user>, which holds exactly two
  permissions: readwrite on [prefix, prefix+1), etcd's prefix range, and read on the one
  key `compact_rev_key` (below). A user or role found with anything else (another role, a
  wider range: left by a bug or by hand) is brought back to exactly that.
- `revoke_tenant(etcd, user)`: user and role deleted. etcd checks permissions per request,
  so a revoked certificate's next request is refused; a watch stream opened before goes on
  delivering until it closes (permissions are checked when a watch is created): stop the
  tenant's apiserver as well.
- `delete_prefix(etcd, prefix)`: a deleted tenant's keys, as root.
- `compact(etcd, revision)`: compaction is the operator's, not the tenants'.

What a kube-apiserver (v1.37) does outside its --etcd-prefix, found by running one under
a prefix-only role (tests/e2e/test_datastore.py): it reads and watches `compact_rev_key`
every second (the watch cache learns the compacted revision from it, to drop its list
snapshots and answer 410 Gone like etcd; ListFromCacheSnapshot), and every
--etcd-compaction-interval (5 min) it writes that key in a compare-and-swap and compacts
the whole keyspace. Everything else (the `<prefix>/health` check, Status for readiness,
leases, watches) stays inside its range or needs no key permission. So a tenant role also
reads `compact_rev_key`, exactly that key (one revision number, no tenant data), and does
not write it: a tenant apiserver runs with TENANT_APISERVER_FLAGS (no compaction of its
own), and the operator calls `compact` periodically, which compacts as the apiservers do
and records the revision in `compact_rev_key` for their caches. (etcd lets any
authenticated user call Compact; nothing but the missing flag stops a tenant apiserver
from compacting, and compacting at most the current revision loses no current data.)

All idempotent, all names checked first (names.py: they come from tenant uids).
"""
from __future__ import annotations

from . import names, proto
from .client import EtcdAuthClient, is_already, is_missing
from .rpc import GrpcError


async def _ignoring(predicate, call, *args) -> None:
    try:
        await call(*args)
    except GrpcError as exc:
        if not predicate(exc):
            raise


async def enable_auth(etcd: EtcdAuthClient) -> None:
    await _ignoring(is_already, etcd.user_add, names.ROOT_USER)
    await _ignoring(is_already, etcd.role_add, names.ROOT_ROLE)
    if names.ROOT_ROLE not in await etcd.user_roles(names.ROOT_USER):
        await etcd.user_grant_role(names.ROOT_USER, names.ROOT_ROLE)
    await etcd.auth_enable()  # a no-op once enabled (auth/store.go AuthEnable)


# Where the apiservers keep the last compacted revision (k8s.io/apiserver storage/etcd3/compact.go).
COMPACT_REV_KEY = b"compact_rev_key"
# For each tenant apiserver on the datastore: the operator compacts, not the 100 apiservers.
TENANT_APISERVER_FLAGS = ("--etcd-compaction-interval=0",)
_COMPACT_READ = proto.Permission(proto.READ, COMPACT_REV_KEY, b"")


def tenant_permissions(prefix: str) -> list[proto.Permission]:
    key = names.check_prefix(prefix).encode()
    return [proto.Permission(proto.READWRITE, key, names.range_end(key)), _COMPACT_READ]


async def grant_tenant(etcd: EtcdAuthClient, user: str, prefix: str) -> None:
    role, want = names.role_name(user), tenant_permissions(prefix)
    await _ignoring(is_already, etcd.role_add, role)
    perms = await etcd.role_permissions(role)
    for p in perms:
        if p not in want:
            await _ignoring(is_missing, etcd.role_revoke, role, p.key, p.range_end)
    for p in want:
        if p not in perms:
            await etcd.role_grant(role, p)
    await _ignoring(is_already, etcd.user_add, user)
    roles = await etcd.user_roles(user)
    for r in roles:
        if r != role:
            await _ignoring(is_missing, etcd.user_revoke_role, user, r)
    if role not in roles:
        await etcd.user_grant_role(user, role)


async def revoke_tenant(etcd: EtcdAuthClient, user: str) -> None:
    role = names.role_name(user)
    await _ignoring(is_missing, etcd.user_delete, user)
    await _ignoring(is_missing, etcd.role_delete, role)


async def delete_prefix(etcd: EtcdAuthClient, prefix: str) -> int:
    """Every key of a tenant's range; the number deleted."""
    key = names.check_prefix(prefix).encode()
    return await etcd.delete_range(key, names.range_end(key))


async def compact(etcd: EtcdAuthClient, revision: int) -> None:
    """Compact history up to `revision` (one the operator read an interval ago: watchers
    that far behind relist) and tell the apiservers' caches, as their own compactor would."""
    await etcd.compact(revision)
    await etcd.put(COMPACT_REV_KEY, str(revision).encode())


async def count_keys(etcd: EtcdAuthClient, prefix: str) -> int:
    key = names.check_prefix(prefix).encode()
    return await etcd.count(key, names.range_end(key))
