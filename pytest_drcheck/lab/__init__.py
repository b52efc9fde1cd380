"""The local sandbox DR site: real daemons in network namespaces (see LAB-NOTES.md).

``Lab`` is the API tests use; ``lab_main`` is what ``drcheck lab`` runs. The names below are
imported on first use, so that ``pytest_drcheck.lab.guard`` (asked by the plugin at every
session start) does not pull in the lab's daemons, ldap3 and dnspython.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pytest_drcheck.lab.api import Lab, LabStatus, UpReport
    from pytest_drcheck.lab.errors import LabError, LabNotUpError
    from pytest_drcheck.lab.lock import lab_lock
    from pytest_drcheck.lab.realhost import HostCommandTimeout

_WHERE = {
    "Lab": "api", "LabStatus": "api", "UpReport": "api",
    "LabError": "errors", "LabNotUpError": "errors",
    "lab_lock": "lock",
    "HostCommandTimeout": "realhost",
}

__all__ = ["HostCommandTimeout", "Lab", "LabError", "LabNotUpError", "LabStatus", "UpReport",
           "lab_lock"]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
