"""OpenSSH server on a recovery instance (the way the drill reaches it)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from pytest_drcheck.lab import probes
from pytest_drcheck.lab.commands import run
from pytest_drcheck.lab.components.base import Component, HostContext


def _pub(key: Path) -> Path:
    return key.with_name(key.name + ".pub")


def keygen(path: Path, comment: str) -> None:
    """A fresh passphrase-less ed25519 key pair at ``path`` (+ .pub)."""
    for stale in (path, _pub(path)):
        stale.unlink(missing_ok=True)
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)])


@dataclass(frozen=True)
class Sshd(Component):
    name: ClassVar[str] = "sshd"
    binary: ClassVar[str] = "sshd"
    package: ClassVar[str] = "openssh-server"

    port: int = 22

    def host_key(self, ctx: HostContext) -> Path:
        return ctx.dir / "ssh_host_ed25519_key"

    def config(self, ctx: HostContext) -> Path:
        return ctx.dir / "sshd_config"

    def prepare(self, ctx: HostContext) -> None:
        keygen(self.host_key(ctx), f"root@{ctx.host.name}")
        listen = "".join(f"ListenAddress {nic.address}\n" for nic in ctx.host.nics)
        # UsePAM no and StrictModes no: keys live in the state dir, not in a home directory,
        # and there is no PAM stack to speak of in a namespace. MaxSessions/MaxStartups are
        # raised because the drill multiplexes many channels and hosts in parallel.
        self.config(ctx).write_text(
            "# written by drcheck lab up\n"
            f"Port {self.port}\n"
            "AddressFamily inet\n"
            f"{listen}"
            f"HostKey {self.host_key(ctx)}\n"
            "PermitRootLogin prohibit-password\n"
            "PubkeyAuthentication yes\n"
            "PasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\n"
            "UsePAM no\n"
            "StrictModes no\n"
            "MaxSessions 64\n"
            "MaxStartups 64:30:128\n"
            f"AuthorizedKeysFile {ctx.paths.authorized_keys}\n"
            "PidFile none\n"
            "UseDNS no\n"
            "PrintMotd no\n"
            "Subsystem sftp internal-sftp\n")

    def argv(self, ctx: HostContext, binary: str) -> list[str]:
        # sshd re-executes itself for each connection, hence the absolute path.
        return [binary, "-D", "-e", "-f", str(self.config(ctx))]

    def probe(self, ctx: HostContext, timeout: float) -> str | None:
        for nic in ctx.host.nics:
            if nic.network.gateway is None:
                continue  # not reachable from the root namespace by design
            banner = probes.tcp_banner(nic.address, self.port, timeout)
            if banner is None or not banner.startswith("SSH-2.0-"):
                return f"no SSH banner on {nic.address}:{self.port}"
        return None

    def known_hosts(self, ctx: HostContext) -> list[str]:
        key = " ".join(_pub(self.host_key(ctx)).read_text().split()[:2])
        return [f"{nic.address} {key}" for nic in ctx.host.nics]

    def rotate_host_key(self, ctx: HostContext) -> tuple[bytes, bytes]:
        """Replace the host key with a new one; return the old (private, public) for restore."""
        key = self.host_key(ctx)
        pub = _pub(key)
        old = (key.read_bytes(), pub.read_bytes())
        # Kept on disk too, so that a crashed run's original key is still in the state dir.
        key.with_name(key.name + ".orig").write_bytes(old[0])
        keygen(key, f"root@{ctx.host.name} (rotated)")
        return old

    def restore_host_key(self, ctx: HostContext, old: tuple[bytes, bytes]) -> None:
        key = self.host_key(ctx)
        key.write_bytes(old[0])
        key.chmod(0o600)
        _pub(key).write_bytes(old[1])
        with contextlib.suppress(FileNotFoundError):
            key.with_name(key.name + ".orig").unlink()
