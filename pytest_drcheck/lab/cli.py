"""``drcheck lab up | down | status``: the lab from a terminal (as root).

Exit codes: 0 ok; 1 an error (one line on stderr) or, for status, a dead daemon; 2 usage or
not root; 3 status when the lab is not up.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback

from pytest_drcheck.lab.api import Lab
from pytest_drcheck.lab.errors import LabError, LabNotUpError
from pytest_drcheck.lab.lock import DEFAULT_WAIT, lab_lock
from pytest_drcheck.lab.report import isolation_line, status_lines, up_summary

NOT_UP = 3


def _err(message: str) -> None:
    print(f"drcheck lab: {message}", file=sys.stderr)


def _out(lines: list[str]) -> None:
    try:
        print("\n".join(lines), flush=True)
    except BrokenPipeError:
        # The reader (``| head``) has gone; the work is done, so the exit code stands. Point
        # stdout at /dev/null so that the interpreter's final flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _up(lab: Lab, wait: float) -> int:
    with lab_lock(wait, on_wait=_err):
        report = lab.up()
    _out(up_summary(report, str(lab.client_key), str(lab.known_hosts)))
    return 0


def _down(lab: Lab, wait: float) -> int:
    with lab_lock(wait, on_wait=_err):
        report = lab.down()
    _out([f"lab down in {report.seconds:.1f} s" if report.was_up
          else "lab was not up; nothing to remove"])
    return 0


def _status(lab: Lab) -> int:
    # Read-only, so no lock: it may show a lab that another run is changing right now.
    try:
        status = lab.status()
    except LabNotUpError:
        _out([f"lab is not up (no state in {lab.paths.root})",
              isolation_line(lab.isolation_problem())])
        return NOT_UP
    _out(status_lines(status))
    return 0 if status.all_alive else 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="drcheck lab", description="The local sandbox DR "
                                     "site in network namespaces (needs root).")
    parser.add_argument("action", choices=["up", "down", "status"])
    parser.add_argument("--wait", type=float, default=DEFAULT_WAIT, metavar="SECONDS",
                        help="how long up/down wait for another run's lab lock "
                        f"(default {DEFAULT_WAIT:g})")
    return parser


def lab_main(argv: list[str]) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # argparse has printed its one-line usage error
        return 0 if exc.code == 0 else 2
    if os.geteuid() != 0:
        _err("needs root (it creates network namespaces and bridges): run it with sudo")
        return 2
    lab = Lab()
    try:
        if args.action == "up":
            return _up(lab, args.wait)
        if args.action == "down":
            return _down(lab, args.wait)
        return _status(lab)
    except LabError as exc:
        _err(str(exc))
        return 1
    except KeyboardInterrupt:
        _err("interrupted; run drcheck lab down (or up) to clean up")
        return 130
    except Exception as exc:  # a bug, but the user still gets one line (and the trace on ask)
        if os.environ.get("DRCHECK_LAB_DEBUG"):
            traceback.print_exc()
        _err(f"internal error: {type(exc).__name__}: {exc} (DRCHECK_LAB_DEBUG=1 shows where)")
        return 1
