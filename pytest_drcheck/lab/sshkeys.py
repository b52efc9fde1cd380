"""The lab's SSH trust: one client key for root on every instance, and a known_hosts file."""

from __future__ import annotations

from collections.abc import Iterable

from pytest_drcheck.lab.components.sshd import keygen
from pytest_drcheck.lab.paths import LabPaths


def make_client_key(paths: LabPaths) -> None:
    keygen(paths.client_key, "drcheck-lab")
    pub = paths.client_key.with_name(paths.client_key.name + ".pub").read_text()
    paths.authorized_keys.write_text(pub)
    paths.authorized_keys.chmod(0o600)


def write_known_hosts(paths: LabPaths, lines: Iterable[str]) -> None:
    # Plain (not hashed) so that a person can read which address has which key.
    paths.known_hosts.write_text("".join(f"{line}\n" for line in lines))
