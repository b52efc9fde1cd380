"""pytest glue of the aws extra (``pytest-drcheck[aws]``), one plugin module registered by its
own entry point (``drcheck-aws``) beside the core's, as pytest-xdist registers its parts.

Finding and checking AWS hosts: its options, the non-drill guard, discovery when checking
starts, the JUnit facts and the end-of-run report of recovery instances DRS left running. It
learns about the drill through the drcheck hooks (``pytest_dr_run_configured``,
``pytest_dr_checking_starts``, ``pytest_dr_suite_properties``) and keeps its own state in its
own stash keys.

The drill lifecycle. ``--dr-launch-drill``: before anything else (on the controller, never
under --collect-only), start a drill of the inventory's DRS source servers (see aws.drill),
wait for every launch to end (within --dr-wait, default 30 min), then run the checks against
that job exactly as with ``--dr-drs-job`` and measure the RTO from the job's creation time in
DRS (``--dr-launched-at``). ``--dr-terminate-drill``: at the end, whatever the outcome,
terminate exactly the recovery instances of that job (the launched one, or ``--dr-drs-job``),
before the leftover listing, and record it: a terminal section and the JUnit suite properties
``dr.aws.drill_job`` and ``dr.aws.terminated_instances``.

Secrets: every ``aws-secretsmanager:``/``aws-ssm:`` value the run resolves is handed to the
evidence redactor.
"""

from __future__ import annotations

import contextlib
import re
import warnings
from collections.abc import Generator
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_drcheck.plugins import OPTION_GROUP

if TYPE_CHECKING:
    from pytest_drcheck.aws.run import AwsRun
    from pytest_drcheck.runtime import DrillRun

AWS_RUN_KEY = pytest.StashKey["AwsRun"]()
# End-of-run record of drill recovery instances still up, JSON-able:
# {"region", "checked_at", "instances": [{"instance_id", "state", "job_id",
# "source_server_id", "host", "source_hostname"}], "error"}. Set before other
# pytest_sessionfinish implementations run, for evidence writers to pick up.
AWS_LEFTOVERS_KEY = pytest.StashKey[dict[str, Any]]()


class DrillLeftoverWarning(pytest.PytestWarning):
    """Drill recovery instances are still running after the drill (DRS leaves them)."""


def aws_of(config: pytest.Config) -> AwsRun | None:
    """The aws extra's state of this drill, when the inventory uses AWS."""
    return config.stash.get(AWS_RUN_KEY, None)


def pytest_addoption(parser: pytest.Parser) -> None:
    _add_lifecycle_options(parser)
    group = parser.getgroup(*OPTION_GROUP)
    group.addoption("--dr-drs-job", dest="dr_drs_job", metavar="JOB",
                    help="AWS DRS drill job id: find recovery instances of this job only")
    group.addoption("--dr-allow-non-drill", dest="dr_allow_non_drill", action="store_true",
                    help="check AWS recovery instances that are not drills (a real recovery); "
                         "refused by default")
    parser.addini("dr_drs_job", "default for --dr-drs-job")


# optionalhook: the core's hooks (this plugin loads even under -p no:drcheck).
@pytest.hookimpl(optionalhook=True)
def pytest_dr_run_configured(config: pytest.Config, run: DrillRun) -> None:
    from pytest_drcheck.aws.inventory import uses_aws

    job = config.getoption("dr_drs_job") or config.getini("dr_drs_job") or None
    if not uses_aws(run.plan):
        if job or config.getoption("dr_allow_non_drill"):
            raise pytest.UsageError("--dr-drs-job and --dr-allow-non-drill need an inventory "
                                    "that uses AWS (an aws: section, hosts with drs:/ec2:)")
        return
    from pytest_drcheck.aws.run import AwsOptions
    from pytest_drcheck.aws.schema import JOB_ID

    if job and not re.match(JOB_ID, job):
        raise pytest.UsageError(f"--dr-drs-job: '{job}' is not a DRS job id (drsjob- and 17 "
                                "letters or digits)")
    config.stash[AWS_RUN_KEY] = run.attach_aws(AwsOptions(
        job_id=job, allow_non_drill=bool(config.getoption("dr_allow_non_drill"))))


# optionalhook: the core's hooks (this plugin loads even under -p no:drcheck).
@pytest.hookimpl(optionalhook=True)
def pytest_dr_checking_starts(config: pytest.Config, hosts: list[str]) -> None:
    aws = aws_of(config)
    if aws is not None:  # every selected host's AWS discovery at once
        aws.start_discovery(hosts)


