"""One DNS query over TCP through a Stream (RFC 1035 4.2.2 length-prefixed framing).

dnspython builds and parses the messages; we do the framing ourselves because dnspython's TCP
helpers want a real socket (they poll its file descriptor), and a tunnel channel is not one.
"""

from __future__ import annotations

import struct
import time

import dns.exception
import dns.message
import dns.rcode
import dns.rdatatype
import dns.reversename

from pytest_drcheck.durations import format_duration
from pytest_drcheck.net import dnsshared
from pytest_drcheck.net.streams import StreamTimeout, recv_exact
from pytest_drcheck.targets.base import Stream, StreamError, Target

# The answers a resolver gives about a name; any other rcode (SERVFAIL, REFUSED...) says the
# resolver could not answer, not what the name is.
ANSWER_RCODES = ("NOERROR", "NXDOMAIN")


class NoAnswer(Exception):
    """A nameserver gave no DNS answer; the message says why, after the server's name
    ("refused the TCP connection", "did not answer within 3 s", ...)."""


def make_query(name: str, record_type: str) -> dns.message.Message:
    if record_type == "PTR" and not name.endswith(".arpa") and not name.endswith(".arpa."):
        qname = dns.reversename.from_address(name)
        return dns.message.make_query(qname, dns.rdatatype.PTR)
    return dns.message.make_query(name, dns.rdatatype.from_text(record_type))


def query_over_stream(stream: Stream, name: str, record_type: str,
                      timeout: float) -> dns.message.Message:
    return exchange(stream, make_query(name, record_type), timeout)


def exchange(stream: Stream, query: dns.message.Message, timeout: float
             ) -> dns.message.Message:
    """The answer to ``query``, the only one on ``stream``."""
    deadline = time.monotonic() + timeout
    wire = query.to_wire()
    stream.settimeout(timeout)
    stream.sendall(struct.pack("!H", len(wire)) + wire)
    (length,) = struct.unpack("!H", recv_exact(stream, 2, deadline))
    response = dns.message.from_wire(recv_exact(stream, length, deadline))
    if response.id != query.id:
        raise ValueError("DNS answer does not match the query id")
    return response


_STREAM_CAUSES = {"refused": "refused the TCP connection",
                  "unreachable": "is unreachable (no route)"}


def ask(target: Target, server: tuple[str, int], name: str, record_type: str,
        timeout: float) -> dns.message.Message:
    """The answer of the nameserver at ``server`` to one query, asked over TCP from the
    target within ``timeout`` seconds; NoAnswer when it gives none.

    The target's queries to one nameserver share one stream (net.dnsshared), and a query the
    shared stream cannot carry is asked alone on a stream of its own, in what is left of
    ``timeout``; every message names the whole ``timeout``.
    """
    deadline = time.monotonic() + timeout
    query = make_query(name, record_type)
    pool = dnsshared.pool_of(target, server)
    if pool.sharing:
        try:
            shared = pool.stream(deadline, lambda left: target.open_stream(
                server[0], server[1], left))
        except StreamError as exc:
            raise _not_connected(exc, timeout) from None
        if shared is None:  # another query was opening the stream for the whole budget
            raise NoAnswer(f"did not accept a TCP connection within "
                           f"{format_duration(timeout)}")
        try:
            return shared.ask(query, deadline)
        except StreamTimeout:
            raise NoAnswer(f"did not answer within {format_duration(timeout)}") from None
        except dnsshared.Broken as exc:
            raise NoAnswer(str(exc)) from None
        except dnsshared.FallBack:
            pass  # asked alone below
    return _ask_alone(target, server, query, deadline, timeout)


def _not_connected(exc: StreamError, timeout: float) -> NoAnswer:
    if exc.outcome == "timed out":
        return NoAnswer(f"did not accept a TCP connection within {format_duration(timeout)}")
    return NoAnswer(_STREAM_CAUSES.get(exc.outcome, f"could not be asked: {exc}"))


def _ask_alone(target: Target, server: tuple[str, int], query: dns.message.Message,
               deadline: float, timeout: float) -> dns.message.Message:
    """One query on a stream of its own until ``deadline``; messages name ``timeout``."""
    try:
        stream = target.open_stream(server[0], server[1],
                                    max(0.05, deadline - time.monotonic()))
    except StreamError as exc:
        raise _not_connected(exc, timeout) from None
    try:
        return exchange(stream, query, max(0.05, deadline - time.monotonic()))
    except StreamTimeout:
        raise NoAnswer(f"did not answer within {format_duration(timeout)}") from None
    except EOFError:
        # What dnsmasq does when its own upstream never answers a forwarded query.
        raise NoAnswer("closed the TCP connection without answering") from None
    except (OSError, ValueError, dns.exception.DNSException) as exc:
        raise NoAnswer(f"gave no usable answer: {exc}") from None
    finally:
        stream.close()


def rcode_of(response: dns.message.Message) -> str:
    return dns.rcode.to_text(response.rcode())


def answers(response: dns.message.Message, record_type: str) -> list[str]:
    """Answers of the asked type as comparable text: addresses, or names without the final dot,
    or 'priority weight port target' for SRV."""
    wanted = dns.rdatatype.from_text(record_type)
    values: list[str] = []
    for rrset in response.answer:
        if rrset.rdtype != wanted:
            continue
        for rdata in rrset:
            values.append(normalise(rdata.to_text()))
    return values


def normalise(value: str) -> str:
    """Case and final dot do not matter in DNS names; keep addresses as they are."""
    return " ".join(part.rstrip(".").lower() for part in str(value).split())
