"""``drcheck drill launch|status|terminate INVENTORY``: the drill lifecycle from a shell or a
scheduled CI job, with the inventory's ``aws:`` settings and its hosts' source servers.

``launch`` prints only ``key=value`` lines on stdout, which a CI step can append to its
outputs (``>> "$GITHUB_OUTPUT"``, a GitLab dotenv report): ``job``, ``launched_at`` (DRS's job
creation time, for ``--dr-launched-at``: the measured RTO starts there) and ``servers``; with
``--wait``, the launches' status goes to stderr. Then::

    pytest --dr-inventory=site.yaml --dr-drs-job=$job --dr-launched-at=$launched_at --dr-wait=20m
    drcheck drill terminate site.yaml --job $job       # always, even when the drill failed

With ``--plan ARN`` the drill is a DRS recovery plan's execution (see aws.plans): ``launch``
prints ``execution`` instead of ``job`` (``launched_at`` is the execution's start), and
``status``/``terminate`` take ``--execution ARN`` (every job its steps started).

boto3 is imported only when a subcommand runs.
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import Any, TextIO

from pytest_drcheck.aws.schema import EXECUTION_ARN, PLAN_ARN
from pytest_drcheck.durations import format_duration, parse_duration

_JOB = re.compile(r"^drsjob-[0-9a-zA-Z]{17}$")


def add_drill_command(commands: Any) -> None:
    """Register ``drill`` on the ``drcheck`` parser's subcommands (the one hook cli.py calls)."""
    drill = commands.add_parser(
        "drill", help="launch, follow and terminate an AWS DRS drill (pytest-drcheck[aws])")
    actions = drill.add_subparsers(dest="drill_action", required=True)
    launch = actions.add_parser("launch", help="start a drill of the inventory's source "
                                               "servers (StartRecovery, isDrill)")
    launch.add_argument("inventory")
    launch.add_argument("--snapshot", action="append", default=[], metavar="SERVER=SNAPSHOT",
                        help="launch this source server from a recovery snapshot (pit-...) "
                             "instead of the latest point in time (repeatable)")
    launch.add_argument("--allow-running", action="store_true",
                        help="launch even if a drill of these servers is already up")
    launch.add_argument("--wait", metavar="DURATION",
                        help="then wait this long for every launch to end (e.g. 20m)")
    launch.add_argument("--plan", metavar="ARN",
                        help="launch through this DRS recovery plan (StartRecoveryPlanExecution "
                             "in DRILL mode, latest point in time) instead of StartRecovery")
    status = actions.add_parser("status", help="the drill job's launches now")
    status.add_argument("inventory")
    status.add_argument("--wait", metavar="DURATION",
                        help="wait this long for every launch to end")
    terminate = actions.add_parser("terminate", help="terminate exactly this drill job's "
                                                     "recovery instances")
    terminate.add_argument("inventory")
    for parser in (status, terminate):
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument("--job", help="the drill job (drsjob-...)")
        which.add_argument("--execution", metavar="ARN",
                           help="the recovery plan execution (every job its steps started)")
    for parser in (launch, status, terminate):
        parser.set_defaults(handler=drill_main)


def _fail(action: str, message: str, status: int = 1) -> int:
    print(f"drcheck drill {action}: {message}", file=sys.stderr)
    return status


