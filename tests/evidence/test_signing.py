"""`drcheck sign` / `drcheck verify --pubkey` / `drcheck keygen` on a real drill's bundle:
authentic bundles pass, and each way of faking one fails with one line naming what."""

from __future__ import annotations

import base64
import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from pytest_drcheck.cli import main as drcheck
from pytest_drcheck.evidence.signing import PASSPHRASE_VARIABLE, key_id, load_public_key
from tests.evidence.drills import pub, reseal


def verify(capsys: pytest.CaptureFixture[str], directory: Path, *keys: Path
           ) -> tuple[int, str, str]:
    capsys.readouterr()
    status = drcheck(["verify", str(directory), *[f"--pubkey={pub(k)}" for k in keys]])
    out, err = capsys.readouterr()
    return status, out, err


def the_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def sign(directory: Path, key: Path) -> None:
    assert drcheck(["sign", str(directory), "--key", str(key)]) == 0


def test_a_signed_bundle_verifies_with_its_key(bundle: Path, keys: dict[str, Path],
                                               capsys: pytest.CaptureFixture[str]) -> None:
    ci_id = key_id(load_public_key(Path(pub(keys["ci"]))))
    capsys.readouterr()
    sign(bundle, keys["ci"])
    out = capsys.readouterr().out
    assert out.startswith(f"{bundle}: signed MANIFEST.sha256 (sha256 ")
    assert out.endswith(f") with key {ci_id}: {bundle / 'MANIFEST.sig'}\n")
    status, out, err = verify(capsys, bundle, keys["ci"])
    assert (status, err) == (0, "")
    assert f"ok: 6 files match MANIFEST.sha256; signed by key {ci_id} at " in out
    signature = json.loads((bundle / "MANIFEST.sig").read_text())
    assert signature["algorithm"] == "Ed25519" and signature["key_id"] == ci_id
    # The signature file is outside the manifest (it signs it); integrity alone still holds.
    assert "MANIFEST.sig" not in (bundle / "MANIFEST.sha256").read_text()
    status, out, _ = verify(capsys, bundle)
    assert status == 0 and "not checked against a trusted key: pass --pubkey" in out
    # Signing again says whose signature it replaces.
    sign(bundle, keys["auditor"])
    assert f" (replaces the signature by key {ci_id} of " in capsys.readouterr().out


def test_another_key_is_named(bundle: Path, keys: dict[str, Path],
                              capsys: pytest.CaptureFixture[str]) -> None:
    sign(bundle, keys["ci"])
    ids = {name: key_id(load_public_key(Path(pub(path)))) for name, path in keys.items()}
    status, out, err = verify(capsys, bundle, keys["auditor"])
    assert (status, out) == (1, "")
    assert the_line(err) == (f"drcheck verify: FAILED: {bundle}: signed by another key "
                             f"(key id {ids['ci']}, not {ids['auditor']})")
    # Trusting several keys: one of them signed it.
    assert verify(capsys, bundle, keys["auditor"], keys["ci"])[0] == 0


