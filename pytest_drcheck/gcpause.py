"""The cyclic garbage collector, paused while long-lived objects are made."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic collection inside: loading a large drill makes hundreds of thousands of
    objects that all stay alive, so the collector's passes over them find nothing and cost a
    tenth of the load. Re-enabled afterwards only if it was enabled before."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()
