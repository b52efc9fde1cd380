"""Secrets: read only when needed, bounded, never echoed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pytest_drcheck.evidence.redact import redactor_for
from pytest_drcheck.inventory import load_plan
from pytest_drcheck.inventory.secrets import MAX_SECRET_BYTES, SecretError, SecretRef

HEAD = "version: 1\ndrill: {name: t}\n"


def test_endless_file_is_refused_in_one_line() -> None:
    with pytest.raises(SecretError) as caught:
        SecretRef.parse("file:/dev/zero").resolve()
    assert str(caught.value) == ("secret file:/dev/zero is not a regular file; point file: at a "
                                 "regular file that holds only the secret")


def test_fifo_without_writer_does_not_hang(tmp_path: Path) -> None:
    fifo = tmp_path / "secret.fifo"
    os.mkfifo(fifo)
    with pytest.raises(SecretError, match="is not a regular file"):
        SecretRef.parse(f"file:{fifo}").resolve()


def test_large_file_is_refused_unread(tmp_path: Path) -> None:
    big = tmp_path / "big"
    big.write_bytes(b"s" * (MAX_SECRET_BYTES + 1))
    with pytest.raises(SecretError) as caught:
        SecretRef.parse(f"file:{big}").resolve()
    assert str(caught.value) == (f"secret file:{big} is larger than 64 KiB; point file: at a "
                                 "regular file that holds only the secret")


def test_secret_file_is_read_and_its_newline_dropped(tmp_path: Path) -> None:
    small = tmp_path / "small"
    small.write_text("Hunter2-canary\n")
    assert SecretRef.parse(f"file:{small}").resolve() == "Hunter2-canary"


def test_redactor_reads_secrets_on_first_use_only(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "password"
    secret.write_text("Hunter2-canary")
    inventory = tmp_path / "site.yaml"
    inventory.write_text(HEAD + f"hosts:\n  app01:\n    address: 10.0.0.1\n"
                                f"    connection: {{password: 'file:{secret}'}}\n")
    plan = load_plan(inventory)
    reads: list[str] = []
    original = SecretRef.resolve

    def counting(self: SecretRef) -> str:
        reads.append(str(self))
        return original(self)

    monkeypatch.setattr(SecretRef, "resolve", counting)
    redactor = redactor_for(plan)
    assert reads == []
    assert redactor.text("pw=Hunter2-canary") == f"pw=[redacted file:{secret}]"
    assert reads == [f"file:{secret}"]


def test_collect_only_reads_no_secret(pytester: pytest.Pytester,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: INTERNALERROR> MemoryError for file:/dev/zero, read at pytest start."""
    def refuse(self: SecretRef) -> str:
        raise AssertionError(f"collection read secret {self}")

    monkeypatch.setattr(SecretRef, "resolve", refuse)
    pytester.path.joinpath("site.yaml").write_text(
        HEAD + "hosts:\n  app01:\n    address: 10.0.0.1\n"
               "    connection: {password: 'file:/dev/zero'}\n"
               "    checks:\n      reach: [{target: '10.0.0.1:22'}]\n")
    result = pytester.runpytest("--dr-inventory=site.yaml", "--collect-only",
                                f"--dr-evidence={pytester.path / 'bundle'}")
    assert result.ret == pytest.ExitCode.OK, result.stdout.str() + result.stderr.str()
    assert "collection read secret" not in result.stdout.str() + result.stderr.str()
    result.stdout.fnmatch_lines(["*<CheckItem reach?10.0.0.1:22?>"])


def test_endless_secret_used_by_a_connection_fails_in_one_line(
        pytester: pytest.Pytester) -> None:
    """The password is read before any socket opens: nothing leaves loopback."""
    pytester.path.joinpath("site.yaml").write_text(
        HEAD + "hosts:\n  app01:\n    address: 127.0.0.1\n"
               "    connection: {password: 'file:/dev/zero', port: 9, connect_timeout: 2s}\n"
               "    checks:\n      reach: [{target: '127.0.0.1:9'}]\n")
    result = pytester.runpytest("--dr-inventory=site.yaml", "-p", "no:cacheprovider")
    output = result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.TESTS_FAILED, output
    assert "Traceback" not in output and "MemoryError" not in output
    # Said once, in the drcheck summary's unreachable hosts (the item points there).
    assert ("  app01 (1 check): cannot get the SSH password: secret file:/dev/zero is not a "
            "regular file; point file: at a regular file that holds only the secret") in output
