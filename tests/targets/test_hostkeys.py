"""known_hosts: read once per run, indexed by host; strict checking unchanged."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from pytest_drcheck.targets.base import TargetError
from pytest_drcheck.targets.ssh.hostkeys import known_hosts
from tests.targets.conftest import MakeTarget
from tests.targets.sshd import Sshd, keygen, public_key_line
from tests.targets.test_ssh import fingerprint


def other_hosts(tmp_path: Path, count: int) -> list[str]:
    kind, blob = public_key_line(keygen(tmp_path / "others")).split()[:2]
    return [f"host{i}.example,10.1.{i // 250}.{i % 250} {kind} {blob}" for i in range(count)]


def test_a_large_known_hosts_is_read_once_for_many_connections(
        make_target: MakeTarget, sshd: Sshd, tmp_path: Path) -> None:
    lines = other_hosts(tmp_path, 1000)
    lines.insert(500, sshd.host_key_line)
    path = tmp_path / "big_known_hosts"
    path.write_text("\n".join(lines) + "\n")
    for name in ("app01", "app02", "app03"):
        assert make_target(name=name, known_hosts=str(path)).run("echo ok", 60).stdout == "ok\n"
    assert known_hosts(str(path)).reads == 1


def test_a_changed_file_is_read_again(make_target: MakeTarget, sshd: Sshd, tmp_path: Path
                                      ) -> None:
    path = tmp_path / "known_hosts"
    path.write_text("\n".join(other_hosts(tmp_path, 3)) + "\n")
    with pytest.raises(TargetError, match="unknown host key"):
        make_target(known_hosts=str(path)).connect()
    with path.open("a") as file:
        file.write(sshd.host_key_line + "\n")
    assert make_target(known_hosts=str(path)).run("echo now", 60).stdout == "now\n"
    assert known_hosts(str(path)).reads == 2


def hashed(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-H", "-f", str(path)], check=True, capture_output=True)
    assert "[127.0.0.1]" not in path.read_text()


def test_hashed_entries_are_trusted(make_target: MakeTarget, sshd: Sshd, tmp_path: Path) -> None:
    path = tmp_path / "hashed_known_hosts"
    path.write_text("\n".join([*other_hosts(tmp_path, 5), sshd.host_key_line]) + "\n")
    hashed(path)
    assert make_target(known_hosts=str(path)).run("echo hashed", 60).stdout == "hashed\n"


def test_a_hashed_entry_with_another_key_is_a_mismatch(make_target: MakeTarget, sshd: Sshd,
                                                       tmp_path: Path) -> None:
    other = keygen(tmp_path / "other_host_key")
    kind, blob = public_key_line(other).split()[:2]
    path = tmp_path / "hashed_changed"
    path.write_text(f"[127.0.0.1]:{sshd.port} {kind} {blob}\n")
    hashed(path)
    with pytest.raises(TargetError) as caught:
        make_target(known_hosts=str(path)).connect()
    assert str(caught.value).startswith(
        f"app01: host key mismatch for [127.0.0.1]:{sshd.port}: presented ssh-ed25519 "
        f"{fingerprint(Path(f'{sshd.host_key}.pub'))}, expected ssh-ed25519 "
        f"{fingerprint(Path(f'{other}.pub'))} from {path}; ")


def test_a_broken_line_for_this_host_is_named(make_target: MakeTarget, sshd: Sshd,
                                              tmp_path: Path) -> None:
    path = tmp_path / "broken"
    path.write_text(f"# comment\n[127.0.0.1]:{sshd.port} ssh-ed25519 not!base64\n")
    with pytest.raises(TargetError) as caught:
        make_target(known_hosts=str(path)).connect()
    assert str(caught.value).startswith(
        f"app01: known_hosts {path} line 2 is not a valid entry (")
    assert "\n" not in str(caught.value)


def test_broken_lines_of_other_hosts_do_not_matter(make_target: MakeTarget, sshd: Sshd,
                                                   tmp_path: Path) -> None:
    path = tmp_path / "partly_broken"
    path.write_text(f"elsewhere ssh-ed25519 not!base64\n{sshd.host_key_line}\n")
    assert make_target(known_hosts=str(path)).run("echo fine", 60).stdout == "fine\n"
