"""Inventory: load YAML with line numbers, validate with JSON Schema, expand into a flat plan.

No pytest import and no network I/O here: ``drcheck validate`` and collection both use it.
"""

from pytest_drcheck.inventory.errors import InventoryError, Problem
from pytest_drcheck.inventory.loader import load_plan
from pytest_drcheck.inventory.plan import ConnectionSpec, DrillSpec, HostSpec, Plan

__all__ = [
    "ConnectionSpec",
    "DrillSpec",
    "HostSpec",
    "InventoryError",
    "Plan",
    "Problem",
    "load_plan",
]
