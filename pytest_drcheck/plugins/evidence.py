"""pytest glue of the evidence side: the launch-time anchor, its propagation to pytest-xdist
workers, the collection of every check's report on the controller, the sealing of the bundle
and pytest's JUnit file at the end, and the drcheck summary.

Registered by the core plugin. The core opens the evidence session with ``open_evidence``
(the engine needs ``--dr-wait`` before the run exists); from then on this part learns about
the drill through the drcheck hooks and pytest's own, and keeps its state in its stash keys.
The evidence itself (records, bundle, JUnit) lives in ``pytest_drcheck.evidence``, free of
pytest.
"""

from __future__ import annotations

import logging
from collections.abc import Generator
from dataclasses import dataclass
from datetime import timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_drcheck import __version__
from pytest_drcheck.plugins import OPTION_GROUP

if TYPE_CHECKING:
    from _pytest.junitxml import LogXML

    from pytest_drcheck.evidence.session import EvidenceSession
    from pytest_drcheck.inventory.plan import Plan
    from pytest_drcheck.recoverypoint import RecoveryPoint
    from pytest_drcheck.runtime import DrillRun

EVIDENCE_KEY = pytest.StashKey["EvidenceSession"]()
# The final drill facts (drill.json as sealed) and why sealing failed, for the summary.
DRILL_KEY = pytest.StashKey[dict[str, Any]]()
SEAL_ERROR_KEY = pytest.StashKey[str]()
LOG_FILTER_KEY = pytest.StashKey[logging.Filter]()
# pytest's handlers that attach log records to test reports (and to caplog).
_REPORT_HANDLERS = ("report_handler", "caplog_handler")
# The RTO anchor when no launch time was given (--dr-launched-at, a plugin's hook).
NO_LAUNCH_TIME = "start of checking (no launch time given)"


def evidence_of(config: pytest.Config) -> EvidenceSession | None:
    """The evidence session of this drill, when pytest runs one."""
    return config.stash.get(EVIDENCE_KEY, None)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup(*OPTION_GROUP)
    group.addoption("--dr-evidence", dest="dr_evidence", metavar="DIR",
                    help="write the drill's evidence bundle (JUnit, results.jsonl, observations, "
                         "drill.json, report.html, MANIFEST.sha256) to this new directory")
    group.addoption("--dr-launched-at", dest="dr_launched_at", metavar="ISO-8601",
                    help="when the drill instances were launched (e.g. 2024-05-01T09:30:00Z): "
                         "the start of the measured RTO (default: when checking starts)")


def drill_launch(evidence: EvidenceSession) -> RecoveryPoint | None:
    """A launch time that was given is the rpo check's recovery point; the start of checking
    is none (the data was taken before it)."""
    from pytest_drcheck.recoverypoint import RecoveryPoint

    if evidence.anchor_source == NO_LAUNCH_TIME:
        return None
    return RecoveryPoint(evidence.anchor, evidence.anchor_source)


