"""One DNS query over TCP through a Stream (RFC 1035 4.2.2 length-prefixed framing).

dnspython builds and parses the messages; we do the framing ourselves because dnspython's TCP
helpers want a real socket (they poll its file descriptor), and a tunnel channel is not one.
"""

from __future__ import annotations

import struct
import time

import dns.message
import dns.rdatatype
import dns.reversename

from pytest_drcheck.net.streams import recv_exact
from pytest_drcheck.targets.base import Stream


def make_query(name: str, record_type: str) -> dns.message.Message:
    if record_type == "PTR" and not name.endswith(".arpa") and not name.endswith(".arpa."):
        qname = dns.reversename.from_address(name)
        return dns.message.make_query(qname, dns.rdatatype.PTR)
    return dns.message.make_query(name, dns.rdatatype.from_text(record_type))


def query_over_stream(stream: Stream, name: str, record_type: str,
                      timeout: float) -> dns.message.Message:
    deadline = time.monotonic() + timeout
    query = make_query(name, record_type)
    wire = query.to_wire()
    stream.settimeout(timeout)
    stream.sendall(struct.pack("!H", len(wire)) + wire)
    (length,) = struct.unpack("!H", recv_exact(stream, 2, deadline))
    response = dns.message.from_wire(recv_exact(stream, length, deadline))
    if response.id != query.id:
        raise ValueError("DNS answer does not match the query id")
    return response


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
