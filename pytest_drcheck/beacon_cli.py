"""``drcheck beacon install``: print (or, on request, install) the beacon writer of a source.

Printing is the default: the operator reviews what a production server gets. ``--apply``
writes the systemd units (or the cron.d file) under ``--root`` (default /) and, for systemd,
enables the timer; it is meant to run on the source server itself.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from pytest_drcheck.beacon import DEFAULT_INTERVAL, DEFAULT_PATH, cron_line, systemd_units

CRON_FILE = "etc/cron.d/drcheck-beacon"
UNIT_DIR = "etc/systemd/system"


def add_beacon_command(commands: Any) -> None:
    """Register ``beacon`` on the ``drcheck`` parser's subcommands (the one hook cli.py calls)."""
    beacon = commands.add_parser(
        "beacon", help="the replication beacon a source server writes (for the rpo check)")
    actions = beacon.add_subparsers(dest="beacon_action", required=True)
    install = actions.add_parser(
        "install", help="print the systemd timer (or cron line) that writes the beacon; "
                        "--apply installs it on this machine")
    install.add_argument("--path", default=DEFAULT_PATH,
                         help=f"the beacon file (default {DEFAULT_PATH}); on a replicated disk")
    install.add_argument("--interval", type=int, default=DEFAULT_INTERVAL, metavar="SECONDS",
                         help=f"seconds between writes (default {DEFAULT_INTERVAL}): the "
                              "measured RPO's resolution")
    install.add_argument("--cron", action="store_true",
                         help="a cron.d line instead of systemd units")
    install.add_argument("--apply", action="store_true",
                         help="install it (root, on the source server); default: print only")
    install.add_argument("--root", default="/", help=argparse.SUPPRESS)
    install.set_defaults(handler=beacon_main)


def beacon_main(args: argparse.Namespace) -> int:
    if not args.path.startswith("/") or "\n" in args.path:
        print("drcheck beacon install: --path must be an absolute path", file=sys.stderr)
        return 2
    try:
        files = ({CRON_FILE: cron_line(args.path, args.interval)} if args.cron else
                 {f"{UNIT_DIR}/{name}": text
                  for name, text in systemd_units(args.path, args.interval).items()})
    except ValueError as exc:
        print(f"drcheck beacon install: {exc}", file=sys.stderr)
        return 2
    if not args.apply:
        for name, text in files.items():
            print(f"# /{name}")
            print(text)
        if not args.cron:
            print("# then: systemctl daemon-reload && systemctl enable --now "
                  "drcheck-beacon.timer")
        return 0
    root = Path(args.root)
    try:
        for name, text in files.items():
            target = root / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
            print(f"wrote {target}")
    except OSError as exc:
        print(f"drcheck beacon install: {exc}", file=sys.stderr)
        return 1
    if args.cron:
        return 0
    return _enable_timer(root)


def _enable_timer(root: Path) -> int:
    systemctl = shutil.which("systemctl")
    if root != Path("/") or systemctl is None or not Path("/run/systemd/system").is_dir():
        print("systemd is not running here: enable drcheck-beacon.timer where it is "
              "(systemctl daemon-reload && systemctl enable --now drcheck-beacon.timer)")
        return 0
    for argv in ([systemctl, "daemon-reload"],
                 [systemctl, "enable", "--now", "drcheck-beacon.timer"]):
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
        if done.returncode != 0:
            lines = done.stderr.strip().splitlines() or [f"exit {done.returncode}"]
            print(f"drcheck beacon install: {' '.join(argv[1:])}: {lines[-1]}",
                  file=sys.stderr)
            return 1
    print("enabled drcheck-beacon.timer")
    return 0
