"""A fresh lab for the length of a benchmark, under the machine-wide lab lock."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from pytest_drcheck.lab import Lab, lab_lock


@contextlib.contextmanager
def fresh_lab(wait: float = 900.0) -> Iterator[Lab]:
    with lab_lock(wait):
        lab = Lab()
        lab.down()
        lab.up()
        try:
            yield lab
        finally:
            lab.down()
