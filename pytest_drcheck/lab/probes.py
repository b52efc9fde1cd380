"""Readiness probes over real sockets, always aimed at an explicit lab address."""

from __future__ import annotations

import socket

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype


def tcp_banner(address: str, port: int, timeout: float) -> str | None:
    """The first line the server sends, or None if it does not accept or say anything."""
    try:
        with socket.create_connection((address, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            data = sock.recv(256)
    except OSError:
        return None
    return data.decode("ascii", "replace").splitlines()[0] if data else None


def dns_answers(server: str, name: str, record_type: str, timeout: float) -> list[str] | None:
    """Answers of ``record_type`` for ``name`` from ``server`` (UDP); None when it does not
    answer. Asks the server directly: the machine's resolver knows nothing of the lab."""
    query = dns.message.make_query(name, dns.rdatatype.from_text(record_type))
    try:
        response = dns.query.udp(query, server, timeout=timeout)
    except (dns.exception.DNSException, OSError):
        return None
    if response.rcode() != dns.rcode.NOERROR:
        return []
    return [rdata.to_text() for rrset in response.answer for rdata in rrset
            if rrset.rdtype == dns.rdatatype.from_text(record_type)]
