"""A testinfra Host that reuses a drcheck target's connection instead of opening its own."""

from __future__ import annotations

from typing import Any

from pytest_drcheck.targets.base import Target


def testinfra_host(target: Target) -> Any:
    import testinfra
    from testinfra.backend import get_backend
    from testinfra.host import Host

    from pytest_drcheck.targets.local import LocalTarget

    target = target.unwrap()
    if isinstance(target, LocalTarget):
        return testinfra.get_host("local://")
    from pytest_drcheck.targets.ssh import SshTarget

    if not isinstance(target, SshTarget):
        raise TypeError(f"testinfra cannot drive a {type(target).__name__}")
    settings = target.settings
    backend = get_backend(
        f"paramiko://{settings.user}@{settings.address}:{settings.port}")
    # ParamikoBackend.client is a cached_property: seeding it makes testinfra use our
    # already-authenticated, host-key-verified connection.
    backend.__dict__["client"] = target.client
    return Host(backend)