# tryfirst: pytest prints header lines in reverse call order; this line follows the drill's.
@pytest.hookimpl(tryfirst=True)
def pytest_report_header(config: pytest.Config) -> str | None:
    aws = aws_of(config)
    if aws is None:
        return None
    options = aws.options
    return (f"drcheck: AWS {aws.settings.region}"
            f"{', drill job ' + options.job_id if options.job_id else ''}"
            f"{', NON-DRILL INSTANCES ALLOWED' if options.allow_non_drill else ''}")


# A plain (not wrapper) implementation: it runs inside pytest's warning capture, so the warning
# lands in the warnings summary, and first, so other implementations find the stash value.
@pytest.hookimpl(tryfirst=True, specname="pytest_sessionfinish")
def pytest_drcheck_aws_leftovers(session: pytest.Session) -> None:
    """At the end of the run (controller only): drill instances DRS left running."""
    config = session.config
    aws = aws_of(config)
    if (aws is None or not aws.uses_drs() or config.getoption("collectonly")
            or hasattr(config, "workerinput")):
        return
    from pytest_drcheck.aws.leftovers import describe_report

    report = config.stash[AWS_LEFTOVERS_KEY] = aws.leftover_report()
    if report["instances"]:
        # Under -W error the warning raises: the terminal summary still lists them.
        with contextlib.suppress(Warning):
            warnings.warn(DrillLeftoverWarning(
                f"{len(report['instances'])} drill recovery instance(s) still running in "
                f"{report['region']} (DRS does not terminate them): "
                f"{describe_report(report)}"), stacklevel=1)


# optionalhook: the core's hooks (this plugin loads even under -p no:drcheck).
@pytest.hookimpl(optionalhook=True)
def pytest_dr_suite_properties(config: pytest.Config) -> list[tuple[str, str]]:
    aws = aws_of(config)
    if aws is None:
        return []
    options = aws.options
    # The guard override is evidence too: an auditor must see that non-drill was allowed.
    properties = [("dr.aws.region", aws.settings.region),
                  ("dr.aws.drs_job", options.job_id or ""),
                  ("dr.aws.allow_non_drill", str(options.allow_non_drill).lower())]
    report = config.stash.get(AWS_LEFTOVERS_KEY, None)
    if report is not None:
        from pytest_drcheck.aws.leftovers import describe_report

        properties.append(("dr.aws.leftover_instances", describe_report(report)))
    return properties


# tryfirst: instances that cost money are said before the drill's summary.
@pytest.hookimpl(tryfirst=True)
def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter,
                            config: pytest.Config) -> None:
    report = config.stash.get(AWS_LEFTOVERS_KEY, None)
    if report is None or not (report["instances"] or report["error"]):
        return
    from pytest_drcheck.aws.leftovers import Leftover

    terminalreporter.write_sep("=", "drcheck: drill recovery instances still running",
                               yellow=True)
    if report["error"]:
        terminalreporter.write_line(f"could not list them: {report['error']}")
    for item in report["instances"]:
        terminalreporter.write_line(f"{Leftover(**item)}")
    if report["instances"]:
        terminalreporter.write_line("terminate them when the drill is over (DRS console or "
                                    "TerminateRecoveryInstances): they cost money until then")


# --- the drill lifecycle ---------------------------------------------------------------

_JOB_KEY = pytest.StashKey[str]()
_TERMINATED_KEY = pytest.StashKey[dict[str, Any]]()
_LAUNCH_LINES_KEY = pytest.StashKey[list[str]]()
DEFAULT_LAUNCH_WAIT = 1800.0


def _add_lifecycle_options(parser: pytest.Parser) -> None:
    group = parser.getgroup(*OPTION_GROUP)
    group.addoption("--dr-launch-drill", dest="dr_launch_drill", action="store_true",
                    help="AWS: start a DRS drill of the inventory's source servers first and "
                         "check that job (RTO measured from its creation)")
    group.addoption("--dr-drill-snapshot", dest="dr_drill_snapshot", action="append",
                    default=[], metavar="SERVER=SNAPSHOT",
                    help="with --dr-launch-drill: launch this source server from a recovery "
                         "snapshot instead of the latest point in time (repeatable)")
    group.addoption("--dr-recovery-plan", dest="dr_recovery_plan", metavar="ARN",
                    help="with --dr-launch-drill: launch through this DRS recovery plan "
                         "(StartRecoveryPlanExecution, DRILL mode; RTO from its start)")
    group.addoption("--dr-allow-running-drill", dest="dr_allow_running_drill",
                    action="store_true",
                    help="with --dr-launch-drill: launch even if a drill of these servers is up")
    group.addoption("--dr-terminate-drill", dest="dr_terminate_drill", action="store_true",
                    help="AWS: at the end, terminate the drill job's recovery instances "
                         "(the launched job or --dr-drs-job), and nothing else")


