"""``drcheck size``: the replication-link calculation from the command line."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from pytest_drcheck.sizing import DEFAULT_HEADROOM, describe, parse_rate, size_link


def add_size_command(commands: Any) -> None:
    """Register ``size`` on the ``drcheck`` parser's subcommands (the one hook cli.py calls)."""
    size = commands.add_parser(
        "size", help="the replication link bandwidth N servers writing R need (Mbit/s)")
    size.add_argument("--servers", type=int, required=True, help="protected servers")
    rate = size.add_mutually_exclusive_group(required=True)
    rate.add_argument("--writes-per-day", metavar="SIZE",
                      help="each server's average writes per day: 20GB (10^9 bytes) or 20GiB")
    rate.add_argument("--write-rate", metavar="SIZE/PER",
                      help="each server's average write rate, e.g. 2MB/s, 300MiB/h, 20GB/day")
    size.add_argument("--headroom", type=float, default=DEFAULT_HEADROOM,
                      help=f"factor for protocol overhead and peaks (default {DEFAULT_HEADROOM})")
    size.set_defaults(handler=size_main)


def size_main(args: argparse.Namespace) -> int:
    text = args.write_rate if args.write_rate is not None else f"{args.writes_per_day}/day"
    try:
        sizing = size_link(args.servers, parse_rate(text), args.headroom)
    except ValueError as exc:
        print(f"drcheck size: {exc}", file=sys.stderr)
        return 2
    for line in describe(sizing):
        print(line)
    return 0
