"""Directory faults: a domain controller presenting a certificate nobody trusts."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from typing import TYPE_CHECKING

from pytest_drcheck.lab.components import pki
from pytest_drcheck.lab.components.ldap import Slapd
from pytest_drcheck.lab.faults.base import in_force

if TYPE_CHECKING:
    from pytest_drcheck.lab.api import Lab


@contextlib.contextmanager
def untrusted_certificate(lab: Lab, host: str) -> Iterator[None]:
    """slapd on ``host`` presents a certificate for its right names, signed by a CA nobody
    trusts, until the block ends."""
    slapd = lab.component(host, Slapd)
    ctx = lab.context(host)
    current = slapd.certificate(ctx)
    saved = (current.cert.read_bytes(), current.key.read_bytes())
    with in_force(lab, "untrusted_certificate", host, "slapd presents a rogue-CA certificate"):
        rogue = pki.issue(pki.rogue_ca(ctx.paths), ctx.dir / "slapd", "rogue", slapd.names)
        shutil.copyfile(rogue.cert, current.cert)
        shutil.copyfile(rogue.key, current.key)
        try:
            lab.restart(host, slapd.name)
            yield
        finally:
            current.cert.write_bytes(saved[0])
            current.key.write_bytes(saved[1])
            lab.restart(host, slapd.name)
