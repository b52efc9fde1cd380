"""backup: backups keep working from the DR site, in both directions.

- ``agent``: the backup agent runs on the instance (systemd unit or process table);
- ``server``: the backup server's endpoint accepts a TCP connection made by the instance (for
  Bacula, the storage daemon the file daemon sends data to);
- ``reverse``: the instance's agent port accepts a TCP connection made BY THE BACKUP SERVER,
  observed through the server's own target: most backup products connect server -> client,
  and a DR firewall that only opened the outbound direction breaks every backup silently;
- ``hello`` (optional, where cheap): over that reverse connection, the agent answers a
  protocol hello as it would answer the server (Bacula: a Director hello gets a cram-md5
  challenge). Skipped when the reverse connection itself fails.
"""

from __future__ import annotations

import contextlib
import re
import shlex
import struct
import time
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from pytest_drcheck.checks.agents import (
    DEFAULT_CONNECT_TIMEOUT,
    DURATION,
    ENDPOINT,
    describe_connect,
    running_commands,
    running_observation,
)
from pytest_drcheck.checks.base import (
    Check,
    CheckContext,
    ExpansionError,
    Subject,
    site_service,
)
from pytest_drcheck.checks.reach import parse_endpoint
from pytest_drcheck.durations import parse_duration
from pytest_drcheck.inventory import vocabulary
from pytest_drcheck.model import Observation, PlanItem
from pytest_drcheck.net.streams import StreamTimeout, recv_exact
from pytest_drcheck.targets.base import CommandResult, Stream, StreamError, Target, TargetError

_NAME = vocabulary.NAME_PATTERN
PLACEHOLDERS = ("{host}", "{address}")
# Bacula's network framing: a signed 32-bit big-endian length, then that many bytes; negative
# lengths are signals. BNET_TERMINATE ends a conversation politely.
BNET_TERMINATE = -4
MAX_BACULA_MESSAGE = 4096

SYSTEM_SCHEMA: dict[str, Any] = {
    "type": "object", "additionalProperties": False, "required": ["server", "agent"],
    "properties": {
        "description": {"type": "string"},
        "server": {
            "type": "object", "additionalProperties": False, "required": ["host"],
            "properties": {
                "host": {"type": "string", "pattern": _NAME,
                         "x-expect": "the inventory host of the backup server (the reverse "
                                     "probe runs through its connection)"},
                "endpoint": ENDPOINT,
            },
        },
        "agent": {
            "type": "object", "additionalProperties": False, "required": ["port"],
            "properties": {
                "service": {"type": "string", "minLength": 1},
                "process": {"type": "string", "minLength": 1},
                "port": vocabulary.PORT,
                "client": {"type": "string", "minLength": 1,
                           "x-expect": "the address the server uses for the instance; may use "
                                       "{host} (inventory name) and {address} (the instance's "
                                       "own address toward the server)"},
                "probe": {
                    "type": "object", "additionalProperties": False,
                    "required": ["protocol", "director"],
                    "properties": {"protocol": {"enum": ["bacula"]},
                                   "director": {"type": "string", "minLength": 1}},
                },
            },
        },
        "connect_timeout": DURATION,
    },
}


def address_command(server: str) -> str:
    """The instance's source address on its route toward the server (what a server -> client
    connection reaches, absent NAT): resolve with the instance's resolver, ask the kernel."""
    name = shlex.quote(server)
    return (f"a=$(getent ahosts {name} | awk 'NR==1 {{print $1}}'); "
            f"[ -n \"$a\" ] || {{ echo \"cannot resolve \"{name}\" on the instance\" >&2; "
            f"exit 2; }}; ip -o route get \"$a\"")


def parse_route_source(text: str) -> str | None:
    """The ``src`` of ``ip -o route get`` output."""
    match = re.search(r"\bsrc\s+(\S+)", text)
    return match.group(1) if match else None


def bacula_hello(director: str) -> bytes:
    message = f"Hello Director {director} calling\n".encode()
    return struct.pack(">i", len(message)) + message


def read_bacula_message(stream: Stream, deadline: float) -> str:
    """One framed message (signals are reported as such)."""
    (length,) = struct.unpack(">i", recv_exact(stream, 4, deadline))
    if length < 0:
        return f"signal {length}"
    if length > MAX_BACULA_MESSAGE:
        raise ValueError(f"a {length}-byte message is not a Bacula hello answer")
    return recv_exact(stream, length, deadline).decode("utf-8", "replace").strip()


