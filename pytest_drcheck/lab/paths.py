"""Where the lab keeps its files.

One place decides the layout so that ``down`` can remove exactly what ``up`` wrote.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_STATE_DIR = Path("/var/tmp/drcheck-lab")
# The lock is machine-wide on purpose: namespace and bridge names are global, so two labs with
# different state dirs would still collide.
LOCK_PATH = Path("/var/tmp/drcheck-lab.lock")
STATE_DIR_ENV = "DRCHECK_LAB_DIR"
ETC_NETNS = Path("/etc/netns")
RUN_NETNS = Path("/run/netns")


def state_dir_from_env() -> Path:
    value = os.environ.get(STATE_DIR_ENV, "").strip()
    return Path(value) if value else DEFAULT_STATE_DIR


@dataclass(frozen=True)
class LabPaths:
    """The files of one lab under its state directory."""

    root: Path

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    @property
    def ssh_dir(self) -> Path:
        return self.root / "ssh"

    @property
    def client_key(self) -> Path:
        return self.ssh_dir / "id_ed25519"

    @property
    def authorized_keys(self) -> Path:
        return self.ssh_dir / "authorized_keys"

    @property
    def known_hosts(self) -> Path:
        return self.ssh_dir / "known_hosts"

    @property
    def hosts_dir(self) -> Path:
        return self.root / "hosts"

    def host_dir(self, host: str) -> Path:
        return self.hosts_dir / host

    @property
    def pki_dir(self) -> Path:
        """The lab CA (what drills trust) and the rogue CA (what breakers use)."""
        return self.root / "pki"

    @property
    def secrets_dir(self) -> Path:
        """Secrets the lab's daemons were given, read by drills through ``file:`` refs."""
        return self.root / "secrets"

    def owned_entries(self) -> tuple[Path, ...]:
        """Everything ``up`` may create directly under the state dir (``down`` removes these)."""
        return (self.state_file, self.ssh_dir, self.hosts_dir, self.pki_dir, self.secrets_dir)
