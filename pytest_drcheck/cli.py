"""The ``drcheck`` command: thin over the same layers the plugin uses."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence


def _validate(args: argparse.Namespace) -> int:
    from pytest_drcheck.inventory import InventoryError, load_plan
    from pytest_drcheck.inventory.errors import one_line

    status = 0
    for path in args.inventory:
        try:
            plan = load_plan(path, args.suites)
        except InventoryError as exc:
            print(exc, file=sys.stderr)
            status = 1
            continue
        print(one_line(f"{path}: ok: drill '{plan.drill.name}', {len(plan.hosts)} hosts, "
                       f"{len(plan.items)} checks"))
    return status


def _schema(args: argparse.Namespace) -> int:
    from pytest_drcheck.inventory.schema import inventory_schema, suite_schema

    schema = suite_schema() if args.suite else inventory_schema()
    print(json.dumps(schema, indent=2, sort_keys=True))
    return 0


def _lab(args: argparse.Namespace) -> int:
    from pytest_drcheck.lab.cli import lab_main

    return lab_main([args.action, *args.rest])


def _discover(args: argparse.Namespace) -> int:
    from pytest_drcheck.aws.inventory import INSTALL_HINT, AwsSettings, boto3_missing

    if boto3_missing():
        print(f"drcheck discover: boto3 is not installed; {INSTALL_HINT}", file=sys.stderr)
        return 2
    from pytest_drcheck.aws.clients import AwsClients, AwsError
    from pytest_drcheck.aws.discover import gather, skeleton

    section: dict[str, object] = {"region": args.region}
    endpoints: dict[str, str] = {}
    for text in args.endpoint:
        service, sep, url = text.partition("=")
        if not sep or not url:
            print(f"drcheck discover: --endpoint '{text}' must be SERVICE=URL", file=sys.stderr)
            return 2
        endpoints[service] = url
    if args.profile:
        section["profile"] = args.profile
    if args.endpoint_url:
        section["endpoint_url"] = args.endpoint_url
    if endpoints:
        section["endpoints"] = endpoints
    clients = AwsClients(AwsSettings.from_section(section))
    try:
        rows = gather(clients, args.job)
    except AwsError as exc:
        print(f"drcheck discover: {exc}", file=sys.stderr)
        return 1
    if not rows:
        print(f"drcheck discover: no source servers in {args.region}"
              f"{' for job ' + args.job if args.job else ''}", file=sys.stderr)
        return 1
    print(skeleton(rows, args.region, args.job, args.connection, section), end="")
    return 0


def _report(args: argparse.Namespace) -> int:
    import time
    from pathlib import Path

    from pytest_drcheck.evidence.bundle import rerender
    from pytest_drcheck.evidence.layout import REPORT, EvidenceError

    directory = Path(args.directory)
    started = time.perf_counter()
    try:
        written = rerender(directory)
    except EvidenceError as exc:
        print(f"drcheck report: {exc}", file=sys.stderr)
        return 1
    print(f"{directory / REPORT}: {written.drill.get('verdict', '?').upper()}, "
          f"{len(written.records)} results, rendered in "
          f"{(time.perf_counter() - started) * 1000:.0f} ms; manifest sha256 "
          f"{written.manifest_sha256}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from pathlib import Path

    from pytest_drcheck.evidence.layout import MANIFEST, EvidenceError
    from pytest_drcheck.evidence.manifest import verify

    status = 0
    for name in args.directory:
        directory = Path(name)
        try:
            result = verify(directory)
        except EvidenceError as exc:
            print(f"drcheck verify: {exc}", file=sys.stderr)
            status = 1
            continue
        if result.ok:
            print(f"{directory}: ok: {len(result.matched)} files match {MANIFEST}")
            continue
        status = 1
        for line in result.lines():
            print(f"{directory}: {line}")
        print(f"{directory}: FAILED: the bundle does not match {MANIFEST}", file=sys.stderr)
    return status


def _merge(args: argparse.Namespace) -> int:
    from pathlib import Path

    from pytest_drcheck.evidence.bundle import merge
    from pytest_drcheck.evidence.layout import EvidenceError

    try:
        written = merge(Path(args.output), [Path(d) for d in args.directory])
    except EvidenceError as exc:
        print(f"drcheck merge: {exc}", file=sys.stderr)
        return 1
    counts = written.drill["counts"]
    print(f"{args.output}: merged {len(args.directory)} bundles, {counts['total']} results: "
          f"{written.drill['verdict'].upper()}; manifest sha256 {written.manifest_sha256}")
    for reason in written.drill.get("verdict_reasons", []):
        print(f"{args.output}: {reason}")
    return 0


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
    discover = commands.add_parser(
        "discover", help="print an inventory skeleton for an AWS DRS drill (pytest-drcheck[aws])")
    discover.add_argument("--region", required=True, help="the DR region (where DRS runs)")
    discover.add_argument("--job", help="the drill job id (drsjob-...): its servers only")
    discover.add_argument("--profile", help="AWS profile to use")
    discover.add_argument("--connection", choices=["ssm", "ssh"], default="ssm",
                          help="how the skeleton reaches the instances (default ssm)")
    discover.add_argument("--endpoint-url", help="endpoint for every AWS service")
    discover.add_argument("--endpoint", action="append", default=[], metavar="SERVICE=URL",
                          help="endpoint for one service, e.g. drs=https://... (repeatable)")
    discover.set_defaults(handler=_discover)
    from pytest_drcheck.aws.drill_cli import add_drill_command

    add_drill_command(commands)
    from pytest_drcheck.sizing_cli import add_size_command

    add_size_command(commands)
    from pytest_drcheck.beacon_cli import add_beacon_command

    add_beacon_command(commands)
    lab = commands.add_parser("lab", help="the local sandbox DR site (root)")
    lab.add_argument("action", choices=["up", "down", "status"])
    lab.add_argument("rest", nargs=argparse.REMAINDER)
    lab.set_defaults(handler=_lab)
    report = commands.add_parser(
        "report", help="re-render report.html of an evidence bundle (finishes a killed run's)")
    report.add_argument("directory", metavar="DIR")
    report.set_defaults(handler=_report)
    verify = commands.add_parser(
        "verify", help="check evidence bundles against their MANIFEST.sha256 (exit 1 if not)")
    verify.add_argument("directory", metavar="DIR", nargs="+")
    verify.set_defaults(handler=_verify)
    merge = commands.add_parser(
        "merge", help="combine the bundles of --dr-shard jobs into one bundle")
    merge.add_argument("directory", metavar="DIR", nargs="+", help="the shards' bundles")
    merge.add_argument("-o", "--output", metavar="OUT", required=True,
                       help="new directory for the merged bundle")
    merge.set_defaults(handler=_merge)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        status: int = args.handler(args)
        sys.stdout.flush()
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `drcheck schema | head`: the reader has what it wanted. Point stdout at /dev/null so
        # the interpreter's final flush does not fail again, and exit as a SIGPIPE'd tool.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except (KeyError, TypeError, ValueError) as exc:
        if args.command not in ("report", "verify", "merge"):
            raise
        # A hand-edited or truncated drill.json / results.jsonl: one line, not a traceback.
        print(f"drcheck {args.command}: malformed evidence ({type(exc).__name__}: {exc}); "
              "run 'drcheck verify' on the bundle", file=sys.stderr)
        return 1
    return status


if __name__ == "__main__":
    sys.exit(main())