def test_a_required_signature_that_is_missing_fails(bundle: Path, keys: dict[str, Path],
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = verify(capsys, bundle, keys["ci"])
    assert status == 1
    assert the_line(err) == (f"drcheck verify: FAILED: {bundle}: not signed (no MANIFEST.sig), "
                             "and --pubkey requires a signature")


def test_a_file_changed_after_signing_is_named(bundle: Path, keys: dict[str, Path],
                                               capsys: pytest.CaptureFixture[str]) -> None:
    sign(bundle, keys["ci"])
    results = bundle / "results.jsonl"
    results.write_text(results.read_text().replace('"failed"', '"passed"'))
    status, out, err = verify(capsys, bundle, keys["ci"])
    assert status == 1
    assert out == f"{bundle}: changed: results.jsonl\n"
    assert the_line(err) == (f"{bundle}: FAILED: the bundle does not match MANIFEST.sha256 "
                             "(changed: results.jsonl)")


def test_a_rewritten_manifest_breaks_the_signature(bundle: Path, keys: dict[str, Path],
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    sign(bundle, keys["ci"])
    drill = bundle / "drill.json"
    drill.write_text(drill.read_text().replace('"failed"', '"passed"'))
    reseal(bundle)  # the forger recomputes the manifest, but cannot sign as CI
    ci_id = key_id(load_public_key(Path(pub(keys["ci"]))))
    for trusted in ((keys["ci"],), ()):  # with or without a trusted key: never ok
        status, _, err = verify(capsys, bundle, *trusted)
        assert status == 1
        assert the_line(err).startswith(
            f"drcheck verify: FAILED: {bundle}: MANIFEST.sha256 changed after it was signed "
            f"(by key {ci_id} at ")


def test_a_forger_signing_with_their_own_key_fails(bundle: Path, keys: dict[str, Path],
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    sign(bundle, keys["ci"])
    drill = bundle / "drill.json"
    drill.write_text(drill.read_text().replace('"failed"', '"passed"'))
    reseal(bundle, keys["mallory"])
    status, _, err = verify(capsys, bundle, keys["ci"])
    assert status == 1 and "signed by another key" in the_line(err)
    # Pasting CI's key id and public key over mallory's signature does not help either.
    signature = json.loads((bundle / "MANIFEST.sig").read_text())
    signature["public_key"] = Path(pub(keys["ci"])).read_text()
    signature["key_id"] = key_id(load_public_key(Path(pub(keys["ci"]))))
    (bundle / "MANIFEST.sig").write_text(json.dumps(signature))
    status, _, err = verify(capsys, bundle, keys["ci"])
    assert status == 1
    assert the_line(err) == (
        f"drcheck verify: FAILED: {bundle}: MANIFEST.sig does not verify: the signature is not "
        f"key {signature['key_id']}'s over this MANIFEST.sha256")


def test_sign_refuses_altered_evidence(bundle: Path, keys: dict[str, Path],
                                       capsys: pytest.CaptureFixture[str]) -> None:
    (bundle / "observations" / "app02.jsonl").write_text("{}\n")
    capsys.readouterr()
    assert drcheck(["sign", str(bundle), "--key", str(keys["ci"])]) == 1
    assert the_line(capsys.readouterr().err) == (
        f"drcheck sign: {bundle}: the bundle does not match its manifest (changed: "
        "observations/app02.jsonl); refusing to sign altered evidence")
    assert not (bundle / "MANIFEST.sig").exists()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")
def test_an_auditor_verifies_with_openssl_alone(bundle: Path, keys: dict[str, Path],
                                                tmp_path: Path) -> None:
    sign(bundle, keys["ci"])
    raw = base64.b64decode(json.loads((bundle / "MANIFEST.sig").read_text())["signature"])
    (tmp_path / "sig.bin").write_bytes(raw)

    def openssl(key: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", pub(key),
                               "-rawin", "-in", str(bundle / "MANIFEST.sha256"), "-sigfile",
                               str(tmp_path / "sig.bin")], capture_output=True, text=True,
                              check=False)

    assert "Signature Verified Successfully" in openssl(keys["ci"]).stdout
    assert openssl(keys["auditor"]).returncode != 0


def test_keygen_writes_a_private_key_only_its_owner_reads(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]
                                                          ) -> None:
    path = tmp_path / "k.pem"
    assert drcheck(["keygen", str(path)]) == 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    assert Path(f"{path}.pub").read_text().startswith("-----BEGIN PUBLIC KEY-----")
    before = path.read_bytes()
    capsys.readouterr()
    assert drcheck(["keygen", str(path)]) == 1
    assert the_line(capsys.readouterr().err) == (
        f"drcheck keygen: {path} exists; keys are never overwritten")
    assert path.read_bytes() == before


def test_an_encrypted_key_needs_its_passphrase(bundle: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(PASSPHRASE_VARIABLE, "correct horse")
    assert drcheck(["keygen", str(tmp_path / "k.pem")]) == 0
    assert "ENCRYPTED PRIVATE KEY" in (tmp_path / "k.pem").read_text()
    sign(bundle, tmp_path / "k.pem")
    monkeypatch.delenv(PASSPHRASE_VARIABLE)
    capsys.readouterr()
    assert drcheck(["sign", str(bundle), "--key", str(tmp_path / "k.pem")]) == 1
    assert the_line(capsys.readouterr().err) == (
        f"drcheck sign: {tmp_path / 'k.pem'}: the private key is encrypted; put its passphrase "
        f"in {PASSPHRASE_VARIABLE}")
    assert "correct horse" not in os.environ.get(PASSPHRASE_VARIABLE, "")


def test_keys_that_are_not_ed25519_pem_are_refused(bundle: Path, keys: dict[str, Path],
                                                   tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    rsa_key = tmp_path / "rsa.pem"
    rsa_key.write_bytes(rsa.generate_private_key(public_exponent=65537, key_size=2048)
                        .private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    cases = [
        (["sign", str(bundle), "--key", str(rsa_key)],
         f"drcheck sign: {rsa_key}: not an Ed25519 key (RSA); bundles are signed with Ed25519 "
         "keys"),
        (["sign", str(bundle), "--key", pub(keys["ci"])],
         f"drcheck sign: {pub(keys['ci'])}: not a PEM private key (PKCS#8), or a wrong "
         "passphrase; make one with 'drcheck keygen' or 'openssl genpkey -algorithm ed25519'"),
        (["sign", str(bundle), "--key", str(tmp_path / "missing.pem")],
         f"drcheck sign: {tmp_path / 'missing.pem'}: no such private key file"),
        (["verify", str(bundle), "--pubkey", str(keys["ci"])],
         f"drcheck verify: FAILED: {keys['ci']}: not a PEM public key (SubjectPublicKeyInfo) "
         "(that is a private key: pass its public half)"),
    ]
    for argv, message in cases:
        capsys.readouterr()
        assert drcheck(argv) == 1, argv
        assert the_line(capsys.readouterr().err) == message
