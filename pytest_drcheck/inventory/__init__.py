"""Inventory: load YAML with line numbers, validate with JSON Schema, expand into a flat plan.

No pytest import and no network I/O here: ``drcheck validate`` and collection both use it.

The names below are imported on first use: importing a leaf of this package (vocabulary, as
extensions' schema fragments do) must not import the loader, which consults the extensions.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pytest_drcheck.inventory.errors import InventoryError, Problem
    from pytest_drcheck.inventory.loader import load_plan
    from pytest_drcheck.inventory.plan import ConnectionSpec, DrillSpec, HostSpec, Plan

_HOMES = {
    "ConnectionSpec": "plan", "DrillSpec": "plan", "HostSpec": "plan", "Plan": "plan",
    "InventoryError": "errors", "Problem": "errors", "load_plan": "loader",
}

__all__ = [
    "ConnectionSpec",
    "DrillSpec",
    "HostSpec",
    "InventoryError",
    "Plan",
    "Problem",
    "load_plan",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
