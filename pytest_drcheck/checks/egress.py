"""egress: the site's internet egress policy, observed cell by cell from the instance.

Each cell is a destination x a path (a named proxy, or direct) x an expectation (allowed or
denied), and is reported as one of: connected (with the HTTP status through a proxy), denied by
the proxy (403...), refused, timed out, or a proxy error. Denied passes only when denial is
expected; "the proxy could not reach it" (5xx) is not a denial: the proxy let it through.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import urlsplit

from pytest_drcheck.checks.base import (
    Check,
    CheckContext,
    ExpansionError,
    Subject,
    site_service,
)
from pytest_drcheck.checks.reach import connect_timeout_of, parse_endpoint, probe
from pytest_drcheck.durations import format_duration
from pytest_drcheck.inventory import vocabulary
from pytest_drcheck.model import Observation
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


class EgressCheck(Check):
    type_name: ClassVar[str] = "egress"
    site_key: ClassVar[str | None] = "egress"
    default_timeout: ClassVar[float] = 15.0
    # Only streams from the host, no command: cells can all run at once.
    light: ClassVar[bool] = True
    entry_schema: ClassVar[Mapping[str, Any]] = {
        "properties": {**_CELL, "site": {"const": True,
                                         "x-expect": "true (check the site's whole policy)"}},
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

    def evaluate(self, ctx: CheckContext) -> Observation:
        params = ctx.params
        connect_timeout = min(params["connect_timeout"], ctx.timeout)
        if params["proxy"] is None:
            outcome, observed = self._direct(ctx, connect_timeout)
        else:
            outcome, observed = self._proxied(ctx, connect_timeout)
        expected = f"{params['expect']} {'via ' + params['via'] if params['proxy'] else 'direct'}"
        allowed = outcome == "connected"
        denied = outcome in ("denied", "refused", "timed out", "unreachable")
        if (params["expect"] == "allowed" and allowed) or (
                params["expect"] == "denied" and denied):
            return Observation.passed(expected, observed, outcome=outcome)
        return Observation.failed(expected, observed,
                                  f"expected {expected}, observed {observed}", outcome=outcome)

    @staticmethod
    def _direct(ctx: CheckContext, connect_timeout: float) -> tuple[str, str]:
        outcome, _ = probe(ctx, ctx.params["host"], ctx.params["port"], connect_timeout)
        if outcome == "timed out":
            return outcome, f"timed out after {format_duration(connect_timeout)}"
        return outcome, outcome

    @staticmethod
    def _proxied(ctx: CheckContext, connect_timeout: float) -> tuple[str, str]:
        params = ctx.params
        proxy_host, proxy_port = params["proxy"]
        try:
            stream = ctx.target.open_stream(proxy_host, proxy_port, connect_timeout)
        except StreamError as exc:
            return "proxy " + exc.outcome, f"proxy {proxy_host}:{proxy_port} {exc.outcome}"
        deadline = time.monotonic() + max(0.5, ctx.timeout - connect_timeout)
        try:
            if params["url"]:
                stream.sendall(get_request(params["url"], params["host"]))
            else:
                stream.sendall(connect_request(params["host"], params["port"]))
            status, reason = read_status(stream, deadline)
        except StreamTimeout:
            return "proxy timed out", "no answer from the proxy"
        except (EOFError, OSError, ValueError) as exc:
            return "proxy error", f"proxy error: {exc}"
        finally:
            stream.close()
        if 200 <= status < 400:
            return "connected", f"connected (HTTP {status})"
        if status in (403, 407):
            return "denied", f"denied by proxy (HTTP {status} {reason})".rstrip()
        return "proxy error", f"proxy could not reach it (HTTP {status} {reason})".rstrip()
