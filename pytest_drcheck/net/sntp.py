"""One SNTP (RFC 4330) exchange: a server's clock offset against ours, with the round trip.

Used from the runner to turn "the instance against the runner's clock" into "the instance
against a named NTP server" when the inventory names one as the reference.
"""

from __future__ import annotations

import os
import socket
import struct
import time
from dataclasses import dataclass

# Seconds between the NTP era (1900) and the Unix epoch (1970).
NTP_UNIX_DELTA = 2208988800
_PACKET = 48


class SntpError(Exception):
    """No usable answer; the message is one line."""


@dataclass(frozen=True)
class SntpSample:
    # Server clock minus our clock, seconds.
    offset: float
    # Round trip minus the server's processing time, seconds.
    delay: float
    stratum: int


def to_ntp(seconds: float) -> int:
    whole = int(seconds // 1)
    fraction = int((seconds - whole) * (1 << 32)) & 0xFFFFFFFF
    return ((whole + NTP_UNIX_DELTA) << 32) | fraction


def from_ntp(value: int) -> float:
    return (value >> 32) - NTP_UNIX_DELTA + (value & 0xFFFFFFFF) / (1 << 32)


def request_packet(transmit: float) -> bytes:
    # LI 0, version 4, mode 3 (client); our transmit time doubles as the nonce to check.
    return struct.pack("!B47x", (4 << 3) | 3)[:40] + struct.pack("!Q", to_ntp(transmit))


def parse_reply(reply: bytes, sent: bytes, t1: float, t4: float) -> SntpSample:
    if len(reply) < _PACKET:
        raise SntpError(f"short NTP answer ({len(reply)} bytes)")
    first, stratum = reply[0], reply[1]
    if first & 0x7 != 4:
        raise SntpError("not an NTP server answer (mode is not 4)")
    if first >> 6 == 3 or stratum == 0:
        raise SntpError("the NTP server says it is not synchronised (kiss-o'-death or "
                        "leap alarm)")
    if reply[24:32] != sent[40:48]:
        raise SntpError("the NTP answer does not match our request")
    t2 = from_ntp(struct.unpack("!Q", reply[32:40])[0])
    t3 = from_ntp(struct.unpack("!Q", reply[40:48])[0])
    return SntpSample(((t2 - t1) + (t3 - t4)) / 2, (t4 - t1) - (t3 - t2), stratum)


def query(host: str, port: int = 123, timeout: float = 2.0) -> SntpSample:
    """One exchange with host:port over UDP from this machine."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except socket.gaierror as exc:
        raise SntpError(f"cannot resolve {host}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.settimeout(timeout)
        # Random lowest 16 bits of the transmit time (15 us): a stale or forged answer cannot
        # echo it back, and our own time is still exact to the bit we sent.
        stamp = to_ntp(time.time()) ^ int.from_bytes(os.urandom(2), "big")
        t1 = from_ntp(stamp)
        sent = request_packet(t1)[:40] + struct.pack("!Q", stamp)
        try:
            sock.connect(address)
            sock.send(sent)
            reply = sock.recv(512)
        except TimeoutError:
            raise SntpError(f"no NTP answer from {host}:{port} within {timeout:g} s") from None
        except OSError as exc:
            raise SntpError(f"NTP to {host}:{port}: {exc.strerror or exc}") from None
        t4 = time.time()
    return parse_reply(reply, sent, t1, t4)
