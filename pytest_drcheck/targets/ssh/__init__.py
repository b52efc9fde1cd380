"""SSH target (paramiko), by concern.

``settings`` (SshSettings, Endpoint), ``config`` (ssh_config and ProxyJump), ``hostkeys``,
``connection`` (opening one authenticated connection under one deadline), ``channels`` (the
transport that keeps each refusal's reason), ``exec`` (one command in a session), ``errors``
(one-line messages) and ``target`` (SshTarget, which ties them together).
"""

from pytest_drcheck.targets.result import TIMEOUT_STATUS
from pytest_drcheck.targets.ssh.connection import DEAD_AFTER_SECONDS
from pytest_drcheck.targets.ssh.errors import classify_open_failure
from pytest_drcheck.targets.ssh.exec import CLIENT_GRACE_SECONDS
from pytest_drcheck.targets.ssh.settings import (
    DEFAULT_MAX_SESSIONS,
    HOST_KEY_POLICIES,
    Endpoint,
    SshSettings,
)
from pytest_drcheck.targets.ssh.target import SshTarget

__all__ = [
    "CLIENT_GRACE_SECONDS",
    "DEAD_AFTER_SECONDS",
    "DEFAULT_MAX_SESSIONS",
    "HOST_KEY_POLICIES",
    "TIMEOUT_STATUS",
    "Endpoint",
    "SshSettings",
    "SshTarget",
    "classify_open_failure",
]
