"""Authenticity of an evidence bundle: an Ed25519 signature over ``MANIFEST.sha256``.

The manifest already pins every file by SHA-256, so signing its exact bytes signs the bundle.
The signature lives in ``MANIFEST.sig`` (JSON: the signer's public key and key id, the
manifest's SHA-256, the time, the base64 signature), outside the manifest. Keys are PEM files:
PKCS#8 private keys and SubjectPublicKeyInfo public keys, as ``openssl genpkey -algorithm
ed25519`` writes them, so an auditor can check a bundle without Python::

    jq -r .signature MANIFEST.sig | base64 -d > sig.bin
    openssl pkeyutl -verify -pubin -inkey signer.pub -rawin -in MANIFEST.sha256 -sigfile sig.bin
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from pytest_drcheck.evidence.layout import MANIFEST, SIGNATURE, EvidenceError
from pytest_drcheck.evidence.manifest import verify

SIGNATURE_FORMAT = "pytest-drcheck-signature/1"
# An encrypted private key's passphrase comes from the environment, never the command line
# (which other users can read in the process list).
PASSPHRASE_VARIABLE = "DRCHECK_KEY_PASSPHRASE"


def key_id(key: Ed25519PublicKey) -> str:
    """A short, stable name of a public key: SHA-256 of its 32 raw bytes, first 16 hex."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_pem(key: Ed25519PublicKey) -> str:
    return key.public_bytes(serialization.Encoding.PEM,
                            serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")


def _read_key_file(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise EvidenceError(f"{path}: no such {what} file") from None
    except OSError as exc:
        raise EvidenceError(f"{path}: cannot read the {what}: {exc.strerror}") from None


def load_private_key(path: Path) -> Ed25519PrivateKey:
    data = _read_key_file(path, "private key")
    passphrase = os.environ.get(PASSPHRASE_VARIABLE)
    try:
        key = serialization.load_pem_private_key(
            data, password=passphrase.encode() if passphrase else None)
    except TypeError:
        raise EvidenceError(f"{path}: the private key is encrypted; put its passphrase in "
                            f"{PASSPHRASE_VARIABLE}") from None
    except ValueError:
        raise EvidenceError(f"{path}: not a PEM private key (PKCS#8), or a wrong passphrase; "
                            "make one with 'drcheck keygen' or 'openssl genpkey -algorithm "
                            "ed25519'") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise EvidenceError(f"{path}: not an Ed25519 key "
                            f"({type(key).__name__.removesuffix('PrivateKey')}); bundles are "
                            "signed with Ed25519 keys")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    data = _read_key_file(path, "public key")
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError:
        hint = (" (that is a private key: pass its public half)"
                if b"PRIVATE KEY" in data else "")
        raise EvidenceError(f"{path}: not a PEM public key (SubjectPublicKeyInfo){hint}"
                            ) from None
    if not isinstance(key, Ed25519PublicKey):
        raise EvidenceError(f"{path}: not an Ed25519 key "
                            f"({type(key).__name__.removesuffix('PublicKey')}); bundles are "
                            "signed with Ed25519 keys")
    return key


def parse_public_pem(text: str, where: str) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(text.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        raise EvidenceError(f"{where}: the public key is not PEM") from None
    if not isinstance(key, Ed25519PublicKey):
        raise EvidenceError(f"{where}: not an Ed25519 public key")
    return key


def sign_bytes(key: Ed25519PrivateKey, data: bytes) -> str:
    return base64.b64encode(key.sign(data)).decode("ascii")


def signature_holds(key: Ed25519PublicKey, signature: str, data: bytes) -> bool:
    try:
        key.verify(base64.b64decode(signature, validate=True), data)
    except (InvalidSignature, ValueError):
        return False
    return True


def now_iso() -> str:
    """UTC now as the bundle writes times (records.iso; not imported: verify stays light)."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def canonical(value: Mapping[str, Any]) -> bytes:
    """The bytes a JSON record is signed as: sorted keys, no spaces, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode("utf-8")


@dataclass(frozen=True)
class Seal:
    """A signature over one manifest's exact bytes."""

    key_id: str
    public_key: str
    manifest_sha256: str
    signed_at: str
    signature: str
    format: str = SIGNATURE_FORMAT
    algorithm: str = "Ed25519"

    def as_dict(self) -> dict[str, str]:
        return asdict(self)

    @classmethod
    def from_dict(cls, value: Any, where: str) -> Seal:
        fields = ("key_id", "public_key", "manifest_sha256", "signed_at", "signature")
        if (not isinstance(value, dict) or value.get("format") != SIGNATURE_FORMAT
                or not all(isinstance(value.get(name), str) for name in fields)):
            raise EvidenceError(f"{where}: not a {SIGNATURE_FORMAT} signature")
        return cls(**{name: value[name] for name in fields})

    def holds_for(self, manifest: bytes, where: str) -> bool:
        """The signature is over exactly these manifest bytes, by the key it names."""
        key = parse_public_pem(self.public_key, where)
        return (key_id(key) == self.key_id
                and hashlib.sha256(manifest).hexdigest() == self.manifest_sha256
                and signature_holds(key, self.signature, manifest))


def manifest_bytes(directory: Path) -> bytes:
    try:
        return (directory / MANIFEST).read_bytes()
    except FileNotFoundError:
        raise EvidenceError(f"{directory}: no {MANIFEST}; not a finished evidence bundle") from None
    except OSError as exc:
        raise EvidenceError(f"{directory / MANIFEST}: cannot read: {exc.strerror}") from None


def require_intact(directory: Path, doing: str) -> None:
    """Refuse to sign or approve evidence that no longer matches its manifest."""
    check = verify(directory)
    if not check.ok:
        raise EvidenceError(f"{directory}: the bundle does not match its manifest "
                            f"({check.lines()[0]}); refusing to {doing} altered evidence")


def seal(directory: Path, key: Ed25519PrivateKey, now: str) -> Seal:
    """Sign the bundle as it is: write MANIFEST.sig over the current manifest."""
    require_intact(directory, "sign")
    manifest = manifest_bytes(directory)
    public = key.public_key()
    made = Seal(key_id=key_id(public), public_key=public_pem(public),
                manifest_sha256=hashlib.sha256(manifest).hexdigest(), signed_at=now,
                signature=sign_bytes(key, manifest))
    path = directory / SIGNATURE
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(made.as_dict(), indent=2) + "\n", encoding="utf-8")
    temporary.replace(path)
    return made


def read_seal(directory: Path) -> Seal | None:
    path = directory / SIGNATURE
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise EvidenceError(f"{path}: unreadable: {exc}") from None
    return Seal.from_dict(value, str(path))


def check_seal(directory: Path, trusted: Sequence[Ed25519PublicKey] = ()) -> Seal | None:
    """The bundle's seal, checked: over the current manifest, and (when ``trusted`` keys are
    given) by one of them. Raises EvidenceError with the one-line reason otherwise."""
    found = read_seal(directory)
    if found is None:
        if trusted:
            raise EvidenceError(f"{directory}: not signed (no {SIGNATURE}), and --pubkey "
                                "requires a signature")
        return None
    where = str(directory / SIGNATURE)
    if trusted and found.key_id not in {key_id(k) for k in trusted}:
        raise EvidenceError(f"{directory}: signed by another key (key id {found.key_id}, "
                            f"not {', '.join(key_id(k) for k in trusted)})"
                            + _resealed_hint(directory, {key_id(k) for k in trusted}))
    manifest = manifest_bytes(directory)
    if hashlib.sha256(manifest).hexdigest() != found.manifest_sha256:
        raise EvidenceError(f"{directory}: {MANIFEST} changed after it was signed (by key "
                            f"{found.key_id} at {found.signed_at})")
    if not found.holds_for(manifest, where):
        raise EvidenceError(f"{directory}: {SIGNATURE} does not verify: the signature is not "
                            f"key {found.key_id}'s over this {MANIFEST}")
    return found


def _resealed_hint(directory: Path, trusted_ids: set[str]) -> str:
    """Why a trusted key's seal was replaced, when a sign-off re-sealed the bundle after it."""
    from pytest_drcheck.evidence.signoff import read_approvals

    for record in read_approvals(directory):
        earlier = record.get("seal") or {}
        if earlier.get("key_id") in trusted_ids:
            return (f"; key {earlier['key_id']} signed it before sign-off {record['number']} by "
                    f"{record['by']} (key {record['key_id']}) re-sealed it: trust that key too "
                    "(another --pubkey)")
    return ""


def authenticate(directory: Path, trusted: Sequence[Ed25519PublicKey]) -> str:
    """After the integrity check: the seal and the sign-offs. One line saying what holds."""
    from pytest_drcheck.evidence.signoff import check_approvals

    found = check_seal(directory, trusted)
    approvals = check_approvals(directory)
    if approvals and found is None:  # every sign-off seals the bundle: this one was removed
        raise EvidenceError(f"{directory}: has {len(approvals)} sign-off(s) but no {SIGNATURE}: "
                            "the seal the last sign-off wrote was removed")
    trusted_ids = {key_id(k) for k in trusted}
    for approval in approvals if trusted else ():
        # A sign-off is only worth what its key is: with --pubkey, every approver's key too.
        if approval["key_id"] not in trusted_ids:
            raise EvidenceError(f"{directory}: sign-off {approval['number']} by "
                                f"{approval['by']} is signed by another key (key id "
                                f"{approval['key_id']}, not {', '.join(sorted(trusted_ids))})")
    parts = []
    if found is not None:
        parts.append(f"signed by key {found.key_id} at {found.signed_at}"
                     + ("" if trusted else " (not checked against a trusted key: pass "
                        "--pubkey)"))
    if approvals:
        parts.append(f"{len(approvals)} sign-off(s): " + "; ".join(
            f"{a['by']} ({a['role']}, key {a['key_id']}, {a['approved_at']})"
            for a in approvals))
    return ", ".join(parts)


def keygen(path: Path) -> Path:
    """A new Ed25519 key: PATH (PKCS#8 PEM, mode 0600) and PATH.pub (SubjectPublicKeyInfo)."""
    public_path = path.with_name(path.name + ".pub")
    for target in (path, public_path):
        if target.exists():
            raise EvidenceError(f"{target} exists; keys are never overwritten")
    key = Ed25519PrivateKey.generate()
    passphrase = os.environ.get(PASSPHRASE_VARIABLE)
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase.encode()) if passphrase
        else serialization.NoEncryption())
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                encryption)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(private)
        public_path.write_text(public_pem(key.public_key()), encoding="ascii")
    except OSError as exc:
        raise EvidenceError(f"cannot write the key: {exc}") from None
    return public_path