def drill_main(args: argparse.Namespace) -> int:
    from pytest_drcheck.aws.inventory import INSTALL_HINT, AwsSettings, boto3_missing
    from pytest_drcheck.inventory import InventoryError, load_plan

    action = args.drill_action
    if boto3_missing():
        return _fail(action, f"boto3 is not installed; {INSTALL_HINT}", 2)
    job_id = getattr(args, "job", None)
    if job_id is not None and not _JOB.match(job_id):
        return _fail(action, f"--job: '{job_id}' is not a DRS job id (drsjob- and 17 letters "
                             "or digits)", 2)
    plan_arn = getattr(args, "plan", None)
    execution = getattr(args, "execution", None)
    for option, value, pattern, what in (("--plan", plan_arn, PLAN_ARN, "recovery plan"),
                                         ("--execution", execution, EXECUTION_ARN,
                                          "recovery plan execution")):
        if value is not None and not re.match(pattern, value):
            return _fail(action, f"{option}: '{value}' is not a DRS {what} ARN", 2)
    if plan_arn and args.snapshot:
        return _fail(action, "--snapshot and --plan: a plan launches from the latest point "
                             "in time; drop one", 2)
    try:
        plan = load_plan(args.inventory)
        wait = parse_duration(args.wait) if getattr(args, "wait", None) else None
    except InventoryError as exc:
        return _fail(action, f"invalid inventory:\n{exc}", 2)
    except ValueError as exc:
        return _fail(action, f"--wait: {exc}", 2)
    settings = AwsSettings.from_plan(plan)
    if settings is None:
        return _fail(action, "the inventory has no aws: section; add aws: {region: ...}", 2)
    from pytest_drcheck.aws.clients import AwsClients, AwsError
    from pytest_drcheck.aws.drill import DrillError

    clients = AwsClients(settings)
    sources = {str(h.aws["drs"]["source_server_id"]): name
               for name, h in sorted(plan.hosts.items()) if "drs" in h.aws}
    try:
        if plan_arn or execution:
            from pytest_drcheck.aws.plan_cli import plan_action

            return plan_action(action, clients, plan_arn or execution or "", sources, wait,
                               args.allow_running if plan_arn else False)
        if action == "launch":
            return _launch(args, clients, sources, wait)
        if action == "status":
            return _status(clients, str(job_id), sources, wait)
        return _terminate(clients, str(job_id), sources)
    except (AwsError, DrillError) as exc:
        return _fail(action, str(exc))


def _launch(args: argparse.Namespace, clients: Any, sources: dict[str, str],
            wait: float | None) -> int:
    from pytest_drcheck.aws.drill import launch

    snapshots: dict[str, str] = {}
    for text in args.snapshot:
        server, sep, snapshot = text.partition("=")
        if not sep or server not in sources:
            return _fail("launch", f"--snapshot '{text}' must be SERVER=SNAPSHOT with a source "
                                   "server of the inventory", 2)
        snapshots[server] = snapshot
    job = launch(clients, sources, snapshots, args.allow_running)
    print(f"job={job.job_id}")
    print(f"launched_at={job.created_at.isoformat() if job.created_at else ''}")
    print(f"servers={','.join(sorted(sources))}")
    if wait is None:
        return 0
    return _status(clients, job.job_id, sources, wait, sys.stderr)


def _status(clients: Any, job_id: str, sources: dict[str, str], wait: float | None,
            out: TextIO | None = None) -> int:
    from pytest_drcheck.aws.drill import launch_failures, status
    from pytest_drcheck.aws.drill import wait as wait_for

    job = wait_for(clients, job_id, wait) if wait is not None else status(clients, job_id)
    failures = launch_failures(clients, job)
    out = out or sys.stdout
    print(f"job {job.job_id}: {job.status.lower()}"
          f"{', created ' + job.created_at.isoformat() if job.created_at else ''}", file=out)
    for server in sorted(job.servers, key=lambda s: s.source_server_id):
        host = sources.get(server.source_server_id, "not in the inventory")
        line = f"{server.source_server_id} ({host}): {server.launch_status.lower()}"
        if server.recovery_instance_id:
            line += f" {server.recovery_instance_id}"
        if server.source_server_id in failures:
            line += f": {failures[server.source_server_id]}"
        print(line, file=out)
    if wait is not None and not job.ended:
        return _fail("status", f"job {job_id} has not ended after {format_duration(wait)}")
    return 1 if failures else 0


def _terminate(clients: Any, job_id: str, sources: dict[str, str]) -> int:
    from pytest_drcheck.aws.drill import terminate

    done = terminate(clients, job_id)
    if done.instances:
        print(f"terminating {len(done.instances)} drill instance(s) of job {job_id}: "
              f"{', '.join(done.instances)} (DRS job {done.terminate_job_id or 'unknown'})")
    else:
        print(f"job {job_id}: no drill instance left to terminate")
    if done.already_gone:
        print(f"already terminated: {', '.join(done.already_gone)}")
    return 0
