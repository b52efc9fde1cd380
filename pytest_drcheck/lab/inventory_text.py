"""The part every inventory for this lab's hosts shares: SSH as root with the lab's own key
and known_hosts file (``drcheck lab up`` writes both), as inventory text."""

from __future__ import annotations

from pytest_drcheck.lab.paths import LabPaths, state_dir_from_env


def ssh_defaults(*, timeout: str, connect_timeout: str, paths: LabPaths | None = None,
                 **connection: str) -> str:
    """The ``defaults:`` block; ``connection`` adds settings (``jump="logs01"``)."""
    paths = paths or LabPaths(state_dir_from_env())
    lines = ["defaults:", f"  timeout: {timeout}", "  connection:", "    type: ssh",
             "    user: root", f"    identity_file: {paths.client_key}",
             f"    known_hosts: {paths.known_hosts}", f"    connect_timeout: {connect_timeout}"]
    lines += [f"    {key}: {value}" for key, value in connection.items()]
    return "\n".join(lines) + "\n"