def open_evidence(config: pytest.Config, plan: Plan, inventory_id: str) -> EvidenceSession:
    """The evidence session of the run (every process): options parsed, the launch anchor
    fixed (the controller's, on xdist workers), the bundle opened and library logs routed."""
    from pytest_drcheck.evidence.layout import EvidenceError
    from pytest_drcheck.evidence.records import parse_instant
    from pytest_drcheck.evidence.session import EvidenceSession, parse_options
    from pytest_drcheck.runtime import utc_now

    worker: dict[str, Any] | None = getattr(config, "workerinput", None)
    now = utc_now()
    try:
        options = parse_options(
            worker["dr_evidence"] if worker else config.getoption("dr_evidence"),
            config.getoption("dr_wait") or config.getini("dr_wait"),
            config.getoption("dr_launched_at"), config.getoption("dr_shard"), now)
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    if worker:  # one clock for the whole run: the controller's
        started = parse_instant(worker["dr_started_at"])
        anchor, source = parse_instant(worker["dr_anchor"]), worker["dr_anchor_source"]
    else:
        started, anchor, source = now, now, NO_LAUNCH_TIME
        hooked = config.hook.pytest_dr_launched_at(config=config)
        if options.launched_at is not None:
            anchor, source = options.launched_at, "--dr-launched-at"
        elif hooked is not None:
            if hooked.tzinfo is None:
                raise pytest.UsageError("a plugin's pytest_dr_launched_at returned a time "
                                        "without timezone; it must return an aware datetime")
            anchor, source = (hooked.astimezone(timezone.utc),
                              "launch time from a plugin (pytest_dr_launched_at)")
    session = EvidenceSession(plan, options, started, anchor, source, inventory_id)
    if not config.getoption("collectonly"):
        try:
            session.open_bundle(controller=worker is None)
            if worker is None:  # before collection: the whole inventory, refined later
                session.write_drill(sorted(plan.hosts), [i.key for i in plan.items],
                                    collected=False)
        except EvidenceError as exc:
            raise pytest.UsageError(f"--dr-evidence: {exc}") from None
    session.route_library_logs()
    config.stash[EVIDENCE_KEY] = session
    return session


def pytest_dr_run_configured(config: pytest.Config, run: DrillRun) -> None:
    evidence = evidence_of(config)
    if evidence is None:
        return
    if evidence.stream is not None:
        run.engine.add_listener(evidence.stream)
    if not hasattr(config, "workerinput"):
        config.pluginmanager.register(_ReportCollector(config, evidence), "drcheck-reports")


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """pytest-xdist: workers share the controller's clock, anchor and evidence directory."""
    session = evidence_of(node.config)
    if session is None:
        return
    node.workerinput["dr_started_at"] = session.started_at.isoformat()
    node.workerinput["dr_anchor"] = session.anchor.isoformat()
    node.workerinput["dr_anchor_source"] = session.anchor_source
    directory = session.options.directory
    node.workerinput["dr_evidence"] = str(directory) if directory else None


def pytest_sessionstart(session: pytest.Session) -> None:
    """Library records of background threads (paramiko, the engine's checks) belong to their
    host's evidence, not to whichever test is running: keep them out of pytest's capture."""
    config = session.config
    if evidence_of(config) is None:
        return
    from pytest_drcheck.evidence.logs import KeepOutOfReports

    logging_plugin = config.pluginmanager.get_plugin("logging-plugin")
    keep_out = config.stash[LOG_FILTER_KEY] = KeepOutOfReports()
    for name in _REPORT_HANDLERS:
        handler = getattr(logging_plugin, name, None)
        if isinstance(handler, logging.Handler):
            handler.addFilter(keep_out)


# trylast: the core closes the run (its checks stop) before the bundle's files close.
@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    evidence = evidence_of(config)
    if evidence is not None:
        evidence.close()
    keep_out = config.stash.get(LOG_FILTER_KEY, None)
    if keep_out is not None:
        logging_plugin = config.pluginmanager.get_plugin("logging-plugin")
        for name in _REPORT_HANDLERS:
            handler = getattr(logging_plugin, name, None)
            if isinstance(handler, logging.Handler):
                handler.removeFilter(keep_out)


# tryfirst: drill.json names the selected checks before the core starts checking them.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    config = session.config
    evidence = evidence_of(config)
    if (evidence is None or config.getoption("collectonly")
            or hasattr(config, "workerinput")):
        return
    keys = [key for key in (_check_key(item) for item in session.items) if key is not None]
    evidence.write_drill(sorted({key.split("::", 1)[0] for key in keys}), keys)


