"""The evidence side of one pytest session, kept free of pytest so the plugin stays glue.

Built from the options (``--dr-evidence``, ``--dr-wait``, ``--dr-launched-at``,
``--dr-shard``); it decides what each result is reported as (waivers), streams results into
the bundle when there is one, and seals the bundle at the end.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pytest_drcheck.durations import format_duration, parse_duration
from pytest_drcheck.evidence import bundle
from pytest_drcheck.evidence import properties as names
from pytest_drcheck.evidence.junit import capped, case_properties
from pytest_drcheck.evidence.layout import DRILL, EvidenceError
from pytest_drcheck.evidence.logs import LibraryLogRouter, LogSink
from pytest_drcheck.evidence.records import Record, Verdicts, iso, parse_instant
from pytest_drcheck.evidence.redact import Redactor, redactor_for
from pytest_drcheck.evidence.stream import ResultStream
from pytest_drcheck.evidence.waiving import stale_waivers
from pytest_drcheck.inventory.plan import Plan
from pytest_drcheck.model import CheckResult
from pytest_drcheck.sharding import Shard, hosts_of, parse_shard

# A launch time this far in the future is a mistake, not clock skew.
FUTURE_SLACK = timedelta(minutes=5)


@dataclass(frozen=True)
class EvidenceOptions:
    directory: Path | None
    wait: float
    launched_at: datetime | None
    shard: Shard | None


def parse_options(evidence: str | None, wait: str | None, launched_at: str | None,
                  shard: str | None, now: datetime) -> EvidenceOptions:
    """Raises ValueError with one line per mistake (the plugin turns it into a usage error)."""
    seconds = 0.0
    if wait:
        try:
            seconds = parse_duration(wait)
        except ValueError as exc:
            raise ValueError(f"--dr-wait={wait}: {exc}") from None
    moment = None
    if launched_at:
        moment = parse_instant(launched_at, "--dr-launched-at")
        if moment > now + FUTURE_SLACK:
            raise ValueError(f"--dr-launched-at={launched_at}: in the future (now is "
                             f"{iso(now)}); give the time the drill instances were launched")
    return EvidenceOptions(Path(evidence).resolve() if evidence else None, seconds, moment,
                           parse_shard(shard) if shard else None)


@dataclass
class EvidenceSession:
    plan: Plan
    options: EvidenceOptions
    started_at: datetime
    anchor: datetime
    anchor_source: str
    # How pytest ids and JUnit class names start (site.yaml in site.yaml::app01::dns[x]).
    inventory_id: str
    redactor: Redactor = field(init=False)
    verdicts: Verdicts = field(init=False)
    stream: ResultStream | None = None
    drill: dict[str, Any] | None = None
    shard_hosts: set[str] | None = None
    # Controller side: what the reports said, for RTO and the summary without a bundle.
    reported: list[Record] = field(default_factory=list)
    sealed: bundle.Written | None = None
    # The planned checks are known (drill.json rewritten after collection).
    collected: bool = False
    logs: LibraryLogRouter | None = None
    _log_sink: LogSink | None = None

    def __post_init__(self) -> None:
        self.redactor = redactor_for(self.plan)
        self.verdicts = Verdicts(self.plan, self.anchor, self.started_at.date(), self.redactor)
        if self.options.shard is not None:
            counts: dict[str, int] = dict.fromkeys(self.plan.hosts, 0)
            for item in self.plan.items:
                counts[item.host] += 1
            self.shard_hosts = hosts_of(self.options.shard, counts.items())

    # --- per result ------------------------------------------------------------------------

    def claim(self, key: str) -> None:
        if self.stream is not None:
            self.stream.claim(key)

    def record(self, result: CheckResult) -> Record:
        """The result's record: the one the stream wrote (the verdict step runs once)."""
        return self.verdicts.record(result)

    @staticmethod
    def properties(record: Mapping[str, Any]) -> list[tuple[str, str]]:
        """The case properties for pytest's JUnit file, from the record; a huge value (command
        output) is cut, pointing at the whole observation in the bundle."""
        unreachable = unreachable_reason(record)
        extra = [(names.UNREACHABLE, unreachable)] if unreachable is not None else []
        return [(name, capped(value, record)) for name, value in case_properties(record)] + extra

    @staticmethod
    def item_message(record: Mapping[str, Any]) -> str:
        """What the pytest item reports: the record's one line, except for a host that could
        not be reached, whose reason the summary shows once instead of once per check."""
        message = str(record["message"])
        marker = f": cannot reach {record['host']}: "
        if unreachable_reason(record) is None or marker not in message:
            return message
        return (f"{message[:message.index(marker)]}: cannot reach {record['host']} "
                "(reason in the drcheck summary)")

    # --- the bundle ------------------------------------------------------------------------

    def open_bundle(self, controller: bool) -> None:
        directory = self.options.directory
        if directory is None:
            return
        if controller:
            bundle.prepare_directory(directory)
        self.stream = ResultStream(directory, self.verdicts)
        if controller:
            self.stream.claim_all()

    def route_library_logs(self) -> None:
        """From now on library log records go to the bundle (``logs/``), not to the tests."""
        if self.options.directory is not None and self.stream is not None:
            self._log_sink = LogSink(self.options.directory, self.redactor)
        self.logs = LibraryLogRouter(self._log_sink)
        self.logs.install()

    def initial_drill(self, hosts: Sequence[str], checks: Sequence[str]) -> dict[str, Any]:
        shard = self.options.shard
        return bundle.initial_drill(
            self.plan, started_at=self.started_at, anchor=self.anchor,
            anchor_source=self.anchor_source, inventory_id=self.inventory_id,
            shard=(shard.index, shard.count) if shard else None, hosts=hosts, checks=checks,
            wait_s=self.options.wait, redactor=self.redactor)

    def write_drill(self, hosts: Sequence[str], checks: Sequence[str],
                    collected: bool = True) -> None:
        """drill.json as the run starts; ``checks`` are the keys of the planned checks."""
        self.drill = self.initial_drill(hosts, checks)
        self.collected = collected
        if self.options.directory is not None:
            bundle.write_json(self.options.directory / DRILL, self.drill)

    def seal(self, finished_at: datetime, complete: bool) -> dict[str, Any]:
        """End of session (controller). Returns the final drill facts (RTO, counts...)."""
        drill = self.drill or self.initial_drill(sorted(self.plan.hosts),
                                                 [str(r["key"]) for r in self.reported])
        if self.stream is not None:
            self.stream.close()
        if self._log_sink is not None:
            self._log_sink.close()
        if self.options.directory is not None:
            self.sealed = bundle.finish_run(self.options.directory, drill, finished_at,
                                            complete)
            return self.sealed.drill
        final = dict(drill) | {"status": "finished" if complete else "interrupted",
                               "finished_at": iso(finished_at)}
        return bundle.derive(final, list(self.reported), complete)

    def close(self) -> None:
        if self.stream is not None:
            self.stream.close()
        if self._log_sink is not None:
            self._log_sink.close()
        if self.logs is not None:
            self.logs.remove()
            self.logs = None

    # --- summary ---------------------------------------------------------------------------

    def stale_messages(self) -> list[str]:
        return [s.message for s in stale_waivers(self.plan)]