# --- the commands -----------------------------------------------------------------------------


def sign_command(args: argparse.Namespace) -> int:
    directory = Path(args.directory)
    try:
        key = load_private_key(Path(args.key))
        before = read_seal(directory)
        made = seal(directory, key, now_iso())
    except EvidenceError as exc:
        print(f"drcheck sign: {exc}", file=sys.stderr)
        return 1
    replaced = (f" (replaces the signature by key {before.key_id} of {before.signed_at})"
                if before is not None else "")
    print(f"{directory}: signed {MANIFEST} (sha256 {made.manifest_sha256}) with key "
          f"{made.key_id}: {directory / SIGNATURE}{replaced}")
    return 0


def keygen_command(args: argparse.Namespace) -> int:
    path = Path(args.path)
    try:
        public_path = keygen(path)
        key = load_public_key(public_path)
    except EvidenceError as exc:
        print(f"drcheck keygen: {exc}", file=sys.stderr)
        return 1
    print(f"{path}: Ed25519 private key (keep it secret); {public_path}: its public key, "
          f"key id {key_id(key)}")
    return 0


def verify_authenticity(directory: Path, pubkeys: Sequence[str]) -> tuple[bool, str]:
    """`drcheck verify` past the manifest check: (ok, the line to print)."""
    try:
        trusted = [load_public_key(Path(p)) for p in pubkeys]
        return True, authenticate(directory, trusted)
    except EvidenceError as exc:
        return False, str(exc)
