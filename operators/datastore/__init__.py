"""The tenants' datastore on a real meta-cluster: one etcd, auth on, one user and one
prefix role per tenant.

Embedded mode keeps tenant data in the meta etcd under a per-tenant --etcd-prefix, and any
client certificate of that etcd's CA may read every prefix (no etcd auth). On a platform
team's Kubernetes, sk8s does not use the cluster's own etcd at all: its credentials open
every Secret of the meta-cluster, platform teams do not hand them out, and its backup and
restore are the platform's. Instead sk8s runs its own etcd, the StatefulSet
`sk8s-datastore` in sk8s-system (manifests.py, manifests/datastore/), with its own CA
(pki.py) and etcd auth enabled:

- `root` (user and role) is the operator's, by a client certificate with CN root and no
  password; only root administers auth and deletes a tenant's keys.
- each tenant is a user named by its apiserver's client certificate CN (no password: cert
  auth only), holding the role tenant-<user> with readwrite on exactly its key range
  [prefix, prefix+1) (etcd's prefix range end), and nothing else: a tenant apiserver can
  neither read nor write another tenant's keys, nor any key outside its range. It runs
  with TENANT_APISERVER_FLAGS (no compactor: etcd compacts; auth.py says why).

This is what Kamaji does for its shared datastores. All tenants' data is in one etcd, so
one snapshot (backup.snapshot, as root: the file `etcdctl snapshot save` writes) backs up
every tenant.

API (all async, all idempotent, names checked as hostile first: names.py):

    async with EtcdAuthClient(url, ca, root_cert, root_key) as etcd:
        await enable_auth(etcd)
        await grant_tenant(etcd, user, prefix)   # user: the tenant cert's CN
        await revoke_tenant(etcd, user)
        await delete_prefix(etcd, prefix)
        await count_keys(etcd, prefix)
        await snapshot(etcd, path)              # every tenant, one file

The client speaks gRPC (h2), not etcd's JSON gateway, which refuses CN-bearing client
certificates once auth is on (rpc.py).
"""
from .auth import COMPACT_REV_KEY, TENANT_APISERVER_FLAGS, count_keys, delete_prefix, enable_auth, grant_tenant, \
    revoke_tenant
from .backup import snapshot
from .client import EtcdAuthClient
from .names import InvalidName, tenant_prefix
from .rpc import GrpcError

__all__ = ["COMPACT_REV_KEY", "TENANT_APISERVER_FLAGS", "EtcdAuthClient", "GrpcError", "InvalidName", "count_keys",
           "delete_prefix", "enable_auth", "grant_tenant", "revoke_tenant", "snapshot", "tenant_prefix"]
