"""Errors the lab reports: always one line meant for the person at the terminal."""

from __future__ import annotations


class LabError(Exception):
    """Something the user can act on; ``str(exc)`` is one line that names the fix."""


class LabNotUpError(LabError):
    """There is no lab state: ``drcheck lab up`` has not run (or ``down`` did)."""
