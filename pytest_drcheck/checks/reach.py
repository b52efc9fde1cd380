"""reach: a TCP connection made by the instance, with its observable outcome.

connected, refused (something answered with a reset: a host is there, the port is closed or a
firewall rejects), timed out (nothing answered: a black-holing firewall) or unreachable (no
route). Open passes on connected only; closed on any of the others. A target given by name is
resolved on the instance: a name that does not resolve there could not be observed (an error
naming the name), never "closed".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

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
    entry_schema: ClassVar[Mapping[str, Any]] = {
        "required": ["target"],
        "properties": {
            "target": vocabulary.ENDPOINT,
            "expect": {"enum": ["open", "closed"]},
            "connect_timeout": vocabulary.TIMEOUT,
        },
    }

    def expand(self, entry: Mapping[str, Any], site: Mapping[str, Any]) -> list[Subject]:
        endpoint = parse_endpoint(entry["target"])
        if endpoint is None:
            raise ExpansionError(f"'{entry['target']}' has no valid port (1-65535)", ".target")
        connect_timeout = connect_timeout_of(entry, DEFAULT_CONNECT_TIMEOUT)
        return [Subject(entry["target"], {
            "host": endpoint[0], "port": endpoint[1], "expect": entry.get("expect", "open"),
            "connect_timeout": connect_timeout})]

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
