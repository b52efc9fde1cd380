"""Whether a drill may start: an inventory that says it addresses the sandbox lab
(``sandbox: drcheck-lab``) is refused at once, in one line, while the lab is not up.

Only the lab's state file, /sys and /proc are read (no lab imports beyond the state format), so
the plugin can ask this at session start for the cost of a few file reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pytest_drcheck.lab import procs
from pytest_drcheck.lab import state as state_file
from pytest_drcheck.lab.errors import LabError, LabNotUpError
from pytest_drcheck.lab.paths import RUN_NETNS, LabPaths, state_dir_from_env

# The inventory's top-level key and the one value it takes (see inventory/schema.py).
MARKER_KEY = "sandbox"
MARKER = "drcheck-lab"
FIX = "run drcheck lab up"
_SYS_NET = Path("/sys/class/net")


def addresses_the_lab(document: Mapping[str, Any]) -> bool:
    return document.get(MARKER_KEY) == MARKER


def _link_problem(name: str) -> str | None:
    try:
        operstate = (_SYS_NET / name / "operstate").read_text().strip()
    except OSError:
        return f"link {name} is gone"
    # A bridge with ports reads "up"; "unknown" is what some virtual links report when up.
    if operstate not in ("up", "unknown"):
        return f"link {name} is {operstate}"
    return None


def lab_down_reason(state_dir: Path | None = None) -> str | None:
    """None when the lab is built and its links, namespaces and hosts exist; else one line
    that says what is missing and the fix. Daemons are not asked: a stopped daemon is a
    fault a drill is meant to find, not a reason to refuse it."""
    paths = LabPaths(state_dir if state_dir is not None else state_dir_from_env())
    try:
        lab = state_file.load(paths.state_file)
    except LabNotUpError:
        return f"the sandbox lab is down: {FIX}"
    except LabError as exc:
        return f"the sandbox lab is unusable: {exc}"
    if not lab.complete:
        return f"the sandbox lab is half up (an up did not finish): {FIX}"
    for bridge in lab.bridges:
        problem = _link_problem(bridge)
        if problem is not None:
            return f"the sandbox lab is half up ({problem}): {FIX}"
    for host in lab.hosts.values():
        if not (RUN_NETNS / host.netns).exists():
            return f"the sandbox lab is half up (namespace {host.netns} is gone): {FIX}"
        if host.init is None or not procs.is_running(host.init):
            return f"the sandbox lab is half up (host {host.name} is down): {FIX}"
    return None


def refusal(document: Mapping[str, Any], state_dir: Path | None = None) -> str | None:
    """Why a drill of this inventory must not start, or None (also for every inventory that
    does not address the lab)."""
    if not addresses_the_lab(document):
        return None
    return lab_down_reason(state_dir)
