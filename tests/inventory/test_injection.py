"""No inventory value reaches a shell or ssh_config as syntax: host addresses are host names or
IP addresses (checked at load), and the backup check quotes the server it names."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from pytest_drcheck.checks.backup import address_command
from pytest_drcheck.inventory import InventoryError, load_plan

# The payloads that executed through an ssh_config `Match exec "... %h"` before the fix.
PAYLOADS = ["a;touch /tmp/drcheck-pwned", "$(touch /tmp/drcheck-pwned)",
            "`touch /tmp/drcheck-pwned`", "a\ntouch /tmp/drcheck-pwned", "a && reboot",
            "a | sh", "a'b", 'a"b', "a b", "10.0.0.1:99999", " ", "app01\n", "-oProxyCommand=x",
            "999.1.1.1", "fe80::1%$(id)", "[fd00::1]"]
GOOD = ["10.0.0.1", "app01", "app01.corp.example", "fd00::11", "db-01.example.", "203.0.113.10"]


def load_with_address(tmp_path: Path, address: str) -> None:
    path = tmp_path / "site.yaml"
    quoted = address.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    path.write_text(f'version: 1\ndrill: {{name: t}}\nhosts:\n  app01:\n'
                    f'    address: "{quoted}"\n')
    load_plan(path, display_name="site.yaml")


@pytest.mark.parametrize("address", PAYLOADS)
def test_address_that_is_no_host_name_or_ip_is_refused(tmp_path: Path, address: str) -> None:
    with pytest.raises(InventoryError) as caught:
        load_with_address(tmp_path, address)
    message = str(caught.value)
    assert message.startswith("site.yaml:5: hosts.app01.address: ")
    assert "expected a host name (app01.corp.example) or an IP address (10.0.0.1)" in message
    assert len(message.splitlines()) == 1


@pytest.mark.parametrize("address", GOOD)
def test_host_names_and_ip_addresses_are_accepted(tmp_path: Path, address: str) -> None:
    load_with_address(tmp_path, address)


def test_backup_address_command_quotes_the_server(tmp_path: Path) -> None:
    """Run the command with a getent that finds nothing: the error message names the server
    literally and nothing in the name is executed."""
    stubs = tmp_path / "bin"
    stubs.mkdir()
    (stubs / "getent").write_text("#!/bin/sh\nexit 2\n")
    (stubs / "getent").chmod(0o755)
    marker = tmp_path / "executed"
    server = f'x"; touch {marker}; echo "$(touch {marker})`touch {marker}`'
    done = subprocess.run(["/bin/sh", "-c", address_command(server)], capture_output=True,
                          text=True, timeout=60, env={"PATH": f"{stubs}:/usr/bin:/bin"})
    assert not marker.exists()
    assert done.returncode == 2
    assert done.stderr.strip() == f"cannot resolve {server} on the instance"
