"""egress: the site's internet egress policy, observed cell by cell from the instance.

Each cell is a destination x a path (a named proxy, or direct) x an expectation (allowed or
denied), and is reported as one of: connected (with the HTTP status through a proxy), denied by
the proxy (403...), refused, timed out, or a proxy error. Denied passes only when denial is
expected; "the proxy could not reach it" (5xx) is not a denial: the proxy let it through.
A destination or proxy name that does not resolve on the instance, or an sshd that will not
forward, could not be observed: an error naming the cause, never "denied".

``replication: endpoint`` (the shipped replication-path and failback-path suites) is one cell
derived from ``site.replication``: the DRS regional endpoint on 443, through the proxy named by
its ``via`` (a CONNECT, as the replication agent makes) or direct, expected allowed.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

from pytest_drcheck.checks import replication_paths
from pytest_drcheck.checks.base import (
    Check,
    CheckContext,
    ExpansionError,
    Subject,
    site_service,
)
from pytest_drcheck.checks.tcp_probe import (
    connect,
    connect_timeout_of,
    parse_endpoint,
    require_responsive,
)
from pytest_drcheck.inventory import vocabulary
from pytest_drcheck.model import CouldNotObserve, Observation, PlanItem
from pytest_drcheck.net.http import connect_request, get_request, read_status
from pytest_drcheck.net.streams import StreamTimeout
from pytest_drcheck.targets.base import StreamError

DIRECT = "direct"
DEFAULT_CONNECT_TIMEOUT = 3.0
_DURATION = vocabulary.TIMEOUT
_CELL = {
    "destination": {"anyOf": [vocabulary.URL, vocabulary.ENDPOINT],
                    "x-expect": "a URL (http://host/path, https://host) or host:port"},
    "via": {"type": "string", "minLength": 1},
    "expect": {"enum": ["allowed", "denied"]},
    "connect_timeout": _DURATION,
}


def parse_destination(text: str) -> tuple[str, str, int, str | None] | None:
    """(scheme, host, port, url for a proxied GET or None) of a cell's destination."""
    if "://" in text:
        parts = urlsplit(text)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return None
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:  # a port that is not a number, or out of range
            return None
        return parts.scheme, parts.hostname, port, text if parts.scheme == "http" else None
    endpoint = parse_endpoint(text)
    if endpoint is None:
        return None
    return "tcp", endpoint[0], endpoint[1], None


# Outcomes that are a denial: the proxy said no, or nothing lets the connection through. "The
# proxy could not reach it" (5xx) is not one: the proxy let it through.
DENIALS = ("denied", "refused", "timed out", "unreachable")


@dataclass(frozen=True)
class EgressCell:
    destination: str
    host: str
    port: int
    url: str | None
    via: str
    proxy: tuple[str, int] | None
    expect: Literal["allowed", "denied"]
    connect_timeout: float

    @classmethod
    def of(cls, params: Mapping[str, Any]) -> EgressCell:
        proxy = params["proxy"]
        return cls(params["destination"], params["host"], params["port"], params["url"],
                   params["via"], (proxy[0], proxy[1]) if proxy is not None else None,
                   params["expect"], params["connect_timeout"])

    @property
    def expected(self) -> str:
        return f"{self.expect} {'via ' + self.via if self.proxy else 'direct'}"


@dataclass(frozen=True)
class EgressOutcome:
    # connected, denied, refused, timed out, unreachable, or proxy ... (refused, timed out,
    # error) when the path through the proxy failed.
    outcome: str
    observed: str