def summary_lines(drill: Mapping[str, Any], directory: Path | None,
                  manifest_sha256: str | None) -> list[str]:
    rto = drill.get("rto", {})
    counts = drill.get("counts", {})
    shown = ", ".join(f"{counts[name]} {name.replace('_', ' ')}"
                      for name in ("passed", "failed", "waived", "error", "skipped", "not_run")
                      if counts.get(name))
    lines = [f"drill '{drill['drill']['name']}': {str(drill.get('verdict')).upper()} "
             f"({shown or 'no checks'})"]
    target = rto.get("target_s")
    measured = rto.get("measured_s")
    target_text = f"target {format_duration(target)}" if target is not None else "no target"
    if measured is not None:
        state = {True: "met", False: "MISSED", None: ""}[rto.get("met")]
        lines.append(f"measured RTO {format_duration(measured)} from "
                     f"{rto.get('anchor_source')} to last green ({target_text}) {state}".rstrip())
    elif rto.get("never_green"):
        unknown = " or have no result" if counts.get("not_run") else ""
        lines.append(f"measured RTO: not reached, {rto['never_green']} check(s) never went "
                     f"green{unknown} ({target_text})")
    for waiver in drill.get("waivers", []):
        if waiver.get("stale"):
            lines.append(f"stale waiver: {waiver['stale_message']}")
        elif waiver.get("status") == "expired" and waiver.get("expired_hits"):
            lines.append(f"expired waiver {waiver['id']} (expired {waiver['expires']}) no "
                         f"longer waives {waiver['expired_hits']} failure(s)")
    if directory is not None:
        lines.append(f"evidence: {directory} (MANIFEST.sha256 sha256 {manifest_sha256})")
    return lines


def unreachable_reason(record: Mapping[str, Any]) -> str | None:
    """Why the record's host could not be reached, when that is all the record says."""
    if record.get("unreachable"):
        return str(record["unreachable"])
    if record.get("outcome") not in ("failed", "error"):
        return None
    marker = f": cannot reach {record.get('host')}: "
    message = str(record.get("message") or "")
    if marker not in message:
        return None
    return message.split(marker, 1)[1]


def unreachable_lines(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """One line per host that could not be reached, with its reason and how many checks."""
    reasons: dict[str, str] = {}
    checks: dict[str, int] = {}
    for record in records:
        reason = unreachable_reason(record)
        if reason is not None:
            host = str(record.get("host"))
            reasons.setdefault(host, reason)
            checks[host] = checks.get(host, 0) + 1
    if not reasons:
        return []
    return ["unreachable hosts (their checks observed nothing):", *(
        f"  {host} ({checks[host]} check{'s' if checks[host] != 1 else ''}): {reasons[host]}"
        for host in sorted(reasons))]


def reported_record(properties: Sequence[tuple[str, object]]) -> Record | None:
    """A minimal record from a test report's properties (crosses pytest-xdist)."""
    values = {str(k): v for k, v in properties}
    if names.HOST not in values:
        return None
    host, check, subject = values[names.HOST], values.get(names.CHECK), values.get(names.SUBJECT)
    record: Record = {
        "key": f"{host}::{check}[{subject}]", "host": host, "check": check, "subject": subject,
        "outcome": values.get(names.OUTCOME), "green_at": values.get(names.GREEN_AT) or None,
        "waiver": None, "unreachable": values.get(names.UNREACHABLE) or None,
    }
    if values.get(names.WAIVER):
        record["waiver"] = {"id": values[names.WAIVER],
                            "status": values.get(names.WAIVER_STATUS)}
    return record


__all__ = ["EvidenceError", "EvidenceOptions", "EvidenceSession", "parse_options"]
