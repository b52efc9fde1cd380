"""Faults in the domain membership of the lab's member (db01 joined to the Samba AD).

Each is what a restored, domain-joined server meets in a real DR drill:

- ``machine_password_reset``: the DC holds a machine password the member no longer has (the
  account's password changed twice since the restore point: AD still accepts the previous one
  for NTLM, so one change is not enough to break the channel); undone by joining again.
- ``keytab_removed``: the member's host keytab is gone; its secret (secrets.tdb) stays.
- ``dc_unreachable``: nothing from the member reaches the DC (dropped, so connections time
  out as to a DC in an unrouted network); undone by waiting until winbindd reaches it again.
- ``clock_skewed``: every session on the member sees its clock ``seconds`` ahead
  (libfaketime), past Kerberos' 5 minutes.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from pytest_drcheck.lab.components.domain_member import WinbindMember
from pytest_drcheck.lab.components.samba import SambaDc
from pytest_drcheck.lab.components.sshd import Sshd
from pytest_drcheck.lab.errors import LabError
from pytest_drcheck.lab.faults import faketime
from pytest_drcheck.lab.faults.base import in_force, nft_table

if TYPE_CHECKING:
    from pytest_drcheck.lab.api import Lab

# Past Kerberos' default tolerance of 5 minutes, by a margin no scheduler delay eats.
DEFAULT_SKEW_SECONDS = 600


def _member(lab: Lab, host: str) -> WinbindMember:
    return lab.component(host, WinbindMember)


def _inside(lab: Lab, host: str, script: str, what: str, timeout: float = 30.0) -> str:
    done = lab.exec(host, ["sh", "-c", script], timeout=timeout)
    if done.returncode != 0:
        said = (done.stderr.strip() or done.stdout.strip()).splitlines()
        raise LabError(f"{what} on {host}: {said[-1] if said else f'exit {done.returncode}'}")
    return done.stdout


def rejoin(lab: Lab, host: str) -> None:
    """Join ``host`` again (a new machine password and keytab), as an administrator would."""
    auth = _member(lab, host).base(lab.context(host)) / "join.auth"
    _inside(lab, host, f"net ads join --no-dns-updates -A '{auth}'", "net ads join")


def wait_until_member_works(lab: Lab, host: str, timeout: float = 90.0) -> None:
    """Until winbindd reaches its DC and the machine secret is accepted (winbindd marks a
    domain offline for a while after losing its DC; Samba remembers a failed DC briefly)."""
    deadline = time.monotonic() + timeout
    while True:
        done = lab.exec(host, ["sh", "-c", "wbinfo --ping-dc && net ads testjoin"], timeout=30)
        if done.returncode == 0:
            return
        said = (done.stdout.strip() or done.stderr.strip()).splitlines()
        if time.monotonic() >= deadline:
            raise LabError(f"the domain member {host} did not recover within {timeout:g} s: "
                           f"{said[-1] if said else f'exit {done.returncode}'}")
        time.sleep(1.0)


@contextlib.contextmanager
def machine_password_reset(lab: Lab, host: str = "db01") -> Iterator[None]:
    dc_host, _ = lab.find(SambaDc)
    sam = lab.context(dc_host).dir / "samba" / "private" / "sam.ldb"
    account = f"{host.upper()}$"
    with in_force(lab, "machine_password_reset", host, f"{account} reset twice on {dc_host}"):
        try:
            for round_ in (1, 2):
                # Random, never shown: nobody is meant to know it.
                _inside(lab, dc_host,
                        f"pw=\"Reset{round_}-$(head -c 18 /dev/urandom | base64 | tr -d '+/=')"
                        f"-9z\"; samba-tool user setpassword '{account}' --newpassword=\"$pw\" "
                        f"-H '{sam}' >/dev/null", "samba-tool user setpassword")
            yield
        finally:
            rejoin(lab, host)
            wait_until_member_works(lab, host)


@contextlib.contextmanager
def keytab_removed(lab: Lab, host: str = "db01") -> Iterator[None]:
    with in_force(lab, "keytab_removed", host, "/etc/krb5.keytab moved away"):
        _inside(lab, host, "mv /etc/krb5.keytab /etc/krb5.keytab.drlab", "moving the keytab")
        try:
            yield
        finally:
            _inside(lab, host, "mv /etc/krb5.keytab.drlab /etc/krb5.keytab",
                    "restoring the keytab")


@contextlib.contextmanager
def dc_unreachable(lab: Lab, host: str = "db01") -> Iterator[None]:
    dc_host, _ = lab.find(SambaDc)
    address = lab.address(dc_host)
    body = (f"chain out {{ type filter hook output priority 0; policy accept;\n"
            f"  ip daddr {address} drop\n}}")
    with in_force(lab, "dc_unreachable", host, f"traffic to {dc_host} ({address}) dropped"):
        try:
            with nft_table(lab, host, body):
                yield
        finally:
            wait_until_member_works(lab, host)


@contextlib.contextmanager
def clock_skewed(lab: Lab, host: str = "db01",
                 seconds: int = DEFAULT_SKEW_SECONDS) -> Iterator[None]:
    """Every session on ``host`` (what the drill runs there) sees the clock ``seconds`` ahead:
    sshd hands libfaketime to its sessions (``SetEnv``), not to itself (sshd's sandboxed
    pre-auth child dies under it, measured: the connection is lost). The sessions share one
    libfaketime state made for the fault (see faults.faketime: without it, programs on the
    host died at random before they started)."""
    sshd = lab.component(host, Sshd)
    config = sshd.config(lab.context(host))
    original = config.read_text()
    with in_force(lab, "clock_skewed", host, f"sessions {seconds:+d} s"):
        shared = faketime.create_shared_state(lab, host, seconds)
        try:
            # SetEnv must come before any Match block: prepended.
            config.write_text(faketime.session_environment(seconds, shared) + original)
            try:
                lab.restart(host, sshd.name)
                yield
            finally:
                config.write_text(original)
                lab.restart(host, sshd.name)
        finally:
            faketime.remove_shared_state(lab, host, shared)