def _clients(config: pytest.Config) -> tuple[Any, dict[str, str]]:
    from pytest_drcheck.aws.clients import AwsClients
    from pytest_drcheck.aws.inventory import AwsSettings
    from pytest_drcheck.inventory import InventoryError, load_plan

    inventory = config.getoption("dr_inventory") or config.getini("dr_inventory")
    if not inventory:
        raise pytest.UsageError("--dr-launch-drill and --dr-terminate-drill need an inventory: "
                                "add --dr-inventory=FILE")
    try:
        plan = load_plan(inventory, config.getoption("dr_suites"))
    except InventoryError as exc:
        raise pytest.UsageError(f"invalid inventory:\n{exc}") from None
    settings = AwsSettings.from_plan(plan)
    if settings is None:
        raise pytest.UsageError("--dr-launch-drill and --dr-terminate-drill need the "
                                "inventory's aws: section")
    sources = {str(h.aws["drs"]["source_server_id"]): name
               for name, h in sorted(plan.hosts.items()) if "drs" in h.aws}
    return AwsClients(settings), sources


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Launch before the drcheck plugin reads --dr-drs-job and --dr-launched-at."""
    if hasattr(config, "workerinput") or config.option.collectonly:
        return
    job = config.getoption("dr_drs_job", None)
    if job:
        config.stash[_JOB_KEY] = str(job)
    if not config.getoption("dr_launch_drill", False):
        return
    if job:
        raise pytest.UsageError("--dr-launch-drill starts its own job: drop --dr-drs-job")
    if config.getoption("dr_launched_at", None):
        raise pytest.UsageError("--dr-launch-drill measures from the job's creation: drop "
                                "--dr-launched-at")
    from pytest_drcheck.aws.clients import AwsError
    from pytest_drcheck.aws.drill import DrillError, launch, launch_failures, wait
    from pytest_drcheck.durations import parse_duration

    clients, sources = _clients(config)
    if config.getoption("dr_recovery_plan", None):
        _launch_plan(config, clients, sources)
        return
    snapshots = {}
    for text in config.getoption("dr_drill_snapshot"):
        server, sep, snapshot = text.partition("=")
        if not sep or server not in sources:
            raise pytest.UsageError(f"--dr-drill-snapshot '{text}' must be SERVER=SNAPSHOT with "
                                    "a source server of the inventory")
        snapshots[server] = snapshot
    patience = config.getoption("dr_wait") or config.getini("dr_wait")
    try:
        started = launch(clients, sources, snapshots,
                         bool(config.getoption("dr_allow_running_drill")))
        config.stash[_JOB_KEY] = started.job_id
        ended = wait(clients, started.job_id,
                     parse_duration(patience) if patience else DEFAULT_LAUNCH_WAIT)
        failures = launch_failures(clients, ended)
    except (AwsError, DrillError) as exc:
        raise pytest.UsageError(f"--dr-launch-drill: {exc}") from None
    # The drill's clock starts when DRS created the job (never in our future: clock skew).
    now = datetime.now(timezone.utc)
    created = min(started.created_at or now, now)
    config.option.dr_drs_job = started.job_id
    config.option.dr_launched_at = created.isoformat()
    # The terminal reporter does not exist yet: the header says it.
    config.stash[_LAUNCH_LINES_KEY] = [
        f"drcheck: launched drill job {started.job_id} ({len(sources)} source servers) at "
        f"{created.isoformat(timespec='seconds')}",
        *(f"drcheck: launch of {server} failed: {why}" for server, why in sorted(
            failures.items()))]


def _launch_plan(config: pytest.Config, clients: Any, sources: dict[str, str]) -> None:
    """--dr-launch-drill --dr-recovery-plan: the plan's execution is the drill. One job: the
    checks look at that job only; several: the drill guard alone (the launch refused a drill
    already up, so each server has one)."""
    from pytest_drcheck.aws.clients import AwsError
    from pytest_drcheck.aws.drill import DrillError, launch_failures, status
    from pytest_drcheck.aws.plans import launch_plan, wait_plan
    from pytest_drcheck.aws.schema import PLAN_ARN
    from pytest_drcheck.durations import parse_duration

    plan = str(config.getoption("dr_recovery_plan"))
    if not re.match(PLAN_ARN, plan):
        raise pytest.UsageError(f"--dr-recovery-plan: '{plan}' is not a DRS recovery plan ARN")
    if config.getoption("dr_drill_snapshot"):
        raise pytest.UsageError("--dr-drill-snapshot and --dr-recovery-plan: a plan launches "
                                "from the latest point in time; drop one")
    patience = config.getoption("dr_wait") or config.getini("dr_wait")
    try:
        started = launch_plan(clients, plan, sources,
                              bool(config.getoption("dr_allow_running_drill")))
        config.stash[_JOB_KEY] = started.arn
        ended = wait_plan(clients, started.arn,
                          parse_duration(patience) if patience else DEFAULT_LAUNCH_WAIT)
        failures: dict[str, str] = {}
        for job in ended.jobs:
            failures.update(launch_failures(clients, status(clients, job)))
    except (AwsError, DrillError) as exc:
        raise pytest.UsageError(f"--dr-launch-drill: {exc}") from None
    now = datetime.now(timezone.utc)
    created = min(started.started_at or now, now)
    if len(ended.jobs) == 1:
        config.option.dr_drs_job = ended.jobs[0]
    config.option.dr_launched_at = created.isoformat()
    config.stash[_LAUNCH_LINES_KEY] = [
        f"drcheck: launched drill through recovery plan {plan} (execution {started.arn}, "
        f"jobs {', '.join(ended.jobs) or 'none'}) at {created.isoformat(timespec='seconds')}",
        *(f"drcheck: recovery plan execution {ended.status.lower()}: {why}"
          for why in [ended.error, *ended.step_errors] if why),
        *(f"drcheck: launch of {server} failed: {why}" for server, why in sorted(
            failures.items()))]


@pytest.hookimpl(trylast=True, specname="pytest_configure")
def pytest_drcheck_aws_redactor(config: pytest.Config) -> None:
    """Every AWS secret this run resolves goes to the evidence redactor (after the drcheck
    plugin made both; in every process, xdist workers included)."""
    from pytest_drcheck.plugin import EVIDENCE_KEY, RUN_KEY

    run = config.stash.get(RUN_KEY, None)
    evidence = config.stash.get(EVIDENCE_KEY, None)
    if run is not None and run.aws is not None and evidence is not None:
        run.aws.redact_with(evidence.redactor.add)


@pytest.hookimpl(specname="pytest_report_header")
def pytest_drcheck_aws_launch_header(config: pytest.Config) -> list[str]:
    return config.stash.get(_LAUNCH_LINES_KEY, [])


@pytest.hookimpl(wrapper=True, tryfirst=True, specname="pytest_sessionfinish")
def pytest_drcheck_aws_terminate(session: pytest.Session, exitstatus: int
                                 ) -> Generator[None, None, None]:
    """Terminate first (the leftover listing then shows what really stays up), record after
    pytest's JUnit file is written."""
    config = session.config
    if (config.getoption("dr_terminate_drill", False) and not hasattr(config, "workerinput")
            and not config.option.collectonly):
        config.stash[_TERMINATED_KEY] = _terminate(config)
    yield
    record = config.stash.get(_TERMINATED_KEY, None)
    xml = config.getoption("xmlpath", None)
    if record is not None and xml and Path(xml).is_file():
        from pytest_drcheck.evidence.junit import add_suite_properties

        add_suite_properties(Path(xml), [
            ("dr.aws.drill_job", record["job"]),
            ("dr.aws.terminated_instances", ", ".join(record["instances"]) or
             (f"unknown ({record['error']})" if record["error"] else "none"))])


