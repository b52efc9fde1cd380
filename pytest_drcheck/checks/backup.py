"""backup: backups keep working from the DR site, in both directions.

- ``agent``: the backup agent runs on the instance (systemd unit or process table,
  ``checks.running``, shared with the agent check);
- ``server``: the backup server's endpoint accepts a TCP connection made by the instance (for
  Bacula, the storage daemon the file daemon sends data to);
- ``reverse``: the instance's agent port accepts a TCP connection made BY THE BACKUP SERVER,
  observed through the server's own target: most backup products connect server -> client,
  and a DR firewall that only opened the outbound direction breaks every backup silently.
  Requires ``agent``: a port nobody listens on would only fail again for the same cause;
- ``hello`` (optional, where cheap): over that reverse connection, the agent answers a
  protocol hello as it would answer the server (Bacula: a Director hello gets a cram-md5
  challenge). Requires ``agent`` and ``reverse``.

``server`` and ``reverse`` observe connections: refused, timed out and unreachable are their
findings. Could not observe (an error naming the cause): the instance's address toward the
server could not be read (``ip route get`` failed or timed out, the server's name does not
resolve on the instance), the backup server's own connection is unusable, sshd refused to open
the channel, the hello's connection could not be opened, a command timed out or is missing.
"""

from __future__ import annotations

import contextlib
import re
import shlex
import struct
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeAlias

from pytest_drcheck.checks.agents import DEFAULT_CONNECT_TIMEOUT, DURATION, ENDPOINT
from pytest_drcheck.checks.base import (
    Check,
    CheckContext,
    ExpansionError,
    Subject,
    site_service,
)
from pytest_drcheck.checks.running import (
    Running,
    judge_running,
    observe_running,
    running_commands,
)
from pytest_drcheck.checks.tcp_probe import Connection, connect, open_means, parse_endpoint
from pytest_drcheck.durations import parse_duration
from pytest_drcheck.inventory import vocabulary
from pytest_drcheck.model import CouldNotObserve, Observation, PlanItem
from pytest_drcheck.net.streams import StreamTimeout, recv_exact
from pytest_drcheck.targets.base import Stream, Target, TargetError

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


@dataclass(frozen=True)
class BackupParams:
    """One backup test's parameters (``expand`` output), typed."""

    prop: str
    system: str
    server_host: str
    endpoint: tuple[str, int] | None
    service: str | None
    process: str | None
    port: int
    client: str
    director: str | None
    connect_timeout: float

    @classmethod
    def of(cls, params: Mapping[str, Any]) -> BackupParams:
        endpoint = params["endpoint"]
        probe = params["probe"]
        return cls(params["property"], params["system"], params["server_host"],
                   (endpoint[0], int(endpoint[1])) if endpoint is not None else None,
                   params["service"], params["process"], int(params["port"]), params["client"],
                   probe["director"] if probe is not None else None,
                   float(params["connect_timeout"]))

    def client_of(self, host: str) -> str:
        """The client address as far as it is known without asking the instance."""
        return self.client.replace("{host}", host).replace("{address}", host)


@dataclass(frozen=True)
class Reverse:
    """The backup server's connection to the agent on ``client``."""

    client: str
    connection: Connection


@dataclass(frozen=True)
class Hello:
    """What the agent answered the Director hello on ``client`` (``answer`` None: nothing,
    ``trouble`` says why)."""

    client: str
    answer: str | None
    trouble: str = ""


BackupValue: TypeAlias = Running | Connection | Reverse | Hello


