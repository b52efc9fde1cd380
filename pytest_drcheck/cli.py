"""The ``drcheck`` command: thin over the same layers the plugin uses."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence


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
            from pytest_drcheck.evidence.signing import verify_authenticity

            authentic, line = verify_authenticity(directory, args.pubkey)
            if not authentic:
                print(f"drcheck verify: FAILED: {line}", file=sys.stderr)
                status = 1
                continue
            print(f"{directory}: ok: {len(result.matched)} files match {MANIFEST}"
                  + (f"; {line}" if line else ""))
            continue
        status = 1
        for line in result.lines():
            print(f"{directory}: {line}")
        print(f"{directory}: FAILED: the bundle does not match {MANIFEST} "
              f"({result.lines()[0]})", file=sys.stderr)
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


def _lazy(module: str, name: str) -> Callable[[argparse.Namespace], int]:
    """The handler ``name`` of pytest_drcheck.evidence.``module``, imported when it runs (the
    evidence commands pull in cryptography and Jinja2, which other commands do not need)."""
    def run(args: argparse.Namespace) -> int:
        import importlib

        handler: Callable[[argparse.Namespace], int] = getattr(
            importlib.import_module(f"pytest_drcheck.evidence.{module}"), name)
        return handler(args)
    return run


def _findings(args: argparse.Namespace) -> int:
    from pytest_drcheck.evidence.findings import run

    return run(args.directory, args.format, args.output)


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
    verify.add_argument("--pubkey", action="append", default=[], metavar="PUB",
                        help="require a signature by this Ed25519 public key (PEM; repeatable: "
                             "the keys you trust, e.g. CI's and the approvers')")
    verify.set_defaults(handler=_verify)
    sign = commands.add_parser("sign", help="sign an evidence bundle's manifest (Ed25519)")
    sign.add_argument("directory", metavar="DIR")
    sign.add_argument("--key", required=True, metavar="KEY", help="PEM private key (PKCS#8)")
    sign.set_defaults(handler=_lazy("signing", "sign_command"))
    keygen = commands.add_parser("keygen", help="make an Ed25519 key pair: KEY and KEY.pub")
    keygen.add_argument("path", metavar="KEY")
    keygen.set_defaults(handler=_lazy("signing", "keygen_command"))
    approve = commands.add_parser(
        "signoff", help="append a signed approval to an evidence bundle and re-seal it")
    approve.add_argument("directory", metavar="DIR")
    approve.add_argument("--by", required=True, metavar="NAME", help="who approves")
    approve.add_argument("--role", required=True, help="in which role, e.g. 'DR manager'")
    approve.add_argument("--comment", default="", help="what the approval says")
    approve.add_argument("--key", required=True, metavar="KEY",
                         help="the approver's PEM private key (PKCS#8)")
    approve.set_defaults(handler=_lazy("signoff", "signoff_command"))
    export = commands.add_parser(
        "export", help="write an evidence bundle in another format (NIST OSCAL assessment-results)")
    export.add_argument("directory", metavar="DIR")
    export.add_argument("--format", choices=["oscal"], required=True)
    export.add_argument("-o", "--output", metavar="FILE", help="default: standard output")
    export.set_defaults(handler=_lazy("oscal", "export_command"))
    history = commands.add_parser(
        "history", help="one HTML page comparing drills: RTO/RPO against target, pass rates, "
        "flipped checks")
    history.add_argument("directory", metavar="DIR", nargs="+", help="evidence bundles")
    history.add_argument("-o", "--output", metavar="FILE", required=True)
    history.set_defaults(handler=_lazy("history", "history_command"))
    merge = commands.add_parser(
        "merge", help="combine the bundles of --dr-shard jobs into one bundle")
    merge.add_argument("directory", metavar="DIR", nargs="+", help="the shards' bundles")
    merge.add_argument("-o", "--output", metavar="OUT", required=True,
                       help="new directory for the merged bundle")
    merge.set_defaults(handler=_merge)
    findings = commands.add_parser(
        "findings", help="list a drill's failed, errored, waived and not-run checks with stable "
        "ids (for a ticketing system)")
    findings.add_argument("directory", metavar="DIR", nargs="+", help="the drill's bundle, and "
                          "earlier drills' bundles (first seen); the newest drill is listed")
    findings.add_argument("--format", choices=["csv", "markdown"], default="csv")
    findings.add_argument("-o", "--output", metavar="FILE", help="write here (default stdout)")
    findings.set_defaults(handler=_findings)
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
        if args.command not in ("report", "verify", "merge", "signoff", "export", "history"):
            raise
        # A hand-edited or truncated drill.json / results.jsonl: one line, not a traceback.
        print(f"drcheck {args.command}: malformed evidence ({type(exc).__name__}: {exc}); "
              "run 'drcheck verify' on the bundle", file=sys.stderr)
        return 1
    return status


if __name__ == "__main__":
    sys.exit(main())
