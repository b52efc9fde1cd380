"""The lab's shared inventory text loads as the connection it describes (no lab needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_drcheck.inventory import load_plan
from pytest_drcheck.lab.inventory_text import ssh_defaults
from pytest_drcheck.lab.paths import STATE_DIR_ENV


def test_ssh_defaults_load_as_the_labs_own_key_and_known_hosts(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(STATE_DIR_ENV, str(tmp_path / "lab"))
    inventory = tmp_path / "site.yaml"
    inventory.write_text("version: 1\ndrill: {name: t}\n"
                         + ssh_defaults(timeout="20s", connect_timeout="5s", jump="logs01")
                         + "hosts:\n  app01: {address: 10.77.0.11}\n"
                         "  logs01: {address: 10.77.0.40}\n")
    plan = load_plan(inventory)
    connection = plan.hosts["app01"].connection
    assert (connection.type, connection.user, connection.connect_timeout, connection.jump) == (
        "ssh", "root", 5.0, "logs01")
    assert connection.identity_file == str(tmp_path / "lab" / "ssh" / "id_ed25519")
    assert connection.known_hosts == str(tmp_path / "lab" / "ssh" / "known_hosts")
