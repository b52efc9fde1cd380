"""pytest glue of the aws extra: its options, the non-drill guard, discovery when checking
starts, the JUnit facts and the end-of-run report of recovery instances DRS left running.

Registered by the core plugin; it learns about the drill through the drcheck hooks
(``pytest_dr_run_configured``, ``pytest_dr_checking_starts``, ``pytest_dr_suite_properties``)
and keeps its own state in its own stash keys.
"""

from __future__ import annotations

import contextlib
import re
import warnings
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
    group = parser.getgroup(*OPTION_GROUP)
    group.addoption("--dr-drs-job", dest="dr_drs_job", metavar="JOB",
                    help="AWS DRS drill job id: find recovery instances of this job only")
    group.addoption("--dr-allow-non-drill", dest="dr_allow_non_drill", action="store_true",
                    help="check AWS recovery instances that are not drills (a real recovery); "
                         "refused by default")
    parser.addini("dr_drs_job", "default for --dr-drs-job")


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
@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
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