class BackupCheck(Check):
    type_name: ClassVar[str] = "backup"
    site_key: ClassVar[str | None] = "backup"
    default_timeout: ClassVar[float] = 10.0
    entry_schema: ClassVar[Mapping[str, Any]] = {
        "required": ["system"],
        "properties": {
            "system": {"type": "string", "minLength": 1,
                       "x-expect": "the name of a backup system in site.backup.systems"},
            "client": SYSTEM_SCHEMA["properties"]["agent"]["properties"]["client"],
            "connect_timeout": DURATION,
        },
    }
    site_schema: ClassVar[Mapping[str, Any] | None] = {
        "type": "object", "additionalProperties": False,
        "properties": {
            "systems": {"type": "object", "x-kind": "backup system",
                        "propertyNames": {"pattern": _NAME},
                        "additionalProperties": SYSTEM_SCHEMA},
        },
    }

    def site_host_references(self, section: Mapping[str, Any]
                             ) -> Sequence[tuple[tuple[str | int, ...], str]]:
        return [(("systems", name, "server", "host"), system["server"]["host"])
                for name, system in section.get("systems", {}).items()]

    def expand(self, entry: Mapping[str, Any], site: Mapping[str, Any]) -> list[Subject]:
        systems: Mapping[str, Any] = site.get("backup", {}).get("systems", {})
        name = entry["system"]
        system = site_service(systems, name, "backup system", "site.backup.systems", ".system")
        server, agent = system["server"], system["agent"]
        if "service" not in agent and "process" not in agent:
            raise ExpansionError(f"site.backup.systems.{name}.agent needs 'process' and/or "
                                 "'service' to tell whether the agent runs; add one",
                                 ".system", ("backup", "systems", name, "agent"))
        client = entry.get("client", agent.get("client", "{address}"))
        unknown = set(re.findall(r"\{[^}]*\}", client)) - set(PLACEHOLDERS)
        if unknown:
            raise ExpansionError(f"client '{client}' uses {', '.join(sorted(unknown))}; only "
                                 f"{' and '.join(PLACEHOLDERS)} are filled in", ".client",
                                 () if "client" in entry else
                                 ("backup", "systems", name, "agent", "client"))
        endpoint = None
        if "endpoint" in server:
            endpoint = parse_endpoint(server["endpoint"])
            if endpoint is None:
                raise ExpansionError(f"site.backup.systems.{name}.server.endpoint has no valid "
                                     "port; write host:port (1-65535)", ".system",
                                     ("backup", "systems", name, "server", "endpoint"))
        if "{address}" in client and endpoint is None:
            raise ExpansionError(f"client '{client}' uses {{address}} (the instance's address "
                                 f"toward the server), which needs site.backup.systems.{name}"
                                 ".server.endpoint; add it or set client to the address the "
                                 "server uses, e.g. '{host}.corp.example'", ".client")
        try:
            connect_timeout = parse_duration(entry.get(
                "connect_timeout", system.get("connect_timeout", DEFAULT_CONNECT_TIMEOUT)))
        except ValueError as exc:
            raise ExpansionError(str(exc), ".connect_timeout") from None
        common = {"system": name, "server_host": server["host"], "endpoint": endpoint,
                  "service": agent.get("service"), "process": agent.get("process"),
                  "port": agent["port"], "client": client, "probe": agent.get("probe"),
                  "connect_timeout": connect_timeout}
        subjects = [Subject("agent", {**common, "property": "agent"})]
        if endpoint is not None:
            subjects.append(Subject("server", {**common, "property": "server"}))
        subjects.append(Subject("reverse", {**common, "property": "reverse"}))
        if agent.get("probe"):
            subjects.append(Subject("hello", {**common, "property": "hello"}))
        return subjects

    def commands(self, item: PlanItem) -> Sequence[str]:
        params = item.params
        if params["property"] == "agent":
            return running_commands(params["service"])
        if params["property"] in ("reverse", "hello") and "{address}" in params["client"]:
            return (address_command(params["endpoint"][0]),)
        return ()

    def evaluate(self, ctx: CheckContext) -> Observation:
        prop = ctx.params["property"]
        if prop == "agent":
            return self._agent(ctx)
        if prop == "server":
            return self._server(ctx)
        return self._reverse(ctx, hello=prop == "hello")

    @staticmethod
    def _agent(ctx: CheckContext) -> Observation:
        params = ctx.params
        return running_observation(
            f"backup agent {params['service'] or params['process']} running",
            params["service"], params["process"], ctx.outputs)

    @staticmethod
    def _server(ctx: CheckContext) -> Observation:
        params = ctx.params
        host, port = params["endpoint"]
        connect_timeout = min(params["connect_timeout"], ctx.timeout)
        started = time.monotonic()
        try:
            ctx.target.open_stream(host, port, connect_timeout).close()
            outcome = "connected"
        except StreamError as exc:
            outcome = exc.outcome if exc.outcome != "error" else f"error: {exc}"
        observed = describe_connect(outcome, time.monotonic() - started, connect_timeout)
        expected = f"{ctx.item.host} -> {params['server_host']} {host}:{port} open"
        if outcome == "connected":
            return Observation.passed(expected, f"{ctx.item.host} -> {host}:{port} {observed}",
                                      outcome=outcome)
        return Observation.failed(expected, observed, outcome=outcome)

    @staticmethod
    def _client(ctx: CheckContext) -> tuple[str | None, str]:
        """(the address the server connects to, or None with the reason)."""
        params = ctx.params
        client = params["client"].replace("{host}", ctx.item.host)
        if "{address}" in client:
            result: CommandResult = ctx.outputs[0]
            source = parse_route_source(result.stdout) if result.ok else None
            if source is None:
                said = (result.stderr or result.stdout).strip().splitlines()
                why = said[-1] if said else f"exit status {result.exit_status}"
                return None, (f"could not tell the instance's address toward "
                              f"{params['endpoint'][0]} (ip route get): {why}; set client:")
            client = client.replace("{address}", source)
        return client, ""

    def _reverse(self, ctx: CheckContext, hello: bool) -> Observation:
        params = ctx.params
        server = params["server_host"]
        client, why = self._client(ctx)
        port = params["port"]
        expected = f"{server} -> {client or '?'}:{port} open"
        if hello:
            expected = (f"{params['probe']['protocol']} agent answers {server}'s hello on "
                        f"{client or '?'}:{port}")
        if client is None:
            return Observation.failed(expected, "unknown client address",
                                      f"expected {expected}, {why}")
        try:
            server_target: Target = ctx.target_of(server)
        except KeyError:
            return Observation.failed(expected, "no server target", (
                f"expected {expected}, but server.host '{server}' is not a host of this "
                "inventory; add the backup server under hosts: (the reverse probe runs "
                "through its connection)"))
        connect_timeout = min(params["connect_timeout"], ctx.timeout)
        started = time.monotonic()
        try:
            server_target.connect()
            stream = server_target.open_stream(client, port, connect_timeout)
        except TargetError as exc:
            return Observation.failed(expected, f"{server} unusable",
                                      f"expected {expected}, cannot use {server} to probe: "
                                      f"{exc}")
        except StreamError as exc:
            outcome = exc.outcome if exc.outcome != "error" else f"error: {exc}"
            observed = describe_connect(outcome, 0.0, connect_timeout)
            if hello:
                return Observation.skipped(expected, f"not probed: {server} -> {client}:"
                                                     f"{port} {observed} (see reverse)")
            return Observation.failed(expected, observed, outcome=outcome, observed_from=server)
        seconds = time.monotonic() - started
        if not hello:
            stream.close()
            observed = describe_connect("connected", seconds, connect_timeout)
            return Observation.passed(expected, f"{server} -> {client}:{port} {observed}",
                                      outcome="connected", observed_from=server)
        return self._bacula_hello(stream, params["probe"]["director"], expected,
                                  time.monotonic() + max(0.5, min(ctx.timeout,
                                                                  2 * connect_timeout)))

    @staticmethod
    def _bacula_hello(stream: Stream, director: str, expected: str,
                      deadline: float) -> Observation:
        try:
            stream.sendall(bacula_hello(director))
            answer = read_bacula_message(stream, deadline)
            # The agent may already have hung up; the answer is what counts.
            with contextlib.suppress(OSError):
                stream.sendall(struct.pack(">i", BNET_TERMINATE))
        except StreamTimeout:
            return Observation.failed(expected, "no answer", f"expected {expected}, observed "
                                      "connected but no answer to the Director hello")
        except (EOFError, OSError, ValueError) as exc:
            return Observation.failed(expected, f"no hello answer: {exc}",
                                      f"expected {expected}, observed no hello answer: {exc}")
        finally:
            stream.close()
        shown = " ".join(answer.split())[:160]
        if answer.startswith("auth cram-md5"):
            who = re.search(r"@([^>]+)>", answer)
            name = f" {who.group(1)}" if who else ""
            return Observation.passed(expected, f"bacula-fd{name} answered Director {director} "
                                                "with a cram-md5 challenge", answer=shown)
        return Observation.failed(expected, f"answered '{shown}'", (
            f"expected {expected}, observed '{shown}'"
            + (f" (the agent does not know Director {director})" if "rejected" in shown
               else "")), answer=shown)

