"""A small NTP server whose clock is wrong by a fixed offset: the lab's skewed time source.

Standalone on purpose (standard library only): the lab runs it with the system's python3 by
file path inside a lab host, where this package need not be importable. It answers client
requests (mode 3) the way a stratum-2 server would, with every timestamp shifted by
``--offset`` seconds, so a real chronyd that follows it believes its clock is that far off.
"""

from __future__ import annotations

import argparse
import signal
import socket
import struct
import sys
import time

NTP_UNIX_DELTA = 2208988800
STRATUM = 2


def to_ntp(seconds: float) -> int:
    whole = int(seconds // 1)
    fraction = int((seconds - whole) * (1 << 32)) & 0xFFFFFFFF
    return ((whole + NTP_UNIX_DELTA) << 32) | fraction


def answer(request: bytes, offset: float, received: float) -> bytes | None:
    """The reply to one request, or None for anything that is not a client request."""
    if len(request) < 48:
        return None
    version, mode = (request[0] >> 3) & 0x7, request[0] & 0x7
    if mode != 3 or version not in (3, 4):
        return None
    now = time.time() + offset
    head = struct.pack("!BBBb", (version << 3) | 4, STRATUM, request[2], -20)
    return (head + struct.pack("!II", 0, 0x100) + b"SKEW"
            + struct.pack("!Q", to_ntp(now - 16))
            # Origin: the client's transmit time, echoed so it accepts the answer.
            + request[40:48]
            + struct.pack("!QQ", to_ntp(received + offset), to_ntp(now)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", required=True, help="address to answer on")
    parser.add_argument("--port", type=int, default=123)
    parser.add_argument("--offset", type=float, required=True, help="seconds (+ ahead)")
    args = parser.parse_args(argv)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((args.listen, args.port))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"skewed NTP on {args.listen}:{args.port}, {args.offset:+g} s", flush=True)
    while True:
        data, peer = sock.recvfrom(512)
        reply = answer(data, args.offset, time.time())
        if reply is not None:
            sock.sendto(reply, peer)


if __name__ == "__main__":
    sys.exit(main())
