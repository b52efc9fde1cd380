"""``drcheck size``: the replication-link calculation from the command line, by hand or from
the write rates a drill's ``replication`` check measured (its evidence bundle)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pytest_drcheck.sizing import (
    DEFAULT_HEADROOM,
    LinkSizing,
    describe,
    describe_throttle,
    mbit_per_s,
    parse_rate,
    parse_throttle,
    size_link,
)


def add_size_command(commands: Any) -> None:
    """Register ``size`` on the ``drcheck`` parser's subcommands (the one hook cli.py calls)."""
    size = commands.add_parser(
        "size", help="the replication link bandwidth N servers writing R need (Mbit/s)")
    size.add_argument("--servers", type=int, help="protected servers")
    rate = size.add_mutually_exclusive_group()
    rate.add_argument("--writes-per-day", metavar="SIZE",
                      help="each server's average writes per day: 20GB (10^9 bytes) or 20GiB")
    rate.add_argument("--write-rate", metavar="SIZE/PER",
                      help="each server's average write rate, e.g. 2MB/s, 300MiB/h, 20GB/day")
    rate.add_argument("--from-evidence", metavar="DIR",
                      help="the rates a drill's replication check measured (its --dr-evidence "
                           "bundle); --servers then scales their average to that many")
    size.add_argument("--headroom", type=float, default=DEFAULT_HEADROOM,
                      help=f"factor for protocol overhead and peaks (default {DEFAULT_HEADROOM})")
    size.add_argument("--throttle", metavar="BANDWIDTH",
                      help="DRS's bandwidthThrottling of each source server, e.g. 50Mbit/s "
                           "(0: not throttled): says whether it fits each server's write rate")
    size.set_defaults(handler=size_main)


def measured_rates(directory: Path) -> dict[str, tuple[float, str]]:
    """Each source's average bytes/s from the bundle's replication observations (the latest
    observation of a source wins), with the basis it was measured on."""
    found: dict[str, tuple[str, float, str]] = {}
    for path in sorted((directory / "observations").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            observation = json.loads(line)
            if observation.get("check") != "replication":
                continue
            details = observation.get("details") or {}
            for source, figures in (details.get("sources") or {}).items():
                at = str(observation.get("observed_at", ""))
                if source not in found or at > found[source][0]:
                    found[source] = (at, float(figures["average_bytes_s"]),
                                     str(details.get("basis", "")))
    return {source: (rate, basis) for source, (_, rate, basis) in found.items()}


def size_main(args: argparse.Namespace) -> int:
    try:
        if args.from_evidence is not None:
            return _from_evidence(args)
        if args.servers is None or (args.write_rate is None and args.writes_per_day is None):
            print("drcheck size: give --servers and --writes-per-day or --write-rate (or "
                  "--from-evidence DIR)", file=sys.stderr)
            return 2
        text = args.write_rate if args.write_rate is not None else f"{args.writes_per_day}/day"
        sizing = size_link(args.servers, parse_rate(text), args.headroom)
        lines = _lines(sizing, args.throttle)
    except ValueError as exc:
        print(f"drcheck size: {exc}", file=sys.stderr)
        return 2
    for line in lines:
        print(line)
    return 0


def _lines(sizing: LinkSizing, throttle: str | None) -> list[str]:
    """The calculation, and the throttle's fit when one is given (ValueError: not a
    bandwidth)."""
    if throttle is None:
        return describe(sizing)
    return describe(sizing) + describe_throttle(sizing, parse_throttle(throttle))


def _from_evidence(args: argparse.Namespace) -> int:
    directory = Path(args.from_evidence)
    if args.throttle is not None:
        try:
            parse_throttle(args.throttle)
        except ValueError as exc:
            print(f"drcheck size: {exc}", file=sys.stderr)
            return 2
    try:
        rates = measured_rates(directory)
    except (OSError, KeyError, TypeError, ValueError) as exc:
        print(f"drcheck size: cannot read {directory}'s observations ({exc})", file=sys.stderr)
        return 1
    if not rates:
        print(f"drcheck size: {directory} has no replication check observation; run the "
              "drill with a replication check and --dr-evidence", file=sys.stderr)
        return 1
    for source, (rate, basis) in sorted(rates.items()):
        print(f"measured {source}: {mbit_per_s(rate):.2f} Mbit/s average ({basis})")
    average = sum(rate for rate, _ in rates.values()) / len(rates)
    sizing = size_link(args.servers or len(rates), average, args.headroom)
    for line in _lines(sizing, args.throttle):
        print(line)
    return 0
