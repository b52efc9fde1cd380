"""Builds each inventory host's target from its connection settings."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from typing import Protocol

from pytest_drcheck.inventory.plan import ConnectionSpec, HostSpec
from pytest_drcheck.targets.base import Target, TargetError

_JUMP = re.compile(r"^(?:(?P<user>[^@\s]+)@)?(?P<host>\[[^\]]+\]|[^:\s]+)(?::(?P<port>\d+))?$")


class TargetProvider(Protocol):
    """An optional layer that makes some hosts' targets (the aws extra: hosts found in AWS)."""

    def handles(self, host: HostSpec) -> bool: ...

    def make_target(self, host: HostSpec, target_of: Callable[[str], Target]) -> Target: ...


class TargetFactory:
    """Creates targets; jump hosts that are not inventory hosts are shared here by address."""

    def __init__(self) -> None:
        self._jumps: dict[str, Target] = {}
        self._lock = threading.Lock()
        self.providers: list[TargetProvider] = []

    def __call__(self, host: HostSpec, target_of: Callable[[str], Target]) -> Target:
        provider = next((p for p in self.providers if p.handles(host)), None)
        target = (provider.make_target(host, target_of) if provider is not None
                  else self.plain(host, target_of))
        target.lookup_timeout = host.connection.command_timeout
        if host.read_only:
            # A source server: only commands on the read-only allowlist ever reach it.
            from pytest_drcheck.targets.readonly import ReadOnlyTarget

            return ReadOnlyTarget(target)
        return target

    def plain(self, host: HostSpec, target_of: Callable[[str], Target]) -> Target:
        """The target of the host's connection type, whatever the providers would make."""
        connection = host.connection
        if connection.type == "local":
            from pytest_drcheck.targets.local import LocalTarget

            return LocalTarget(host.name)
        if connection.type == "ssh":
            target = self._ssh(host.name, host.address or "", connection,
                               self._jump(connection, target_of))
            target.platform = host.platform  # OpenSSH for Windows: PowerShell batches
            return target
        if connection.type == "winrm":
            from pytest_drcheck.targets.winrm import winrm_target

            return winrm_target(host)
        raise TargetError(f"connection type '{connection.type}' is not available here")

    def _jump(self, connection: ConnectionSpec, target_of: Callable[[str], Target]
              ) -> Target | None:
        if connection.jump is None:
            return None
        try:
            return target_of(connection.jump)
        except KeyError:
            pass  # not an inventory host: an address
        match = _JUMP.match(connection.jump)
        if match is None:
            raise TargetError(f"jump '{connection.jump}' is not [user@]host[:port]")
        with self._lock:
            if connection.jump not in self._jumps:
                settings = ConnectionSpec(
                    user=match.group("user") or connection.user,
                    port=int(match.group("port") or 22),
                    identity_file=connection.identity_file, password=connection.password,
                    known_hosts=connection.known_hosts,
                    host_key_policy=connection.host_key_policy,
                    connect_timeout=connection.connect_timeout,
                    command_timeout=connection.command_timeout,
                    ssh_config=connection.ssh_config)
                self._jumps[connection.jump] = self._ssh(
                    f"jump {connection.jump}", match.group("host").strip("[]"), settings, None)
            return self._jumps[connection.jump]

    @staticmethod
    def _ssh(name: str, address: str, connection: ConnectionSpec, jump: Target | None
             ) -> Target:
        from pytest_drcheck.targets.ssh import SshSettings, SshTarget

        if jump is not None and not isinstance(jump, SshTarget):
            raise TargetError(f"jump host {jump.name} must be reached over ssh")
        password = connection.password.resolve if connection.password is not None else None
        return SshTarget(SshSettings(
            name=name, address=address, port=connection.port, user=connection.user,
            identity_file=connection.identity_file, password=password,
            known_hosts=connection.known_hosts, host_key_policy=connection.host_key_policy,
            connect_timeout=connection.connect_timeout, ssh_config=connection.ssh_config,
            jump=jump))

    def close(self) -> None:
        with self._lock:
            jumps = list(self._jumps.values())
        for jump in jumps:
            jump.close()