class EgressCheck(Check[EgressOutcome]):
    type_name: ClassVar[str] = "egress"
    site_key: ClassVar[str | None] = "egress"
    default_timeout: ClassVar[float] = 15.0
    # Only streams from the host, no command: cells can all run at once.
    light: ClassVar[bool] = True
    entry_schema: ClassVar[Mapping[str, Any]] = {
        "properties": {**_CELL, "site": {"const": True,
                                         "x-expect": "true (check the site's whole policy)"},
                       "replication": {"const": "endpoint",
                                       "x-expect": "endpoint (the DRS endpoint of "
                                                   "site.replication)"}},
    }
    site_schema: ClassVar[Mapping[str, Any] | None] = {
        "type": "object", "additionalProperties": False,
        "properties": {
            "proxies": {"type": "object", "propertyNames": vocabulary.NAME,
                        "additionalProperties": vocabulary.ENDPOINT},
            "policy": {"type": "array", "items": {
                "type": "object", "additionalProperties": False,
                "required": ["destination", "expect"], "properties": _CELL}},
        },
    }

    def expand(self, entry: Mapping[str, Any], site: Mapping[str, Any]) -> list[Subject]:
        egress_site: Mapping[str, Any] = site.get("egress", {})
        if "replication" in entry:
            return [self._replication_endpoint(entry, site, egress_site)]
        if entry.get("site"):
            if set(entry) - {"site", "connect_timeout"}:
                raise ExpansionError("'site: true' checks the whole site.egress.policy; put "
                                     "single cells in separate entries")
            cells = list(egress_site.get("policy", []))
            if not cells:
                raise ExpansionError("'site: true' needs site.egress.policy; add the policy there "
                                     "or write single cells", ".site")
            defaults = {"connect_timeout": entry["connect_timeout"]} if (
                "connect_timeout" in entry) else {}
            subjects = []
            for index, cell in enumerate(cells):
                try:
                    subjects.append(self._cell({**defaults, **cell}, egress_site))
                except ExpansionError as exc:
                    # The cell is written in the inventory's site: section: the fix is there.
                    key = exc.place_suffix.lstrip(".")
                    raise ExpansionError(str(exc), ".site", (
                        "egress", "policy", index, *([key] if key else []))) from None
            return subjects
        for key in ("destination", "expect"):
            if key not in entry:
                raise ExpansionError(f"missing required key '{key}'; add it (or use 'site: true')")
        return [self._cell(entry, egress_site)]

    @classmethod
    def _replication_endpoint(cls, entry: Mapping[str, Any], site: Mapping[str, Any],
                              egress_site: Mapping[str, Any]) -> Subject:
        if set(entry) - {"replication", "connect_timeout"}:
            raise ExpansionError("replication: endpoint takes the DRS endpoint and its path "
                                 "from site.replication; put other cells in separate entries")
        replication = replication_paths.section(site)
        host, port = replication_paths.endpoint(site)
        cell = {"destination": replication_paths.format_endpoint(host, port),
                "expect": "allowed", "via": replication.get("via", DIRECT),
                **({"connect_timeout": entry["connect_timeout"]}
                   if "connect_timeout" in entry else {})}
        try:
            subject = cls._cell(cell, egress_site)
        except ExpansionError as exc:
            # The proxy is named in site.replication.via: the fix is there.
            raise ExpansionError(str(exc).replace("use via: direct", "leave via out for a "
                                                  "direct path"),
                                 "", ("replication", "via")) from None
        return Subject(f"DRS endpoint {cell['destination']} via {cell['via']}"
                       if cell["via"] != DIRECT else f"DRS endpoint {cell['destination']} "
                       "direct", subject.params)

    @staticmethod
    def _cell(cell: Mapping[str, Any], egress_site: Mapping[str, Any]) -> Subject:
        destination = parse_destination(cell["destination"])
        if destination is None:
            raise ExpansionError(f"'{cell['destination']}' is neither an http(s) URL nor "
                                 "host:port; fix it", ".destination")
        via = cell.get("via", DIRECT)
        proxy = None
        if via != DIRECT:
            proxies: Mapping[str, str] = egress_site.get("proxies", {})
            proxy = parse_endpoint(site_service(proxies, via, "proxy", "site.egress.proxies",
                                                ".via", "define it there or use via: direct"))
            if proxy is None:
                raise ExpansionError(f"site.egress.proxies.{via} is not host:port; fix it", ".via")
        connect_timeout = connect_timeout_of(cell, DEFAULT_CONNECT_TIMEOUT)
        scheme, host, port, url = destination
        # A proxied GET names its URL path; a CONNECT or direct cell its host:port.
        label = f"{host}{urlsplit(url).path or '/'}" if url else f"{host}:{port}"
        return Subject(f"{label}@{via}", {
            "destination": cell["destination"], "scheme": scheme, "host": host, "port": port,
            "url": url, "via": via, "proxy": proxy, "expect": cell["expect"],
            "connect_timeout": connect_timeout})

    def expected(self, item: PlanItem) -> str:
        return EgressCell.of(item.params).expected

    def observe(self, ctx: CheckContext) -> EgressOutcome:
        cell = EgressCell.of(ctx.params)
        connect_timeout = min(cell.connect_timeout, ctx.timeout)
        if cell.proxy is None:
            return self._direct(ctx, cell, connect_timeout)
        return self._proxied(ctx, cell, cell.proxy, connect_timeout)

    def judge(self, item: PlanItem, value: EgressOutcome) -> Observation:
        cell = EgressCell.of(item.params)
        allowed = value.outcome == "connected"
        denied = value.outcome in DENIALS
        if (cell.expect == "allowed" and allowed) or (cell.expect == "denied" and denied):
            return Observation.passed(cell.expected, value.observed, outcome=value.outcome)
        return Observation.failed(cell.expected, value.observed, outcome=value.outcome)

    @staticmethod
    def _direct(ctx: CheckContext, cell: EgressCell, connect_timeout: float) -> EgressOutcome:
        probed = connect(ctx.target, cell.host, cell.port, connect_timeout)
        observed = probed.observed if probed.outcome == "timed out" else probed.outcome
        return EgressOutcome(probed.outcome, observed)

    @staticmethod
    def _proxied(ctx: CheckContext, cell: EgressCell, proxy: tuple[str, int],
                 connect_timeout: float) -> EgressOutcome:
        proxy_host, proxy_port = proxy
        try:
            stream = ctx.target.open_stream(proxy_host, proxy_port, connect_timeout)
        except StreamError as exc:
            # The proxy not answering is what this path does (observed); a proxy whose name
            # does not resolve, or an sshd that will not forward, says nothing about it.
            if isinstance(exc, CouldNotObserve):
                raise
            if exc.outcome not in ("refused", "timed out", "unreachable"):
                raise CouldNotObserve(str(exc)) from None
            if exc.outcome == "timed out":
                # Only the path's if the instance's own connection still answers.
                require_responsive(ctx.target, str(exc), connect_timeout)
            return EgressOutcome("proxy " + exc.outcome,
                                 f"proxy {proxy_host}:{proxy_port} {exc.outcome}")
        deadline = time.monotonic() + max(0.5, ctx.timeout - connect_timeout)
        try:
            if cell.url:
                stream.sendall(get_request(cell.url, cell.host))
            else:
                stream.sendall(connect_request(cell.host, cell.port))
            status, reason = read_status(stream, deadline)
        except StreamTimeout:
            require_responsive(ctx.target, "no answer from the proxy", connect_timeout)
            return EgressOutcome("proxy timed out", "no answer from the proxy")
        except (EOFError, OSError, ValueError) as exc:
            # A proxy that took the connection and then gave no HTTP answer (closed it, or
            # spoke something else) neither allowed nor denied: the path cannot be told.
            raise CouldNotObserve(f"the proxy {proxy_host}:{proxy_port} gave no HTTP answer: "
                                  f"{exc}") from None
        finally:
            stream.close()
        if 200 <= status < 400:
            return EgressOutcome("connected", f"connected (HTTP {status})")
        if status in (403, 407):
            return EgressOutcome("denied", f"denied by proxy (HTTP {status} {reason})".rstrip())
        return EgressOutcome("proxy error",
                             f"proxy could not reach it (HTTP {status} {reason})".rstrip())
