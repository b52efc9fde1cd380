"""The local sandbox DR site: real daemons in network namespaces (see LAB-NOTES.md).

``Lab`` is the API tests use; ``lab_main`` is what ``drcheck lab`` runs.
"""

from pytest_drcheck.lab.api import Lab, LabStatus, UpReport
from pytest_drcheck.lab.errors import LabError, LabNotUpError
from pytest_drcheck.lab.lock import lab_lock
from pytest_drcheck.lab.realhost import HostCommandTimeout

__all__ = ["HostCommandTimeout", "Lab", "LabError", "LabNotUpError", "LabStatus", "UpReport",
           "lab_lock"]
