"""The lab's certificates and the directory bind password.

A lab CA (what the drill's ``ca_bundle`` trusts) signs the directory servers' certificates; a
second, "rogue" CA that nothing trusts signs the certificates a breaker swaps in to play a DC
that presents an untrusted certificate. Keys are EC P-256, made with ``cryptography`` (no
openssl process). The bind password is random per build and lives in a file that the
inventory names as ``file:`` secret; it is never part of the repository.
"""

from __future__ import annotations

import datetime
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pytest_drcheck.lab.paths import LabPaths

CA_NAME = "drcheck lab CA"
ROGUE_CA_NAME = "drcheck rogue CA"
VALID_DAYS = 30
BIND_PASSWORD_FILE = "directory-bind-password"


@dataclass(frozen=True)
class Issued:
    cert: Path
    key: Path


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)


def _load(cert: Path, key: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    loaded = serialization.load_pem_private_key(key.read_bytes(), password=None)
    assert isinstance(loaded, ec.EllipticCurvePrivateKey)
    return x509.load_pem_x509_certificate(cert.read_bytes()), loaded


def _ca(directory: Path, stem: str, common_name: str) -> Issued:
    """The CA in ``directory`` (made on first use)."""
    issued = Issued(directory / f"{stem}.pem", directory / f"{stem}.key")
    if issued.cert.exists() and issued.key.exists():
        return issued
    directory.mkdir(mode=0o755, parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                         False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256()))
    _write_key(issued.key, key)
    issued.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return issued


def lab_ca(paths: LabPaths) -> Issued:
    return _ca(paths.pki_dir, "ca", CA_NAME)


def rogue_ca(paths: LabPaths) -> Issued:
    return _ca(paths.pki_dir, "rogue-ca", ROGUE_CA_NAME)


def issue(ca: Issued, directory: Path, stem: str, names: tuple[str, ...]) -> Issued:
    """A server certificate for ``names`` (the first is the subject CN), signed by ``ca``."""
    ca_cert, ca_key = _load(ca.cert, ca.key)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    issued = Issued(directory / f"{stem}.pem", directory / f"{stem}.key")
    _write_key(issued.key, key)
    issued.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return issued


def bind_password(paths: LabPaths) -> str:
    """The lab directories' bind password (made on first use), meeting AD's complexity rule."""
    path = paths.secrets_dir / BIND_PASSWORD_FILE
    if path.exists():
        return path.read_text().rstrip("\n")
    paths.secrets_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    value = f"Dr-{secrets.token_urlsafe(15)}-7a"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    return value
