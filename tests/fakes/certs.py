"""A private certificate authority made at test time: server and client certificates as PEM
files in a folder, and the SSL contexts that trust them. Nothing here is committed to disk
outside a test's temporary folder."""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_DAY = datetime.timedelta(days=1)


@dataclass(frozen=True)
class Issued:
    """A certificate and its key as files; ``fingerprint`` is the SHA-256 of its DER form."""

    cert_file: Path
    key_file: Path
    fingerprint: str


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


class TestCA:
    """``issue_server`` for 127.0.0.1 and localhost, ``issue_client`` for a client name."""

    __test__ = False  # not a pytest test class

    def __init__(self, folder: Path, name: str = "sluicegate test CA") -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(_name(name))
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _DAY)
            .not_valid_after(now + 30 * _DAY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False
            )
            .sign(self.key, hashes.SHA256())
        )
        slug = name.replace(" ", "-")
        self.cert_file = folder / f"{slug}.pem"
        self.cert_file.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def _issue(
        self,
        stem: str,
        common_name: str,
        names: list[x509.GeneralName],
        usage: x509.ObjectIdentifier,
        password: bytes | None,
    ) -> Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _DAY)
            .not_valid_after(now + 7 * _DAY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
        )
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(password)
            if password
            else serialization.NoEncryption()
        )
        cert_file = self.folder / f"{stem}.crt"
        key_file = self.folder / f"{stem}.key"
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
            )
        )
        der = cert.public_bytes(serialization.Encoding.DER)
        return Issued(cert_file, key_file, hashlib.sha256(der).hexdigest())

    def issue_server(
        self, stem: str = "server", common_name: str = "localhost", password: bytes | None = None
    ) -> Issued:
        names: list[x509.GeneralName] = [
            x509.DNSName("localhost"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        ]
        return self._issue(stem, common_name, names, ExtendedKeyUsageOID.SERVER_AUTH, password)

    def issue_client(
        self, common_name: str, stem: str | None = None, sans: list[str] | None = None
    ) -> Issued:
        names: list[x509.GeneralName] = [x509.DNSName(n) for n in sans or []]
        return self._issue(
            stem or common_name, common_name, names, ExtendedKeyUsageOID.CLIENT_AUTH, None
        )

    def client_context(self, client: Issued | None = None) -> ssl.SSLContext:
        """What a client that trusts this CA (and presents ``client``, if given) uses."""
        context = ssl.create_default_context(cafile=str(self.cert_file))
        if client is not None:
            context.load_cert_chain(client.cert_file, client.key_file)
        return context

    def server_context(self, server: Issued, client_ca: TestCA | None = None) -> ssl.SSLContext:
        """A server presenting ``server``; with ``client_ca``, it requires a client
        certificate that CA issued."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(server.cert_file, server.key_file)
        if client_ca is not None:
            context.load_verify_locations(client_ca.cert_file)
            context.verify_mode = ssl.CERT_REQUIRED
        return context


def served_fingerprint(host: str, port: int, ca: TestCA) -> str:
    """The SHA-256 fingerprint of the certificate a new connection to host:port is shown."""
    import socket

    context = ca.client_context()
    with (
        socket.create_connection((host, port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return hashlib.sha256(der).hexdigest()
