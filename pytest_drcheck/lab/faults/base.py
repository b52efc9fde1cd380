"""What every fault shares: the record of a fault in force, and nftables tables of its own.

Each fault is a context manager that undoes itself when its ``with`` block ends. While in
force it is written to the state file: ``status`` shows it, and if the process holding it dies
without undoing it, ``up`` sees a stale fault and rebuilds. ``down`` removes everything a fault
changed anyway (namespaces, /etc/netns, state dir).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING

from pytest_drcheck.lab import procs
from pytest_drcheck.lab.commands import require
from pytest_drcheck.lab.errors import LabError
from pytest_drcheck.lab.state import BreakerState

if TYPE_CHECKING:
    from pytest_drcheck.lab.api import Lab


@contextlib.contextmanager
def in_force(lab: Lab, kind: str, host: str, detail: str) -> Iterator[None]:
    """Record a fault of ``kind`` on ``host`` for the duration of the block."""
    owner = procs.ref(os.getpid())
    if owner is None:
        raise LabError("cannot read /proc/self: is /proc mounted?")
    record = BreakerState(kind, host, detail, owner)
    state = lab.state()
    state.breakers.append(record)
    lab.save(state)
    try:
        yield
    finally:
        state = lab.state()
        if record in state.breakers:
            state.breakers.remove(record)
        lab.save(state)


def nft(lab: Lab, host: str, script: str) -> None:
    """Run an nft script inside a lab host."""
    require("nft")
    done = lab.exec(host, ["nft", "-f", "-"], timeout=10.0, input=script)
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or [f"exit {done.returncode}"]
        raise LabError(f"nft on {host}: {lines[0]}")


@contextlib.contextmanager
def nft_table(lab: Lab, host: str, body: str) -> Iterator[None]:
    """A table of our own per fault: undoing it is deleting the table, which cannot
    disturb another fault's rules."""
    table = f"drlab_{uuid.uuid4().hex[:10]}"
    nft(lab, host, f"table inet {table} {{\n{body}\n}}\n")
    try:
        yield
    finally:
        nft(lab, host, f"delete table inet {table}\n")


def rewrite_in_place(path: os.PathLike[str] | str, data: bytes) -> None:
    """Replace a file's content, never the file: its inode (bind-mounted into a host's
    namespace), mode and owner stay."""
    with open(path, "r+b") as handle:
        handle.write(data)
        handle.truncate()


def check_ip(ip: str) -> None:
    try:
        ipaddress.IPv4Address(ip)
    except ValueError:
        raise LabError(f"{ip!r} is not an IPv4 address") from None
