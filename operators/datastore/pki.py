"""The datastore's own CA and the certificates of its members, its root and its tenants.

A CA of its own (not the meta-cluster's, not a tenant's): a certificate of it is a login
to the datastore, since etcd takes the user from the CN. The CA key stays with the
operator, which issues one client certificate per tenant (CN = the tenant's etcd user,
names.check_user) and holds the root one (CN root) itself. The members' certificate serves
the client Service, each member's stable name under the headless Service (peer URLs) and
loopback, and is also a client certificate, since members dial each other with it."""
from __future__ import annotations

import base64

from ..embedded import pki
from ..embedded.pki import KeyPair
from . import names

NAME = "sk8s-datastore"               # StatefulSet and client Service
PEERS = f"{NAME}-peers"               # headless Service: <pod>.<PEERS>.<namespace>.svc
CLIENT_PORT, PEER_PORT, METRICS_PORT = 2379, 2380, 2381


def make_ca() -> KeyPair:
    return pki.make_ca(f"{NAME}-ca")


def member_names(namespace: str) -> list[str]:
    return [NAME, f"{NAME}.{namespace}", f"{NAME}.{namespace}.svc",
            f"*.{PEERS}.{namespace}.svc", f"*.{PEERS}.{namespace}.svc.cluster.local",
            f"{NAME}.{namespace}.svc.cluster.local", "localhost"]


def issue_member(ca: KeyPair, namespace: str, *, extra_ips: list[str] = ()) -> KeyPair:
    return pki.issue(ca, f"{NAME}-member", server=True, client=True, dns=member_names(namespace),
                     ips=["127.0.0.1", *extra_ips])


def issue_root(ca: KeyPair) -> KeyPair:
    return pki.issue(ca, names.ROOT_USER, client=True)


def issue_tenant(ca: KeyPair, user: str) -> KeyPair:
    return pki.issue(ca, names.check_user(user), client=True)


CA_SECRET = f"{NAME}-ca"     # ca.crt, ca.key: the operator's (it issues tenants' certificates)
TLS_SECRET = f"{NAME}-tls"   # ca.crt, member.crt, member.key: the members'


def secret(name: str, files: dict[str, bytes]) -> dict:
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": {"name": name},
            "data": {k: base64.b64encode(v).decode() for k, v in files.items()}}


def secrets(namespace: str) -> list[dict]:
    """A new CA and the two Secrets made from it (pure but for key generation)."""
    ca = make_ca()
    member = issue_member(ca, namespace)
    return [secret(CA_SECRET, {"ca.crt": ca.cert_pem, "ca.key": ca.key_pem}),
            secret(TLS_SECRET, {"ca.crt": ca.cert_pem, "member.crt": member.cert_pem, "member.key": member.key_pem})]


if __name__ == "__main__":
    # Once per installation, before the StatefulSet starts (create, not apply: a second run
    # would make a new CA and lock every existing certificate out):
    #   python -m operators.datastore.pki sk8s-system | kubectl -n sk8s-system create -f -
    import sys

    import yaml
    print("---\n".join(yaml.safe_dump(s) for s in secrets(sys.argv[1] if len(sys.argv) > 1 else "sk8s-system")))
