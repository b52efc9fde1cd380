"""Lab daemons: one module per kind of service, each a ``Component`` (see ``base.py``)."""

from pytest_drcheck.lab.components.base import Component, HostContext

__all__ = ["Component", "HostContext"]
