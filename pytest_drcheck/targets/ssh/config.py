"""ssh_config and ProxyJump: what the settings become once OpenSSH's config file is applied."""

from __future__ import annotations

import getpass
import os
import shlex
import threading
from collections.abc import Callable
from typing import Any

import paramiko

from pytest_drcheck.targets.base import TargetError
from pytest_drcheck.targets.ssh.config_index import IndexedConfig
from pytest_drcheck.targets.ssh.settings import Endpoint, SshSettings


def resolve_endpoint(settings: SshSettings) -> Endpoint:
    options = ssh_config_options(settings.name, settings.ssh_config, settings.address)
    try:
        port = settings.port or int(options.get("port", 22))
    except ValueError:
        raise TargetError(f"{settings.name}: ssh_config {settings.ssh_config} has Port "
                          f"'{options.get('port')}', not a number") from None
    if settings.identity_file:
        key = os.path.expanduser(settings.identity_file)
        if not os.path.exists(key):
            raise TargetError(f"{settings.name}: identity_file {key} does not exist")
        keys: tuple[str, ...] = (key,)
    else:
        # Like ssh, IdentityFile lines naming absent files are skipped.
        keys = tuple(os.path.expanduser(p) for p in options.get("identityfile", [])
                     if os.path.exists(os.path.expanduser(p)))
    proxy = options.get("proxyjump")
    return Endpoint(
        hostname=options.get("hostname", settings.address), port=port,
        user=settings.user or options.get("user") or getpass.getuser(), key_files=keys,
        proxy_jump=None if settings.jump is not None or proxy in (None, "none") else proxy)


def ssh_config_options(name: str, path: str | None, host: str) -> dict[str, Any]:
    if path is None:
        return {}
    return SSH_CONFIGS.parsed(name, os.path.expanduser(path)).lookup(host)


class SshConfigFiles:
    """ssh_config files parsed once per run (again only when one changed), shared by all hosts.

    Every host of a drill looks up the same file; parsing it per host is quadratic in the
    drill's size when the file has a Host block per instance (a DR site's usual shape), as
    known_hosts was. A file that cannot be used is remembered too, and refused for every host
    that names it, each with its own name. Lookups read only the blocks that can apply to
    the host (config_index.py).
    """

    def __init__(self) -> None:
        self.reads = 0  # how many times a file was parsed (for tests and benchmarks)
        self._lock = threading.Lock()
        self._files: dict[str, tuple[tuple[int, int, int], IndexedConfig | str]] = {}

    def parsed(self, name: str, path: str) -> IndexedConfig:
        try:
            info = os.stat(path)
        except OSError as exc:
            raise TargetError(f"{name}: cannot read ssh_config {path}: {exc.strerror}") from None
        signature = (info.st_mtime_ns, info.st_size, info.st_ino)
        with self._lock:
            cached = self._files.get(path)
            if cached is None or cached[0] != signature:
                cached = (signature, self._parse(path))
                self._files[path] = cached
        config = cached[1]
        if isinstance(config, str):
            raise TargetError(f"{name}: {config}")
        return config

    def _parse(self, path: str) -> IndexedConfig | str:
        """The parsed file, or why it cannot be used (without a host's name)."""
        self.reads += 1
        try:
            with open(path, encoding="utf-8", errors="replace") as file:
                text = file.read()
            return match_exec_problem(path, text) or IndexedConfig(text)
        except OSError as exc:
            return f"cannot read ssh_config {path}: {exc.strerror}"
        except paramiko.SSHException as exc:
            return f"ssh_config {path} is not valid: {exc}"


SSH_CONFIGS = SshConfigFiles()


# Match criteria that take no argument (the others are followed by one).
_BARE_CRITERIA = {"all", "canonical", "final"}


def match_exec_problem(path: str, text: str) -> str | None:
    """Why the file (``text``, read from ``path``) is refused if it has a ``Match exec`` block,
    else None.

    paramiko would run that command on this machine for every lookup that reaches the block,
    through invoke, with no timeout, reading the runner's stdin (under pytest that fails with
    ThreadException, and every check of the host became ``internal error: ThreadException``).
    A drill does not run local commands from a config file: it says so, once, per host.
    """
    for number, line in enumerate(text.splitlines(), start=1):
        words = line.strip().replace("=", " ", 1).split(None, 1)
        if len(words) < 2 or words[0].lower() != "match":
            continue
        try:
            tokens = shlex.split(words[1])
        except ValueError:
            continue  # paramiko reports the malformed line itself
        while tokens:
            keyword = tokens.pop(0).lower().lstrip("!")
            if keyword == "exec":
                return (f"ssh_config {path} line {number} uses `Match exec`, which "
                        "pytest-drcheck does not run (it would run a local command for every "
                        "host); give the inventory an ssh_config without it, e.g. with Host "
                        "blocks")
            if keyword not in _BARE_CRITERIA and tokens:
                tokens.pop(0)
    return None


def proxy_jump_chain(settings: SshSettings, spec: str,
                     make: Callable[[SshSettings], Any]) -> Any:
    """Targets for ``ProxyJump a,b``: b is reached through a, the host through b.

    ``make`` builds one hop's target from its settings (SshTarget; passed in because the target
    module imports this one).
    """
    previous: Any = None
    for hop in spec.split(","):
        user, host, port = parse_hop(settings.name, hop.strip())
        # The hop's own ssh_config entry supplies HostName/User/Port/IdentityFile; its ProxyJump
        # is not followed (this chain already says how to reach it, and `Host *` would loop).
        options = ssh_config_options(settings.name, settings.ssh_config, host)
        hop_port = port or int(options.get("port", 22))
        hop_keys = [p for p in options.get("identityfile", [])
                    if os.path.exists(os.path.expanduser(p))]
        previous = make(SshSettings(
            name=hop.strip(), address=options.get("hostname", host), port=hop_port,
            user=user or options.get("user") or settings.user,
            identity_file=hop_keys[0] if hop_keys else settings.identity_file,
            known_hosts=settings.known_hosts, host_key_policy=settings.host_key_policy,
            connect_timeout=settings.connect_timeout, jump=previous))
    assert previous is not None  # str.split always yields at least one element
    return previous


def parse_hop(name: str, hop: str) -> tuple[str | None, str, int | None]:
    rest = hop.removeprefix("ssh://")
    user, _, rest = rest.rpartition("@")
    host, port_text = rest, ""
    if rest.startswith("["):
        host, _, tail = rest[1:].partition("]")
        port_text = tail.removeprefix(":")
    elif rest.count(":") == 1:
        host, _, port_text = rest.partition(":")
    if not host or (port_text and not port_text.isdigit()):
        raise TargetError(f"{name}: ProxyJump '{hop}' is not [user@]host[:port]")
    return user or None, host, int(port_text) if port_text else None
