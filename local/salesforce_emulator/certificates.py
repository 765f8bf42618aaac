"""Key material: the emulator's own CA and server certificate, and a client key pair for JWT.

The server certificate (SAN ``localhost`` and ``127.0.0.1``) is signed by a CA generated here; clients
trust the emulator by pointing ``requests`` at the CA file (``verify=ca_bundle``), never by turning
verification off.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes, PublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_VALIDITY = timedelta(days=825)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Account Sync local"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _key_pem(key: CertificateIssuerPrivateKeyTypes) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _cert_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _builder(subject: x509.Name, issuer: x509.Name, public_key: PublicKeyTypes) -> x509.CertificateBuilder:
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)  # type: ignore[arg-type]
    )


@dataclass(frozen=True)
class CertificateAuthority:
    key_pem: str
    cert_pem: str

    @classmethod
    def generate(cls) -> CertificateAuthority:
        key = ec.generate_private_key(ec.SECP256R1())
        name = _name("Salesforce emulator local CA")
        cert = (
            _builder(name, name, key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True, content_commitment=False, key_encipherment=False,
                    data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                    encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )
            .sign(key, hashes.SHA256())
        )  # fmt: skip
        return cls(_key_pem(key), _cert_pem(cert))

    def issue_server_certificate(self, hosts: list[str]) -> tuple[str, str]:
        """A TLS server key and certificate (PEM) for ``hosts`` (DNS names or IP addresses)."""
        ca_key = serialization.load_pem_private_key(self.key_pem.encode(), password=None)
        ca_cert = x509.load_pem_x509_certificate(self.cert_pem.encode())
        key = ec.generate_private_key(ec.SECP256R1())
        names: list[x509.GeneralName] = []
        for host in dict.fromkeys(hosts):
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        cert = (
            _builder(_name(hosts[0]), ca_cert.subject, key.public_key())
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),  # type: ignore[arg-type]
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
        )
        return _key_pem(key), _cert_pem(cert)

    @classmethod
    def load_or_generate(cls, directory: Path) -> CertificateAuthority:
        key_path, cert_path = directory / "ca-key.pem", directory / "ca.pem"
        if key_path.exists() and cert_path.exists():
            return cls(key_path.read_text(), cert_path.read_text())
        authority = cls.generate()
        write_private(key_path, authority.key_pem)
        cert_path.write_text(authority.cert_pem)
        return authority


def generate_client_keypair(common_name: str = "account-sync-jwt") -> tuple[str, str]:
    """An RSA private key and a self-signed X.509 certificate (both PEM ``str``) for the JWT bearer flow.

    The certificate is what one uploads to the Salesforce connected app; the key signs the JWT (RS256).
    """
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = _name(common_name)
    cert = _builder(name, name, key.public_key()).sign(key, hashes.SHA256())
    return _key_pem(key), _cert_pem(cert)


def public_key_from_pem(pem: str) -> PublicKeyTypes:
    """The public key of a PEM certificate (or of a PEM public key)."""
    if "BEGIN CERTIFICATE" in pem:
        return x509.load_pem_x509_certificate(pem.encode()).public_key()
    return serialization.load_pem_public_key(pem.encode())


def write_private(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o600)