def _check_key(item: pytest.Item) -> str | None:
    plan_item = getattr(item, "plan_item", None)
    return str(plan_item.key) if plan_item is not None else None


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node: Any, ids: list[str]) -> None:
    """pytest-xdist controller (which collects nothing itself): the planned checks are what
    the first worker collected (every worker collects the same)."""
    config: pytest.Config = node.config
    evidence = evidence_of(config)
    if evidence is None or evidence.collected:
        return
    prefix = f"{evidence.inventory_id}::"
    # The rest of a check's node id is its key (host::check[subject]); a subject may hold
    # "::" itself (an IPv6 address), so the id is not split on it.
    keys = [node_id[len(prefix):] for node_id in ids if node_id.startswith(prefix)]
    evidence.write_drill(sorted({key.split("::", 1)[0] for key in keys}), keys)


@dataclass
class _JunitFinish:
    """What pytest's JUnit file gets at the end of the run."""

    properties: list[tuple[str, str]]
    facts: str | None
    # Checks the file has no case for (an interrupted run): added by rewriting it.
    unreported: list[str]
    drill: dict[str, Any]
    properties_written: bool = False


_JUNIT_KEY = pytest.StashKey[_JunitFinish]()
# A check error's message could not be set as pytest wrote the case: rewrite the file.
_JUNIT_REWRITE_KEY = pytest.StashKey[bool]()


def _pytest_junit(config: pytest.Config) -> LogXML | None:
    """pytest's junitxml writer of this run (controller only), if ``--junitxml`` is given.
    Its stash key is not public API: without it, the file is finished by rewriting it."""
    try:
        from _pytest.junitxml import xml_key
    except ImportError:  # pragma: no cover (a pytest that moved it)
        return None
    return config.stash.get(xml_key, None)


