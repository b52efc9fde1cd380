"""The ``lab`` fixture: one fresh sandbox per test session, built from scratch and removed."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest

from pytest_drcheck.lab import Lab, lab_lock

# Other developers' runs queue on the same lock; a whole lab session can take a while.
LOCK_WAIT = 600.0


def _why_unusable() -> str | None:
    if os.geteuid() != 0:
        return "lab tests need root (network namespaces, bridges)"
    probes = (["ip", "netns", "list"],
              # The "real host" mechanics: a network, UTS, PID and mount namespace.
              ["unshare", "--net", "--uts", "--pid", "--fork", "--mount-proc", "true"])
    for argv in probes:
        try:
            subprocess.run(argv, capture_output=True, timeout=10, check=True)
        except (OSError, subprocess.SubprocessError) as exc:
            return f"network namespaces are unusable here ({' '.join(argv)}: {exc})"
    return None


# Seconds the session's first build of the lab took, on this machine under its load now: the
# unit for bounds on later rebuilds (a constant would hold only on a quiet machine).
BUILD_SECONDS = pytest.StashKey[float]()


@pytest.fixture(scope="session")
def lab_build_seconds(lab: Lab, request: pytest.FixtureRequest) -> float:
    return request.config.stash[BUILD_SECONDS]


@pytest.fixture(scope="session")
def lab(request: pytest.FixtureRequest) -> Iterator[Lab]:
    reason = _why_unusable()
    if reason is not None:
        # In CI the lab is the point: skipping every lab test would pass a run that proved
        # nothing, so there it is a failure.
        if os.environ.get("CI"):
            pytest.fail(f"CI needs the lab: {reason}", pytrace=False)
        pytest.skip(reason)
    with lab_lock(LOCK_WAIT):
        sandbox = Lab()
        # down first: a lab left by an earlier run (or half up) must not decide these tests.
        sandbox.down()
        try:
            request.config.stash[BUILD_SECONDS] = sandbox.up().seconds
            yield sandbox
        finally:
            sandbox.down()
