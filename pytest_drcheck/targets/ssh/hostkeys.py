"""Host keys: strict checking against one known_hosts file, or OpenSSH's accept-new."""

from __future__ import annotations

import hmac
import os
import threading

import paramiko
import paramiko.hostkeys


class UnknownHostKey(paramiko.SSHException):
    def __init__(self, hostname: str, key: paramiko.PKey) -> None:
        super().__init__(f"unknown host key for {hostname}")
        self.hostname = hostname
        self.key = key


class StrictPolicy(paramiko.MissingHostKeyPolicy):
    def missing_host_key(self, client: paramiko.SSHClient, hostname: str,
                         key: paramiko.PKey) -> None:
        raise UnknownHostKey(hostname, key)


class AcceptNewPolicy(paramiko.MissingHostKeyPolicy):
    """OpenSSH's StrictHostKeyChecking=accept-new: record unknown keys, still refuse changed ones
    (paramiko reports a changed key before it ever consults this policy)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str,
                         key: paramiko.PKey) -> None:
        line = f"{hostname} {key.get_name()} {key.get_base64()}\n".encode()
        directory = os.path.dirname(self.path)
        if directory:
            os.makedirs(directory, mode=0o700, exist_ok=True)
        # One write to an O_APPEND descriptor: hosts accepted concurrently cannot interleave.
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)


def host_key_name(hostname: str, port: int) -> str:
    return hostname if port == 22 else f"[{hostname}]:{port}"


class KnownHosts:
    """One known_hosts file, read once per run (again only when it changed), indexed by host.

    paramiko's ``load_host_keys`` parses every key of the file for every connection and is
    quadratic in its length (1,000 entries: 218 ms per load, LAB-NOTES); a 1,000-host drill
    would spend minutes there. Here the lines are indexed by host name once, and only the
    looked-up host's keys are decoded. Matching is paramiko's: exact names and OpenSSH's hashed
    names (``|1|salt|hash``); marker lines (@cert-authority, @revoked) are skipped, as paramiko
    skips them.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.reads = 0  # how many times the file was parsed (for tests and benchmarks)
        self._lock = threading.Lock()
        self._signature: tuple[int, int, int] | None = None
        self._plain: dict[str, list[tuple[int, str]]] = {}
        self._hashed: list[tuple[str, int, str]] = []

    def keys_for(self, name: str) -> list[paramiko.PKey]:
        """The keys the file lists for ``name`` (``host`` or ``[host]:port``), in file order."""
        with self._lock:
            self._refresh()
            found = list(self._plain.get(name, []))
            found += [(number, line) for hashed, number, line in self._hashed
                      if hmac.compare_digest(paramiko.HostKeys.hash_host(name, hashed), hashed)]
        keys = []
        for number, line in sorted(found):
            try:
                entry = paramiko.hostkeys.HostKeyEntry.from_line(line, number)
            except paramiko.hostkeys.InvalidHostKey as exc:
                raise InvalidKnownHostsLine(self.path, number, exc) from None
            if entry is not None and entry.key is not None:
                keys.append(entry.key)
        return keys

    def _refresh(self) -> None:
        try:
            status = os.stat(self.path)
        except FileNotFoundError:
            self._signature, self._plain, self._hashed = None, {}, []
            return
        signature = (status.st_ino, status.st_size, status.st_mtime_ns)
        if signature == self._signature:
            return
        with open(self.path, encoding="utf-8", errors="replace") as file:
            text = file.read()
        plain: dict[str, list[tuple[int, str]]] = {}
        hashed: list[tuple[str, int, str]] = []
        for number, raw in enumerate(text.splitlines(), start=1):
            line = raw.strip()
            if not line or line.startswith(("#", "@")):
                continue
            for name in line.split(None, 1)[0].split(","):
                if name.startswith("|1|"):
                    hashed.append((name, number, line))
                else:
                    plain.setdefault(name, []).append((number, line))
        self._signature, self._plain, self._hashed = signature, plain, hashed
        self.reads += 1


class InvalidKnownHostsLine(Exception):
    def __init__(self, path: str, number: int, cause: Exception) -> None:
        super().__init__(f"known_hosts {path} line {number} is not a valid entry ({cause})")


_FILES: dict[str, KnownHosts] = {}
_FILES_LOCK = threading.Lock()


def known_hosts(path: str) -> KnownHosts:
    """The one KnownHosts of this file for the whole run."""
    with _FILES_LOCK:
        found = _FILES.get(path)
        if found is None:
            found = _FILES[path] = KnownHosts(path)
        return found


def trust_known_keys(client: paramiko.SSHClient, path: str, hostname: str, port: int) -> None:
    """Give the client the keys known_hosts lists for this host (and only those)."""
    name = host_key_name(hostname, port)
    for key in known_hosts(path).keys_for(name):
        client.get_host_keys().add(name, key.get_name(), key)