class BackupCheck(Check[BackupValue]):
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
        # Through a port nobody listens on, the server could only fail for the same cause.
        subjects.append(Subject("reverse", {**common, "property": "reverse"},
                                requires=("backup[agent]",)))
        if agent.get("probe"):
            subjects.append(Subject("hello", {**common, "property": "hello"},
                                    requires=("backup[agent]", "backup[reverse]")))
        return subjects

    def commands(self, item: PlanItem) -> Sequence[str]:
        params = BackupParams.of(item.params)
        if params.prop == "agent":
            return running_commands(params.service, item.platform, params.process)
        if (params.prop in ("reverse", "hello") and "{address}" in params.client
                and params.endpoint is not None):
            if item.platform == "windows":
                from pytest_drcheck.checks.windows.backup import address_command as windows

                return (windows(params.endpoint[0]),)
            return (address_command(params.endpoint[0]),)
        return ()

    def expected(self, item: PlanItem) -> str:
        params = BackupParams.of(item.params)
        return self._expected(params, item.host, params.client_of(item.host))

    @staticmethod
    def _expected(params: BackupParams, host: str, client: str) -> str:
        if params.prop == "agent":
            return f"backup agent {params.service or params.process} running"
        if params.prop == "server" and params.endpoint is not None:
            return (f"{host} -> {params.server_host} {params.endpoint[0]}:"
                    f"{params.endpoint[1]} open")
        if params.prop == "hello":
            return (f"bacula agent answers {params.server_host}'s hello on "
                    f"{client}:{params.port}")
        return f"{params.server_host} -> {client}:{params.port} open"

    def observe(self, ctx: CheckContext) -> BackupValue:
        params = BackupParams.of(ctx.params)
        connect_timeout = min(params.connect_timeout, ctx.timeout)
        if params.prop == "agent":
            return observe_running(ctx, params.service, params.process)
        if params.prop == "server" and params.endpoint is not None:
            host, port = params.endpoint
            return connect(ctx.target, host, port, connect_timeout)
        client = self._client(ctx, params)
        server = self._server_target(ctx, params.server_host)
        try:
            server.connect()
            if params.prop == "reverse":
                return Reverse(client, connect(server, client, params.port, connect_timeout))
            stream = open_means(server, client, params.port, connect_timeout,
                                f"{params.server_host}'s Director hello")
        except TargetError as exc:
            raise CouldNotObserve(f"cannot use {params.server_host} to probe: {exc}"
                                  ) from None
        deadline = time.monotonic() + max(0.5, min(ctx.timeout, 2 * connect_timeout))
        return self._bacula_hello(stream, client, params.director or "", deadline)

    def judge(self, item: PlanItem, value: BackupValue) -> Observation:
        params = BackupParams.of(item.params)
        if isinstance(value, Running):
            return judge_running(self.expected(item), value)
        if isinstance(value, Connection):
            expected = self.expected(item)
            if value.connected and params.endpoint is not None:
                host, port = params.endpoint
                return Observation.passed(expected, f"{item.host} -> {host}:{port} "
                                                    f"{value.observed}", outcome=value.outcome)
            return Observation.failed(expected, value.observed, outcome=value.outcome)
        expected = self._expected(params, item.host, value.client)
        if isinstance(value, Reverse):
            connection = value.connection
            observed = connection.observed
            if connection.connected:
                observed = f"{params.server_host} -> {value.client}:{params.port} {observed}"
                return Observation.passed(expected, observed, outcome=connection.outcome,
                                          observed_from=params.server_host)
            return Observation.failed(expected, observed, outcome=connection.outcome,
                                      observed_from=params.server_host)
        return self._judge_hello(expected, params.director or "", value)

    @staticmethod
    def _client(ctx: CheckContext, params: BackupParams) -> str:
        """The address the server connects to: ``client`` with {host} and {address} filled
        ({address}: the instance's source address on its route toward the server)."""
        client = params.client.replace("{host}", ctx.item.host)
        if "{address}" not in client or params.endpoint is None:
            return client
        result = ctx.output(0)
        source = parse_route_source(result.stdout)
        if source is None:
            said = " ".join(result.stdout.split())[:120] or "no output"
            raise CouldNotObserve(f"could not tell {ctx.item.host}'s address toward "
                                  f"{params.endpoint[0]} from `ip route get` ({said}); set "
                                  "client:")
        return client.replace("{address}", source)

    @staticmethod
    def _server_target(ctx: CheckContext, server: str) -> Target:
        try:
            return ctx.target_of(server)
        except KeyError:
            raise CouldNotObserve(f"server.host '{server}' is not a host of this inventory; "
                                  "add the backup server under hosts: (the reverse probe runs "
                                  "through its connection)") from None

    @staticmethod
    def _bacula_hello(stream: Stream, client: str, director: str, deadline: float) -> Hello:
        try:
            stream.sendall(bacula_hello(director))
            answer = read_bacula_message(stream, deadline)
            # The agent may already have hung up; the answer is what counts.
            with contextlib.suppress(OSError):
                stream.sendall(struct.pack(">i", BNET_TERMINATE))
        except StreamTimeout:
            return Hello(client, None, "connected but no answer to the Director hello")
        except (ConnectionResetError, BrokenPipeError):
            # The agent hung up while the hello was in flight: a close, seen as a reset.
            return Hello(client, None, "no hello answer: the agent reset the connection")
        except (EOFError, OSError, ValueError) as exc:
            return Hello(client, None, f"no hello answer: {exc}")
        finally:
            stream.close()
        return Hello(client, " ".join(answer.split())[:160])

    @staticmethod
    def _judge_hello(expected: str, director: str, hello: Hello) -> Observation:
        if hello.answer is None:
            return Observation.failed(expected, hello.trouble,
                                      f"expected {expected}, observed {hello.trouble}")
        shown = hello.answer
        if shown.startswith("auth cram-md5"):
            who = re.search(r"@([^>]+)>", shown)
            name = f" {who.group(1)}" if who else ""
            return Observation.passed(expected, f"bacula-fd{name} answered Director {director} "
                                                "with a cram-md5 challenge", answer=shown)
        return Observation.failed(expected, f"answered '{shown}'", (
            f"expected {expected}, observed '{shown}'"
            + (f" (the agent does not know Director {director})" if "rejected" in shown
               else "")), answer=shown)
