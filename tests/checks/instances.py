"""The runner standing in for an instance: recorded command outputs, real sockets on
127.0.0.1 (a DNS server over TCP, dnspython messages in RFC 1035 framing), and local targets
that dial them where an instance would dial its nameserver or fail as an instance would."""

from __future__ import annotations

import socket
import struct
from collections.abc import Mapping, Sequence
from typing import Any

import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset

from pytest_drcheck.checks.base import CheckContext, Subject
from pytest_drcheck.model import CouldNotObserve, Location, PlanItem, freeze
from pytest_drcheck.targets.base import CommandResult, Stream, StreamError
from pytest_drcheck.targets.local import LocalTarget
from tests.plugin.sockets import closed_port
from tests.sockets import LoopbackServer, recv_exactly


class TcpDnsServer(LoopbackServer):
    """Answers from ``records`` {(name, type): [rdata text]}; a name with records of other
    types only is NOERROR without data; ``rcodes`` {name: rcode} forces an rcode (SERVFAIL);
    anything else is NXDOMAIN. ``silent``: accepts and never answers; ``closing``: closes
    the connection after the query, without an answer."""

    def __init__(self, records: Mapping[tuple[str, str], Sequence[str]] | None = None,
                 rcodes: Mapping[str, str] | None = None, silent: bool = False,
                 closing: bool = False) -> None:
        self.records = {(n.lower().rstrip("."), t): list(v)
                        for (n, t), v in (records or {}).items()}
        self.rcodes = {n.lower().rstrip("."): r for n, r in (rcodes or {}).items()}
        self.silent = silent
        # Reads the query, then closes without answering (dnsmasq whose upstream is silent).
        self.closing = closing
        self.asked: list[tuple[str, str]] = []
        self._held: list[socket.socket] = []
        super().__init__()

    def serve(self, conn: socket.socket, index: int) -> None:
        self._held.append(conn)
        if not self.silent:
            super().serve(conn, index)

    def converse(self, conn: socket.socket, index: int) -> None:
        # Several queries per connection, answered in order, as real servers do (RFC 7766).
        while True:
            (length,) = struct.unpack("!H", recv_exactly(conn, 2))
            query = dns.message.from_wire(recv_exactly(conn, length))
            question = query.question[0]
            name = question.name.to_text().lower().rstrip(".")
            rtype = dns.rdatatype.to_text(question.rdtype)
            self.asked.append((name, rtype))
            if self.closing:
                conn.close()
                return
            response = dns.message.make_response(query)
            if name in self.rcodes:
                response.set_rcode(dns.rcode.from_text(self.rcodes[name]))
            elif (name, rtype) in self.records:
                response.answer.append(dns.rrset.from_text_list(
                    question.name, 60, "IN", rtype, self.records[(name, rtype)]))
            elif not any(n == name for n, _ in self.records):
                response.set_rcode(dns.rcode.NXDOMAIN)
            wire = response.to_wire()
            conn.sendall(struct.pack("!H", len(wire)) + wire)

    def close(self) -> None:
        super().close()
        for conn in self._held:
            conn.close()


class NameserverTarget(LocalTarget):
    """The runner as the instance, with ``nameservers`` {address: local port}: a connection to
    port 53 of such an address reaches that local port (a real TCP connection); other
    addresses' port 53 is a closed port (refused)."""

    def __init__(self, nameservers: Mapping[str, int]) -> None:
        super().__init__("app01")
        self.nameservers = dict(nameservers)
        self.closed = closed_port()
        self.dialled: list[tuple[str, int]] = []

    def open_stream(self, host: str, port: int, timeout: float) -> Stream:
        self.dialled.append((host, port))
        if port == 53:
            return super().open_stream("127.0.0.1", self.nameservers.get(host, self.closed),
                                       timeout)
        return super().open_stream(host, port, timeout)


class NameNotResolved(StreamError, CouldNotObserve):
    """What a target raises for a name that does not resolve on the instance (the targets'
    own class may differ; it is a CouldNotObserve either way)."""


class InstanceTarget(LocalTarget):
    """The runner as the instance; names under .corp.example do not resolve on it, and
    ``forbidden`` ports are refused by its sshd (no forwarding)."""

    def __init__(self, forbidden: tuple[int, ...] = (9,)) -> None:
        super().__init__("app01")
        self.forbidden = forbidden

    def open_stream(self, host: str, port: int, timeout: float) -> Stream:
        if host.endswith(".corp.example"):
            raise NameNotResolved("error", f"{host} does not resolve on app01 (getent hosts "
                                           f"{host}: not found)")
        if port in self.forbidden:
            raise StreamError("error", f"{host}:{port} from app01: the host's sshd refused "
                                       "the channel (administratively prohibited)")
        return super().open_stream(host, port, timeout)


def item_of(check: Any, entry: Mapping[str, Any], site: Mapping[str, Any] | None = None,
            index: int = 0, timeout: float = 5.0) -> PlanItem:
    subject: Subject = check.expand(entry, site or {})[index]
    return PlanItem("app01", check.type_name, subject.name, freeze(subject.params),
                    Location("site.yaml", 1, "hosts.app01.checks"), timeout, subject.requires)


def ran(command: str, status: int = 0, stdout: str = "", stderr: str = "",
        timed_out: bool = False) -> CommandResult:
    return CommandResult(command, 124 if timed_out else status, stdout, stderr, timed_out)


def context(item: PlanItem, target: Any, outputs: Sequence[CommandResult] = (),
            timeout: float | None = None) -> CheckContext:
    def no_other_host(name: str) -> Any:
        raise AssertionError(f"no other host in this test ({name})")

    return CheckContext(item, target, list(outputs), timeout or item.timeout, no_other_host,
                        10.0)
