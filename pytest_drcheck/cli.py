"""The ``drcheck`` command: thin over the same layers the plugin uses."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence


def _validate(args: argparse.Namespace) -> int:
    from pytest_drcheck.inventory import InventoryError, load_plan

    status = 0
    for path in args.inventory:
        try:
            plan = load_plan(path, args.suites)
        except InventoryError as exc:
            print(exc, file=sys.stderr)
            status = 1
            continue
        print(f"{path}: ok: drill '{plan.drill.name}', {len(plan.hosts)} hosts, "
              f"{len(plan.items)} checks")
    return status


def _schema(args: argparse.Namespace) -> int:
    from pytest_drcheck.inventory.schema import inventory_schema, suite_schema

    schema = suite_schema() if args.suite else inventory_schema()
    print(json.dumps(schema, indent=2, sort_keys=True))
    return 0


def _lab(args: argparse.Namespace) -> int:
    from pytest_drcheck.lab.cli import lab_main

    return lab_main([args.action, *args.rest])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="drcheck", description="Prove a disaster-recovery drill worked. The drill itself "
        "runs under pytest: pytest --dr-inventory=site.yaml --junitxml=drill.xml")
    commands = parser.add_subparsers(dest="command", required=True)
    validate = commands.add_parser("validate", help="check inventories without any network I/O")
    validate.add_argument("inventory", nargs="+")
    validate.add_argument("--suites", action="append", default=[], metavar="DIR",
                          help="extra directory to look for suites in")
    validate.set_defaults(handler=_validate)
    schema = commands.add_parser("schema", help="print the inventory's JSON Schema")
    schema.add_argument("--suite", action="store_true", help="the schema of a suite file")
    schema.set_defaults(handler=_schema)
    lab = commands.add_parser("lab", help="the local sandbox DR site (root)")
    lab.add_argument("action", choices=["up", "down", "status"])
    lab.add_argument("rest", nargs=argparse.REMAINDER)
    lab.set_defaults(handler=_lab)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        status: int = args.handler(args)
    except KeyboardInterrupt:
        return 130
    return status


if __name__ == "__main__":
    sys.exit(main())
