"""reach: a TCP connection made by the instance, with its observable outcome.

connected, refused (something answered with a reset: a host is there, the port is closed or a
firewall rejects), timed out (nothing answered: a black-holing firewall) or unreachable (no
route). Open passes on connected only; closed on any of the others. A target given by name is
resolved on the instance: a name that does not resolve there could not be observed (an error
naming the name), never "closed".

``replication: staging`` and ``replication: recovery-instance`` entries (the shipped
replication-path and failback-path suites) take their targets from ``site.replication``
(replication_paths.py): the staging area's replication servers, and the recovery instances
whose ``source:`` is this host, on the replication port (1500); each must be open.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from pytest_drcheck.checks import replication_paths
from pytest_drcheck.checks.base import Check, CheckContext, ExpansionError, Subject
from pytest_drcheck.checks.tcp_probe import (
    Connection,
    connect,
    connect_timeout_of,
    parse_endpoint,
)
from pytest_drcheck.inventory import vocabulary
from pytest_drcheck.model import Observation, PlanItem

DEFAULT_CONNECT_TIMEOUT = 3.0


@dataclass(frozen=True)
class ReachParams:
    host: str
    port: int
    expect: Literal["open", "closed"]
    connect_timeout: float

    @classmethod
    def of(cls, params: Mapping[str, Any]) -> ReachParams:
        return cls(params["host"], params["port"], params["expect"], params["connect_timeout"])


class ReachCheck(Check[Connection]):
    type_name: ClassVar[str] = "reach"
    default_timeout: ClassVar[float] = 10.0
    light: ClassVar[bool] = True
    # site.replication is shared by reach and egress entries; one family has to carry its
    # schema, and reach dials most of what it describes.
    site_key: ClassVar[str | None] = "replication"
    site_schema: ClassVar[Mapping[str, Any] | None] = replication_paths.SITE_SCHEMA
    # The loader adds which hosts name this one as their source (failback targets).
    wants_host_context: ClassVar[bool] = True
    entry_schema: ClassVar[Mapping[str, Any]] = {
        "properties": {
            "target": vocabulary.ENDPOINT,
            "expect": {"enum": ["open", "closed"]},
            "connect_timeout": vocabulary.TIMEOUT,
            "replication": {"enum": ["staging", "recovery-instance"],
                            "x-expect": "staging or recovery-instance (targets taken from "
                                        "site.replication and the hosts' source:)"},
        },
    }

    def expand(self, entry: Mapping[str, Any], site: Mapping[str, Any]) -> list[Subject]:
        connect_timeout = connect_timeout_of(entry, DEFAULT_CONNECT_TIMEOUT)
        if "replication" in entry:
            return self._replication(entry, site, connect_timeout)
        if "target" not in entry:
            raise ExpansionError("missing required key 'target'; add it (or use replication: "
                                 "staging or recovery-instance)")
        endpoint = parse_endpoint(entry["target"])
        if endpoint is None:
            raise ExpansionError(f"'{entry['target']}' has no valid port (1-65535)", ".target")
        return [Subject(entry["target"], {
            "host": endpoint[0], "port": endpoint[1], "expect": entry.get("expect", "open"),
            "connect_timeout": connect_timeout})]

    @staticmethod
    def _replication(entry: Mapping[str, Any], site: Mapping[str, Any],
                     connect_timeout: float) -> list[Subject]:
        if {"target", "expect"} & set(entry):
            raise ExpansionError(f"replication: {entry['replication']} takes its targets from "
                                 "site.replication and expects them open; put other targets in "
                                 "separate entries")
        if entry["replication"] == "staging":
            named = [(f"staging {replication_paths.format_endpoint(host, port)}", host, port)
                     for host, port in replication_paths.staging(site)]
        else:
            port = replication_paths.replication_port(site)
            named = [(f"recovery instance {name} "
                      f"{replication_paths.format_endpoint(address, port)}", address, port)
                     for name, address in replication_paths.recovery_instances(
                         entry.get("host_context"))]
        return [Subject(name, {"host": host, "port": port, "expect": "open",
                               "connect_timeout": connect_timeout})
                for name, host, port in named]

    def expected(self, item: PlanItem) -> str:
        return ReachParams.of(item.params).expect

    def observe(self, ctx: CheckContext) -> Connection:
        params = ReachParams.of(ctx.params)
        return connect(ctx.target, params.host, params.port,
                         min(params.connect_timeout, ctx.timeout))

    def judge(self, item: PlanItem, value: Connection) -> Observation:
        expected = ReachParams.of(item.params).expect
        if (expected == "open") == (value.outcome == "connected"):
            return Observation.passed(expected, value.observed, outcome=value.outcome)
        return Observation.failed(expected, value.observed, outcome=value.outcome)
