"""Checks that never ran (an interrupted run), the run's wall time in the bundle's JUnit,
the one-line-per-host summary of unreachable hosts, and where library log records go."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any

import xmlschema
from junitparser import JUnitXml

from pytest_drcheck.evidence.junit_bundle import write_junit
from pytest_drcheck.evidence.logs import LibraryLogRouter, LogSink, host_of
from pytest_drcheck.evidence.redact import Redactor
from pytest_drcheck.evidence.session import unreachable_lines
from tests.evidence.test_evidence import SCHEMA, at, record


def drill(status: str, finished: str | None, not_run: list[str]) -> dict[str, Any]:
    return {"drill": {"name": "q3"}, "status": status, "started_at": at(0),
            "finished_at": finished, "inventory": {"path": "/abs/site.yaml", "id": "site.yaml"},
            "not_run": not_run}


def test_checks_that_never_ran_are_errors_and_time_is_wall_time(tmp_path: Path) -> None:
    records = [record("app01::reach[10.0.0.1:22]", "passed", green=2.5),
               record("app02::reach[10.0.0.1:22]", "passed", green=4.0)]
    path = tmp_path / "junit.xml"
    write_junit(path, drill("interrupted", at(7.25), ["app03::dns[dc01.corp.example]"]),
                records)
    xmlschema.XMLSchema(SCHEMA).validate(path)
    (suite,) = list(JUnitXml.fromfile(str(path)))
    assert (suite.tests, suite.failures, suite.errors, suite.skipped) == (3, 0, 1, 0)
    assert suite.time == 7.25  # started to finished, not the sum of overlapping checks
    case = next(c for c in suite if c.name == "dns[dc01.corp.example]")
    assert case.classname == "site.yaml.app03"
    assert case.result[0].message == "not run: the run was interrupted"
    # A killed run sealed later has no finish time: up to the last result it wrote.
    write_junit(path, drill("interrupted", None, []), records)
    (suite,) = list(JUnitXml.fromfile(str(path)))
    assert suite.time == 4.0 and suite.errors == 0


def test_one_line_per_unreachable_host() -> None:
    records = [
        *(record(f"app01::reach[10.0.0.{n}:22]", "failed",
                 message=f"app01 reach 10.0.0.{n}:22: cannot reach app01: connection refused")
          for n in range(45)),
        record("app02::dns[x]", "error", message="app02 dns x: cannot reach app02: timed out"),
        record("app03::dns[x]", "failed", message="app03 dns x: expected 1, observed 2"),
        # Reported by an xdist worker: the reason travels as a property.
        {"host": "app04", "outcome": "error", "unreachable": "host key changed"},
    ]
    assert unreachable_lines(records) == [
        "unreachable hosts (their checks observed nothing):",
        "  app01 (45 checks): connection refused",
        "  app02 (1 check): timed out",
        "  app04 (1 check): host key changed",
    ]
    assert unreachable_lines(records[-2:-1]) == []


def test_background_library_records_go_to_their_host(tmp_path: Path) -> None:
    sink = LogSink(tmp_path, Redactor([("env:PW", "s3cr3t-value")]))
    router = LibraryLogRouter(sink)
    router.install()
    try:
        def log() -> None:
            logging.getLogger("pytest_drcheck.ssh.app01").error("channel open FAILED s3cr3t-value")
            logging.getLogger("paramiko.transport").error("Error reading SSH protocol banner")

        thread = threading.Thread(target=log, name="paramiko-thread")
        thread.start()
        thread.join()
        logging.getLogger("paramiko.transport").error("logged by the test itself")
    finally:
        router.remove()
        sink.close()
    app01 = [json.loads(line) for line in (tmp_path / "logs" / "app01.jsonl").read_text()
             .splitlines()]
    runner = [json.loads(line) for line in (tmp_path / "logs" / "runner.jsonl").read_text()
              .splitlines()]
    assert [r["message"] for r in app01] == ["channel open FAILED [redacted env:PW]"]
    assert [r["message"] for r in runner] == ["Error reading SSH protocol banner"]
    assert app01[0]["logger"] == "pytest_drcheck.ssh.app01" and app01[0]["level"] == "ERROR"


def test_transport_debug_records_are_made_only_for_a_bundle(tmp_path: Path) -> None:
    """Without a bundle the transports' DEBUG chatter is not even made (nothing would keep
    it); their warnings still stay out of the reports and are counted."""
    def log() -> None:
        channel = logging.getLogger("pytest_drcheck.ssh.app01")
        channel.debug("[chan 3] EOF sent")
        channel.warning("Oops, unhandled type 3")

    for sink in (None, LogSink(tmp_path, Redactor([]))):
        router = LibraryLogRouter(sink)
        router.install()
        try:
            thread = threading.Thread(target=log, name="paramiko-thread")
            thread.start()
            thread.join()
        finally:
            router.remove()
            if sink is not None:
                sink.close()
        if sink is None:
            assert router.unkept == {"app01": 1}
    kept = [json.loads(line)["message"] for line in (tmp_path / "logs" / "app01.jsonl")
            .read_text().splitlines()]
    assert kept == ["[chan 3] EOF sent", "Oops, unhandled type 3"]


def test_host_of_a_record() -> None:
    def made(name: str, thread: str) -> logging.LogRecord:
        made = logging.LogRecord(name, logging.ERROR, __file__, 1, "x", None, None)
        made.threadName = thread
        return made

    assert host_of(made("pytest_drcheck.ssh.db01", "Thread-3")) == "db01"
    assert host_of(made("pytest_drcheck.engine", "check-web02::reach[a:1]")) == "web02"
    assert host_of(made("paramiko.transport", "Thread-9")) is None
