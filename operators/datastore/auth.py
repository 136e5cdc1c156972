"""Turning auth on in the datastore, and one user plus one role per tenant.

- `enable_auth(etcd)`: the root user (no password: it authenticates by certificate CN
  only) with the root role, then auth enable. Before the first run every client of the
  CA may do anything, so the operator runs this before a tenant certificate exists.
- `grant_tenant(etcd, user, prefix)`: a user named by the tenant apiserver's certificate
  CN, with no password, holding exactly one role, tenant-<user>, which holds exactly one
  permission: readwrite on [prefix, prefix+1), etcd's prefix range. A user or role found
  with anything else (another role, a wider range: left by a bug or by hand) is brought
  back to exactly that.
- `revoke_tenant(etcd, user)`: user and role deleted. etcd checks permissions per request,
  so a revoked certificate's next request is refused; a watch stream opened before goes on
  delivering until it closes (permissions are checked when a watch is created): stop the
  tenant's apiserver as well.
- `delete_prefix(etcd, prefix)`: a deleted tenant's keys, as root.

What a kube-apiserver (v1.37) does outside its --etcd-prefix, found by running one under
a prefix-only role (tests/e2e/test_datastore.py): only its compactor, which reads and
watches the key `compact_rev_key` every second (ListFromCacheSnapshot) and every
--etcd-compaction-interval (5 min) writes it in a compare-and-swap and compacts the whole
keyspace. Under a prefix-only role those calls are refused (the apiserver still becomes
ready, and logs the refusal every second). With TENANT_APISERVER_FLAGS
(--etcd-compaction-interval=0) it starts no compactor and asks for nothing outside its
prefix: its health check reads <prefix>/health, readiness uses Status (any user),
leases and watches stay in its range. Compaction is then etcd's own (the StatefulSet's
--auto-compaction-mode=periodic, 5 min: what the apiservers would do); no tenant needs a
key outside its range, and none can move the compaction bookkeeping of the others.
(etcd lets any authenticated user call Compact, which no role restricts: a stolen tenant
certificate could compact history up to the present, making other tenants' watches
relist; no current data is lost.)

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


# Where a kube-apiserver's compactor keeps the last compacted revision, outside any prefix
# (k8s.io/apiserver storage/etcd3/compact.go): no tenant reads or writes it.
COMPACT_REV_KEY = b"compact_rev_key"
# For each tenant apiserver on the datastore: no compactor of its own (etcd compacts).
TENANT_APISERVER_FLAGS = ("--etcd-compaction-interval=0",)


def tenant_permission(prefix: str) -> proto.Permission:
    key = names.check_prefix(prefix).encode()
    return proto.Permission(proto.READWRITE, key, names.range_end(key))


async def grant_tenant(etcd: EtcdAuthClient, user: str, prefix: str) -> None:
    role, want = names.role_name(user), [tenant_permission(prefix)]
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


async def count_keys(etcd: EtcdAuthClient, prefix: str) -> int:
    key = names.check_prefix(prefix).encode()
    return await etcd.count(key, names.range_end(key))
