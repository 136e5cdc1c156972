"""Certificates and keys for a Kubernetes control plane (meta-cluster or tenant)."""
from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_VALIDITY = dt.timedelta(days=3650)


def _key() -> ec.EllipticCurvePrivateKey:
    # P-256 keys are fast to generate; clusters must come up in seconds.
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _name(cn: str, orgs: list[str] | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    attrs += [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs or []]
    return x509.Name(attrs)


@dataclass
class KeyPair:
    cert_pem: bytes
    key_pem: bytes


def make_ca(cn: str) -> KeyPair:
    key = _key()
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn)).issuer_name(_name(cn))
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .sign(key, hashes.SHA256())
    )
    return KeyPair(cert.public_bytes(serialization.Encoding.PEM), _pem_key(key))


def issue(ca: KeyPair, cn: str, *, orgs: list[str] | None = None, server: bool = False,
          client: bool = False, dns: list[str] | None = None, ips: list[str] | None = None) -> KeyPair:
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem)
    ca_key = serialization.load_pem_private_key(ca.key_pem, None)
    key = _key()
    now = dt.datetime.now(dt.timezone.utc)
    usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if server else []) + (
        [ExtendedKeyUsageOID.CLIENT_AUTH] if client else [])
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn, orgs)).issuer_name(ca_cert.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    )
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns or []]
    sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips or []]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    return KeyPair(cert.public_bytes(serialization.Encoding.PEM), _pem_key(key))


def service_account_key() -> KeyPair:
    """RSA, since every client of service-account tokens verifies RS256."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pub = key.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    return KeyPair(pub, _pem_key(key))


def write(pair: KeyPair, directory: Path, stem: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{stem}.crt").write_bytes(pair.cert_pem)
    keyfile = directory / f"{stem}.key"
    keyfile.write_bytes(pair.key_pem)
    keyfile.chmod(0o600)


def load(directory: Path, stem: str) -> KeyPair:
    return KeyPair((directory / f"{stem}.crt").read_bytes(), (directory / f"{stem}.key").read_bytes())


def ensure_control_plane_pki(directory: Path, *, name: str, sans_dns: list[str], sans_ip: list[str]) -> None:
    """CA, apiserver serving cert, admin and controller client certs, SA keys. Idempotent."""
    if (directory / "sa.key").exists():
        return
    ca = make_ca(f"{name}-ca")
    write(ca, directory, "ca")
    write(issue(ca, "kube-apiserver", server=True, dns=sans_dns, ips=sans_ip), directory, "apiserver")
    write(issue(ca, "admin", orgs=["system:masters"], client=True), directory, "admin")
    write(issue(ca, "system:kube-controller-manager", client=True), directory, "controller-manager")
    write(issue(ca, "system:kube-scheduler", client=True), directory, "scheduler")
    # Written last: its presence marks a complete set.
    write(service_account_key(), directory, "sa")
