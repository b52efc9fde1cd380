"""Credential faults: the secret the drill reads is not the one the site accepts."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

from pytest_drcheck.lab.errors import LabError
from pytest_drcheck.lab.faults.base import in_force, rewrite_in_place

if TYPE_CHECKING:
    from pytest_drcheck.lab.api import Lab


@contextlib.contextmanager
def wrong_secret(lab: Lab, name: str, value: str) -> Iterator[None]:
    """The lab secret file ``name`` (what inventories read through ``file:``) holds ``value``
    instead of what the lab's daemons were given, until the block ends."""
    path = lab.paths.secrets_dir / name
    if not path.is_file():
        raise LabError(f"no lab secret {name!r} in {lab.paths.secrets_dir}: run drcheck lab up")
    original = path.read_bytes()
    with in_force(lab, "wrong_secret", "-", f"{name} replaced"):
        # In place: the file's mode (0600) and owner stay.
        rewrite_in_place(path, value.encode() + b"\n")
        try:
            yield
        finally:
            rewrite_in_place(path, original)
