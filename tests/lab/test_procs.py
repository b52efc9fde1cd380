"""The lab's /proc readings of processes it started: CPU time, with and without children."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from pytest_drcheck.lab import procs


def test_cpu_ticks_count_a_process_and_its_waited_for_children() -> None:
    enough = int(0.2 * os.sysconf("SC_CLK_TCK"))  # of the child's 0.3 s, less the rounding
    burn = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass\n"
    parent = subprocess.Popen([sys.executable, "-c", (
        "import subprocess, sys, time\n"
        f"subprocess.run([sys.executable, '-c', {burn!r}])\n"
        "time.sleep(60)\n")])
    try:
        # The child has burned its 0.3 s of CPU and been waited for once cutime shows it.
        deadline = time.monotonic() + 60
        while (procs.cpu_ticks(parent.pid, children=True) or 0) - (
                procs.cpu_ticks(parent.pid) or 0) < enough and time.monotonic() < deadline:
            time.sleep(0.05)
        own = procs.cpu_ticks(parent.pid)
        with_children = procs.cpu_ticks(parent.pid, children=True)
        assert own is not None and with_children is not None
        assert with_children - own >= enough
    finally:
        parent.kill()
        parent.wait()
    assert procs.cpu_ticks(parent.pid) is None
