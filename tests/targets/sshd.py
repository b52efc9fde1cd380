"""A real OpenSSH server on 127.0.0.1 for target tests (and the measurements in test_measure)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


def keygen(path: Path, kind: str = "ed25519") -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", "drcheck-test",
                    "-f", str(path)], check=True)
    return path


def public_key_line(path: Path) -> str:
    return Path(f"{path}.pub").read_text().strip()


def free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        port: int = sock.getsockname()[1]
    return port


@dataclass
class Sshd:
    """A running sshd; ``log`` is its stderr (-e), where it logs every authentication."""

    process: subprocess.Popen[bytes]
    port: int
    directory: Path
    host_key: Path
    client_key: Path
    log: Path

    @property
    def host_key_line(self) -> str:
        """This server's known_hosts line."""
        kind, blob = public_key_line(self.host_key).split()[:2]
        return f"[127.0.0.1]:{self.port} {kind} {blob}"

    def known_hosts(self, name: str = "known_hosts") -> Path:
        path = self.directory / name
        path.write_text(self.host_key_line + "\n")
        return path

    def accepted(self) -> int:
        """How many connections sshd has authenticated so far."""
        return len(re.findall(r"Accepted \w+ for ", self.log.read_text(errors="replace")))

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait()


def start_sshd(directory: Path, extra_config: tuple[str, ...] = ()) -> Sshd:
    directory.mkdir(parents=True, exist_ok=True)
    host_key = keygen(directory / "host_ed25519")
    client_key = keygen(directory / "client_ed25519")
    authorized = directory / "authorized_keys"
    authorized.write_text(public_key_line(client_key) + "\n")
    port = free_port()
    config = directory / "sshd_config"
    config.write_text("\n".join([
        f"Port {port}",
        "ListenAddress 127.0.0.1",
        f"HostKey {host_key}",
        "PidFile none",
        "UsePAM no",
        "StrictModes no",
        "PermitRootLogin yes",
        "PubkeyAuthentication yes",
        # Lets a wrong password be tried (and fail) against the real server.
        "PasswordAuthentication yes",
        "KbdInteractiveAuthentication no",
        f"AuthorizedKeysFile {authorized}",
        "AllowTcpForwarding yes",
        "LogLevel VERBOSE",
        *extra_config,
        "",
    ]))
    # sshd insists on its privilege-separation directory existing when started as root.
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    log = directory / "sshd.log"
    with log.open("wb") as sink:
        process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdout=sink,
                                   stderr=subprocess.STDOUT)
    server = Sshd(process, port, directory, host_key, client_key, log)
    _wait_for_banner(server)
    return server


def _wait_for_banner(server: Sshd) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"sshd exited: {server.log.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", server.port), timeout=1) as sock:
                if sock.recv(64).startswith(b"SSH-"):
                    return
        except OSError:
            time.sleep(0.05)
    server.stop()
    raise RuntimeError(f"sshd did not answer on port {server.port}: {server.log.read_text()}")