def _terminate(config: pytest.Config) -> dict[str, Any]:
    from pytest_drcheck.aws.clients import AwsError
    from pytest_drcheck.aws.drill import DrillError, terminate

    job = config.stash.get(_JOB_KEY, None)
    record: dict[str, Any] = {"job": job or "", "instances": [], "already_gone": [],
                              "error": ""}
    if not job:
        record["error"] = "no drill job: pass --dr-drs-job or --dr-launch-drill"
        return record
    from pytest_drcheck.aws.plans import terminate_plan

    try:
        clients, _ = _clients(config)
        # A recovery plan's execution (--dr-recovery-plan): every job its steps started.
        done = terminate_plan(clients, job) if job.startswith("arn:") else [
            terminate(clients, job)]
    except (AwsError, DrillError, pytest.UsageError) as exc:
        record["error"] = str(exc)
        return record
    record["instances"] = [i for d in done for i in d.instances]
    record["already_gone"] = [i for d in done for i in d.already_gone]
    return record


@pytest.hookimpl(specname="pytest_terminal_summary")
def pytest_drcheck_aws_terminated_summary(terminalreporter: pytest.TerminalReporter,
                                          config: pytest.Config) -> None:
    record = config.stash.get(_TERMINATED_KEY, None)
    if record is None:
        return
    terminalreporter.write_sep("=", "drcheck: drill terminated", yellow=bool(record["error"]))
    if record["error"]:
        terminalreporter.write_line(f"could not terminate drill job {record['job'] or '?'}: "
                                    f"{record['error']}")
        return
    shown = ", ".join(record["instances"]) or "none left"
    terminalreporter.write_line(f"job {record['job']}: terminated {shown}")
