"""Time faults: an instance's chronyd follows the skewed responder (its clock reads off).

An instance with no time sync at all is ``stopped(lab, host, "chronyd")``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from pytest_drcheck.lab.components.ntp import POLL, Chronyd, SkewedNtp
from pytest_drcheck.lab.errors import LabError
from pytest_drcheck.lab.faults.base import in_force

if TYPE_CHECKING:
    from pytest_drcheck.lab.api import Lab


def _chronyc(lab: Lab, host: str, *args: str) -> str:
    done = lab.exec(host, ["chronyc", "-n", *args], timeout=10.0)
    if done.returncode != 0:
        raise LabError(f"chronyc {' '.join(args)} on {host}: "
                       f"{(done.stdout.strip() or done.stderr.strip())[:120]}")
    return done.stdout


def _wait_for(lab: Lab, host: str, address: str, far: bool, timeout: float = 20.0) -> None:
    """Until chronyd on ``host`` has ``address`` selected and its clock is (far or not) off."""
    deadline = time.monotonic() + timeout
    seen = ""
    while time.monotonic() < deadline:
        tracking = _chronyc(lab, host, "-c", "tracking").strip().split(",")
        sources = _chronyc(lab, host, "-c", "sources")
        selected = any(line.split(",")[1:3] == ["*", address] for line in sources.splitlines()
                       if line.count(",") >= 2)
        if selected and len(tracking) >= 14:
            offset = abs(float(tracking[4]))
            if (offset > 10.0) == far:
                return
            seen = f"selected, {offset:.3f} s off"
        else:
            seen = "not selected yet"
        time.sleep(0.2)
    raise LabError(f"chronyd on {host} did not settle on {address} within {timeout:g} s "
                   f"({seen})")


@contextlib.contextmanager
def skewed_source(lab: Lab, host: str) -> Iterator[float]:
    """chronyd on ``host`` follows the skewed responder instead of its servers until the
    block ends (then it is restarted with its own configuration); yields the skew."""
    chrony = lab.component(host, Chronyd)
    skew_host, skew = lab.find(SkewedNtp)
    address = lab.address(skew_host)
    detail = f"chronyd follows {address}:{skew.port} ({skew.offset:+g} s)"
    with in_force(lab, "skewed_source", host, detail):
        try:
            for server in chrony.servers:
                _chronyc(lab, host, "delete", server)
            _chronyc(lab, host, "add", "server", address, "port", str(skew.port), "iburst",
                     *POLL.split())
            _wait_for(lab, host, address, far=True)
            yield skew.offset
        finally:
            # A fresh start forgets the skewed samples: back to exactly the configured state.
            lab.restart(host, chrony.name)
