"""The operations daemons of the lab, run as plain processes on 127.0.0.1 for pytester drills:
rsyslog (TCP and UDP syslog into a file), bacula-fd, clamd. Started in the foreground, stopped
by their own Popen handle, every wait bounded."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from pytest_drcheck.lab.components.bacula import LAB_PASSWORD
from pytest_drcheck.lab.components.clamav import write_database

START_TIMEOUT = 10.0


def free_port() -> int:
    """A port nothing listens on right now (TCP and UDP)."""
    while True:
        with socket.socket() as tcp, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            tcp.bind(("127.0.0.1", 0))
            port: int = tcp.getsockname()[1]
            try:
                udp.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port


def binary(name: str) -> str:
    path = shutil.which(name, path="/usr/sbin:/usr/bin:/sbin:/bin")
    if path is None:
        pytest.skip(f"{name} is not installed (scripts/install.sh installs it)")
    return path


class Daemon:
    def __init__(self, argv: list[str], log: Path) -> None:
        self.log = log
        with open(log, "ab") as out:
            self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                            stderr=subprocess.STDOUT, start_new_session=True)

    def wait_tcp(self, port: int, send: bytes = b"", expect: bytes = b"") -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"exited {self.process.returncode}: "
                                   f"{self.log.read_text(errors='replace')[-500:]}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                    if not send:
                        return
                    sock.settimeout(1)
                    sock.sendall(send)
                    if expect in sock.recv(64):
                        return
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"nothing answered on 127.0.0.1:{port} in {START_TIMEOUT:g} s")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def rsyslog(directory: Path, port: int) -> tuple[Daemon, Path]:
    received = directory / "received.log"
    conf = directory / "rsyslog.conf"
    conf.write_text(
        f'global(workDirectory="{directory}")\n'
        'module(load="imudp")\nmodule(load="imtcp")\n'
        'template(name="t" type="string" string="%timegenerated:::date-rfc3339% '
        '%fromhost-ip% %hostname% %syslogtag% %msg%\\n")\n'
        f'input(type="imudp" address="127.0.0.1" port="{port}" ruleset="remote")\n'
        f'input(type="imtcp" address="127.0.0.1" port="{port}" ruleset="remote")\n'
        f'action(type="omfile" file="{directory / "internal.log"}")\n'
        f'ruleset(name="remote") {{ action(type="omfile" file="{received}" template="t") }}\n')
    daemon = Daemon([binary("rsyslogd"), "-n", "-f", str(conf), "-i",
                     str(directory / "rsyslogd.pid")], directory / "rsyslogd.out")
    daemon.wait_tcp(port)
    return daemon, received


def bacula_fd(directory: Path, port: int, director: str) -> Daemon:
    conf = directory / "bacula-fd.conf"
    conf.write_text(
        f'Director {{\n  Name = {director}\n  Password = "{LAB_PASSWORD}"\n}}\n'
        f"FileDaemon {{\n  Name = loopback-fd\n  FDport = {port}\n  FDAddress = 127.0.0.1\n"
        f"  WorkingDirectory = {directory}\n  Pid Directory = {directory}\n}}\n"
        f"Messages {{\n  Name = Standard\n  director = {director} = all\n}}\n")
    daemon = Daemon([binary("bacula-fd"), "-f", "-c", str(conf)], directory / "bacula-fd.out")
    daemon.wait_tcp(port)
    return daemon


def clamd(directory: Path, port: int) -> Daemon:
    database = directory / "db"
    write_database(database)
    conf = directory / "clamd.conf"
    conf.write_text(
        f"Foreground yes\nDatabaseDirectory {database}\nTCPSocket {port}\nTCPAddr 127.0.0.1\n"
        f"LocalSocket {directory / 'clamd.ctl'}\nPidFile {directory / 'clamd.pid'}\n"
        # As root, clamd would switch to a clamav account unless told to stay.
        + ("User root\n" if os.geteuid() == 0 else "") + "SelfCheck 0\n")
    daemon = Daemon([binary("clamd"), "-c", str(conf)], directory / "clamd.out")
    daemon.wait_tcp(port, b"zPING\0", b"PONG")
    return daemon
