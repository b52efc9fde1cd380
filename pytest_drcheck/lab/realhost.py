"""A "real host": a network namespace plus its own hostname, process table and /run.

``ip netns exec`` enters the network namespace and bind-mounts /etc/netns/<ns>/{hosts,
resolv.conf} over /etc; ``unshare`` adds UTS, PID and mount namespaces. The host's PID 1 is a
small shell that reaps orphans like an init would (this machine's own PID 1 reaps slowly),
and every later process in the host, daemons and ``exec``, enters all its namespaces with
``nsenter -t <that PID 1> -a``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from pytest_drcheck.lab import procs
from pytest_drcheck.lab.commands import CLEAN_ENV, require
from pytest_drcheck.lab.errors import LabError
from pytest_drcheck.lab.procs import ProcRef

READY_MARK = "/run/drlab-ready"

# $1 is the host name. /run becomes a private tmpfs (sshd wants /run/sshd, and nothing a
# daemon drops there should reach the real machine). IPv6 is turned off before the NICs come
# up. The loop keeps PID 1 alive and, through ``wait``, reaps every orphan.
_INIT = f"""
hostname "$1" || exit 1
mount -t tmpfs -o mode=0755,size=16m drlab-run /run || exit 1
mkdir -p /run/sshd
# The machine's root login files are not the instance's: Debian's bash reads ~/.bashrc for
# every command sshd runs, and a developer's (pyenv init: a rehash per session, waiting on a
# lock a killed session can leave behind) made every lab command hang.
for f in /root/.bashrc /root/.bash_profile /root/.profile
do [ -f "$f" ] && mount --bind /dev/null "$f"; done
for f in /proc/sys/net/ipv6/conf/all/disable_ipv6 /proc/sys/net/ipv6/conf/default/disable_ipv6
do [ -w "$f" ] && echo 1 > "$f"; done
: > {READY_MARK}
trap 'exit 0' TERM
while :; do sleep 3600 & wait $!; done
"""


def _spawn(argv: Sequence[str], log: Path) -> subprocess.Popen[bytes]:
    """Start a long-lived process detached from our session (a Ctrl-C in the developer's
    terminal must not take the lab down), output appended to ``log``."""
    with open(log, "ab") as out:
        return subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True,
                                env=dict(CLEAN_ENV), cwd="/")


def last_line(log: Path) -> str:
    try:
        lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return lines[-1].strip() if lines else ""


def start_host(netns: str, hostname: str, directory: Path) -> subprocess.Popen[bytes]:
    """Launch the host's PID 1; ``wait_host`` finds it. Split in two so that all hosts start
    in parallel. The script is a file so that ``ps`` shows a readable command line."""
    script = directory / "init.sh"
    script.write_text(_INIT)
    return _spawn([require("ip"), "netns", "exec", netns,
                   require("unshare"), "--uts", "--pid", "--fork", "--mount-proc",
                   "--kill-child", "--", "sh", str(script), hostname], directory / "init.log")


def wait_host(launcher: subprocess.Popen[bytes], hostname: str, directory: Path,
              timeout: float = 10.0) -> tuple[ProcRef, ProcRef]:
    """(PID 1 of the host, the unshare above it), once PID 1 has set the host up."""
    # ``ip netns exec`` execs unshare in place, so the launcher's PID is unshare's.
    unshare = procs.ref(launcher.pid)
    init = procs.wait_child(launcher.pid, "sh", timeout) if unshare else None
    deadline = time.monotonic() + timeout
    while unshare is not None and init is not None and procs.is_running(init):
        # /proc/PID/root resolves paths in that process's mount namespace: its private /run.
        if os.path.exists(f"/proc/{init.pid}/root{READY_MARK}"):
            return init, unshare
        if time.monotonic() >= deadline:
            break
        time.sleep(0.005)
    log = directory / "init.log"
    detail = last_line(log) or "no output"
    raise LabError(f"host {hostname} did not start: {detail} (log {log})")


def nsenter(init: ProcRef) -> list[str]:
    return [require("nsenter"), "-t", str(init.pid), "-a", "--"]


def check_alive(init: ProcRef, hostname: str) -> None:
    if not procs.is_running(init):
        raise LabError(f"host {hostname} is down (its PID 1, {init.pid}, is gone): "
                       "run drcheck lab up")


def start_daemon(init: ProcRef, hostname: str, argv: Sequence[str], comm: str, log: Path,
                 timeout: float = 5.0) -> tuple[ProcRef, ProcRef, subprocess.Popen[bytes]]:
    """Start ``argv`` in the foreground inside the host: (daemon, nsenter, nsenter's Popen).

    nsenter forks to enter the PID namespace, so the daemon is nsenter's child; its PID (as
    seen from the root namespace) is what we record and later signal.
    """
    check_alive(init, hostname)
    launcher = _spawn([*nsenter(init), *argv], log)
    launcher_ref = procs.ref(launcher.pid)
    daemon = procs.wait_child(launcher.pid, comm, timeout)
    if daemon is None or launcher_ref is None:
        try:
            launcher.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            # Its own session and process group: this also takes whatever it started.
            os.killpg(launcher.pid, signal.SIGKILL)
            launcher.wait(timeout=2.0)
        raise LabError(f"{comm} on {hostname} did not start: "
                       f"{last_line(log) or 'no output'} (log {log})")
    return daemon, launcher_ref, launcher


class HostCommandTimeout(LabError):
    """A command inside a lab host did not finish in time (it was killed)."""


def host_exec(init: ProcRef, hostname: str, argv: Sequence[str], timeout: float,
              input: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` inside the host and wait for it, killing it at the deadline."""
    check_alive(init, hostname)
    cmd = [*nsenter(init), *argv]
    # Own process group: on timeout the whole group goes, including nsenter's child inside
    # the host (a process group spans PID namespaces), not just nsenter.
    child = subprocess.Popen(cmd, stdin=subprocess.PIPE if input is not None else
                             subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, start_new_session=True, env=dict(CLEAN_ENV), cwd="/")
    try:
        out, err = child.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        child.communicate(timeout=5.0)
        raise HostCommandTimeout(f"{hostname}: {' '.join(argv)} did not finish within "
                                 f"{timeout:g} s") from None
    return subprocess.CompletedProcess(list(argv), child.returncode, out, err)
