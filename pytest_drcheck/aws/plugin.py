"""pytest glue of the AWS drill lifecycle (its own plugin module, entry point ``drcheck-aws``).

``--dr-launch-drill``: before anything else (on the controller, never under --collect-only),
start a drill of the inventory's DRS source servers (see aws.drill), wait for every launch to
end (within --dr-wait, default 30 min), then run the checks against that job exactly as with
``--dr-drs-job`` and measure the RTO from the job's creation time in DRS (``--dr-launched-at``).

Secrets: every ``aws-secretsmanager:``/``aws-ssm:`` value the run resolves is handed to the
evidence redactor.

``--dr-terminate-drill``: at the end, whatever the outcome, terminate exactly the recovery
instances of that job (the launched one, or ``--dr-drs-job``), before the leftover listing,
and record it: a terminal section and the JUnit suite properties ``dr.aws.drill_job`` and
``dr.aws.terminated_instances``.
"""

from __future__ import annotations

from collections.abc import Generator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

_JOB_KEY = pytest.StashKey[str]()
_TERMINATED_KEY = pytest.StashKey[dict[str, Any]]()
_LAUNCH_LINES_KEY = pytest.StashKey[list[str]]()
DEFAULT_LAUNCH_WAIT = 1800.0


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("drcheck")
    group.addoption("--dr-launch-drill", dest="dr_launch_drill", action="store_true",
                    help="AWS: start a DRS drill of the inventory's source servers first and "
                         "check that job (RTO measured from its creation)")
    group.addoption("--dr-drill-snapshot", dest="dr_drill_snapshot", action="append",
                    default=[], metavar="SERVER=SNAPSHOT",
                    help="with --dr-launch-drill: launch this source server from a recovery "
                         "snapshot instead of the latest point in time (repeatable)")
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


@pytest.hookimpl(trylast=True, specname="pytest_configure")
def pytest_drcheck_aws_redactor(config: pytest.Config) -> None:
    """Every AWS secret this run resolves goes to the evidence redactor (after the drcheck
    plugin made both; in every process, xdist workers included)."""
    from pytest_drcheck.plugin import EVIDENCE_KEY, RUN_KEY

    run = config.stash.get(RUN_KEY, None)
    evidence = config.stash.get(EVIDENCE_KEY, None)
    if run is not None and run.aws is not None and evidence is not None:
        run.aws.redact_with(evidence.redactor.add)


def pytest_report_header(config: pytest.Config) -> list[str]:
    return config.stash.get(_LAUNCH_LINES_KEY, [])


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int
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
    try:
        clients, _ = _clients(config)
        done = terminate(clients, job)
    except (AwsError, DrillError, pytest.UsageError) as exc:
        record["error"] = str(exc)
        return record
    record["instances"] = list(done.instances)
    record["already_gone"] = list(done.already_gone)
    return record


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter,
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