class _ReportCollector:
    """Registered on the controlling process: every check's report (from pytest-xdist workers
    too) carries its properties, from which RTO and the summary are computed without a bundle.
    """

    def __init__(self, config: pytest.Config, evidence: EvidenceSession) -> None:
        self.config = config
        self.evidence = evidence

    # trylast: after junitxml turned the report into its test case.
    @pytest.hookimpl(trylast=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        # An error or a skip ends the item in its setup phase (no call report follows).
        ends = report.when == "call" or (report.when == "setup" and not report.passed)
        if not ends or not report.user_properties:
            return
        from pytest_drcheck.evidence.session import reported_record

        record = reported_record(report.user_properties)
        if record is None:
            return
        self.evidence.reported.append(record)
        if record["outcome"] == "error" and report.when == "setup":
            self._cause_as_error_message(report)

    def _cause_as_error_message(self, report: pytest.TestReport) -> None:
        """A check that could not observe: the message of its ``<error>`` in pytest's JUnit
        file is the cause itself, not pytest's ``failed on setup with "<cause>"``."""
        xml = _pytest_junit(self.config)
        if xml is None:
            return
        from pytest_drcheck.evidence.junit import cause_as_error_message

        errors = [node for node in getattr(xml.node_reporter(report), "nodes", [])
                  if getattr(node, "tag", None) == "error"]
        if errors:
            cause_as_error_message(errors[-1], str(report.longrepr))
        else:  # not as this pytest writes it: the file is rewritten at the end
            self.config.stash[_JUNIT_REWRITE_KEY] = True


# tryfirst: the drill is sealed, and its facts handed to pytest's junitxml, before that
# plugin writes its file (a plain implementation of this same hook, called later).
@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    evidence = evidence_of(config)
    if evidence is None or hasattr(config, "workerinput"):
        return
    from pytest_drcheck.evidence.junit import drill_facts, suite_properties, unique_properties
    from pytest_drcheck.evidence.layout import EvidenceError
    from pytest_drcheck.runtime import utc_now

    finished_at = utc_now()
    drill: dict[str, Any] = {}
    if not config.getoption("collectonly"):
        complete = exitstatus not in (pytest.ExitCode.INTERRUPTED, pytest.ExitCode.INTERNAL_ERROR)
        try:
            drill = evidence.seal(finished_at, complete)
        except (EvidenceError, OSError) as exc:
            config.stash[SEAL_ERROR_KEY] = str(exc)
        config.stash[DRILL_KEY] = drill
    plan = evidence.plan
    properties = unique_properties([
        ("dr.drill", plan.drill.name),
        ("dr.inventory", plan.display_name),
        ("dr.inventory_sha256", plan.sha256),
        ("dr.tool_version", __version__),
        ("dr.started_at", evidence.started_at.isoformat(timespec="milliseconds")),
        ("dr.finished_at", finished_at.isoformat(timespec="milliseconds")),
        *(fact for facts in config.hook.pytest_dr_suite_properties(config=config)
          for fact in facts),
        *(suite_properties(drill) if drill else []),
    ])
    config.stash[_JUNIT_KEY] = _JunitFinish(properties, drill_facts(drill) if drill else None,
                                            _unreported(drill), drill)
    xml = _pytest_junit(config)
    if xml is not None:
        # pytest writes them as suite properties itself: no rewrite of its file for these.
        present = {name for name, _ in xml.global_properties}
        for name, value in properties:
            if name not in present:
                xml.add_global_property(name, value)
        config.stash[_JUNIT_KEY].properties_written = True


# A second implementation of the hook (its own name, which pytest wants prefixed "pytest_"):
# it wraps junitxml's writing.
@pytest.hookimpl(wrapper=True, specname="pytest_sessionfinish")
def pytest_drcheck_finish_junit(session: pytest.Session) -> Generator[None, None, None]:
    """After pytest wrote its JUnit file: the drill facts as the suite's ``system-out``
    (spliced in at the end), and only when it must (checks without a report, pytest's
    internals not as expected), the file rewritten."""
    yield
    config = session.config
    finish = config.stash.get(_JUNIT_KEY, None)
    xml_path = config.getoption("xmlpath", None)
    path = Path(xml_path) if xml_path else None
    if finish is None or path is None or not path.is_file():
        return
    from pytest_drcheck.evidence.junit import add_suite_properties, append_suite_output
    from pytest_drcheck.evidence.junit_bundle import (
        classname,
        inventory_id,
        not_run_message,
        split_key,
    )

    fast = (finish.properties_written and not finish.unreported
            and not config.stash.get(_JUNIT_REWRITE_KEY, False))
    if fast and (finish.facts is None or append_suite_output(path, finish.facts)):
        return
    drill = finish.drill
    add_suite_properties(
        path, finish.properties,
        not_run=[(classname(inventory_id(drill), host), f"{check}[{subject}]")
                 for host, check, subject in map(split_key, finish.unreported)],
        not_run_message=not_run_message(drill), output=finish.facts)


def _unreported(drill: dict[str, Any]) -> list[str]:
    """Keys of checks pytest's JUnit file may lack: after an interruption every planned one
    (a check whose result arrived as the run was stopped has no report either)."""
    if drill.get("status") == "interrupted":
        return list(drill.get("selection", {}).get("checks", []))
    return list(drill.get("not_run", []))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter,
                            config: pytest.Config) -> None:
    evidence = evidence_of(config)
    if evidence is None:
        return
    from pytest_drcheck.evidence.session import summary_lines, unreachable_lines

    drill = config.stash.get(DRILL_KEY, None)
    lines = summary_lines(drill, evidence.options.directory, evidence.sealed.manifest_sha256
                          if evidence.sealed else None) if drill else evidence.stale_messages()
    lines += unreachable_lines(evidence.sealed.records if evidence.sealed
                               else evidence.reported)
    if evidence.logs is not None and evidence.logs.unkept and evidence.sealed is None:
        counted = ", ".join(f"{host} {n}" for host, n in sorted(evidence.logs.unkept.items()))
        lines.append(f"library log records kept out of the test reports ({counted}); "
                     "--dr-evidence keeps them in the bundle's logs/")
    error = config.stash.get(SEAL_ERROR_KEY, None)
    if error:
        lines.append(f"evidence bundle NOT sealed: {error}")
    if lines:
        terminalreporter.write_sep("-", "drcheck")
        for line in lines:
            terminalreporter.write_line(line)
