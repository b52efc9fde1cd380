"""How to reach one host over SSH: the settings a caller gives, and what ssh_config made of them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pytest_drcheck.targets.ssh.target import SshTarget

HOST_KEY_POLICIES = ("strict", "accept-new")
# Concurrent session channels per connection. OpenSSH refuses more than MaxSessions (10 by
# default), and a slot is freed only some time after its channel closed: at 10 a burst of short
# commands met ~1 refusal in 4 opens (retried, but wasted round trips), at 8 none in 300, with
# the same throughput. The two spare slots also leave room for testinfra on the same client.
DEFAULT_MAX_SESSIONS = 8


@dataclass(frozen=True)
class SshSettings:
    """How to reach one host over SSH. Explicit values win over the ssh_config file's.

    ``port`` and ``user`` left as None take ssh_config's Port/User, else 22 and the local user
    name, as with OpenSSH; a value given here always wins. ``password`` is a callable so that
    the secret is fetched only when a connection needs it and is never in the settings' repr.
    """

    name: str
    address: str
    port: int | None = None
    user: str | None = None
    identity_file: str | None = None
    password: Callable[[], str] | None = field(default=None, repr=False, compare=False)
    known_hosts: str = "~/.ssh/known_hosts"
    host_key_policy: str = "strict"
    connect_timeout: float = 5.0
    ssh_config: str | None = None
    jump: SshTarget | None = field(default=None, compare=False)
    max_sessions: int = DEFAULT_MAX_SESSIONS

    def __post_init__(self) -> None:
        if self.host_key_policy not in HOST_KEY_POLICIES:
            raise ValueError(f"host_key_policy '{self.host_key_policy}' is not one of "
                             f"{', '.join(HOST_KEY_POLICIES)}")
        if self.max_sessions < 1:
            raise ValueError("max_sessions must be 1 or more")


@dataclass(frozen=True)
class Endpoint:
    """Settings after ssh_config was applied: what the connection really uses."""

    hostname: str
    port: int
    user: str
    key_files: tuple[str, ...]
    # A ProxyJump from ssh_config (only used when the settings name no jump).
    proxy_jump: str | None
