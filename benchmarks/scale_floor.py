"""The bare-paramiko floor of the scale benchmark: per host, connect (host key checked against
known_hosts parsed once), one exec of the commands the suite needs, and the same streams
(DNS over TCP to the on-prem server, the open and the closed port, LDAPS with a simple bind),
no framework. Prints one JSON line: hosts, failures.

Usage: python scale_floor.py HOSTS.json  (run by scale.py)
"""

from __future__ import annotations

import json
import socket
import ssl
import struct
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import paramiko
from scale_inventory import BIND_DN, CA, KEY, KNOWN_HOSTS, LDAP_NAME, PASSWORD, records
from scale_site import CLOSED_PORT, DNS_ADDR, LDAP_ADDR

COMMAND = "; ".join([
    *(f"getent ahostsv4 {name} | head -1" for name, _ in records()),
    "ip -j addr show", "ip -j route show", "cat /etc/resolv.conf",
    "pgrep -x chronyd", "dpkg-query -W -f '${Version}' chrony",
    "chronyc -n -c tracking", "chronyc -n -c sources", "date +%s.%N",
])


def _dns_query(name: str, ident: int) -> bytes:
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.split("."))
    body = struct.pack(">HHHHHH", ident, 0x0100, 1, 0, 0, 0) + labels + b"\0" + \
        struct.pack(">HH", 1, 1)
    return struct.pack(">H", len(body)) + body


def _read(chan: paramiko.Channel, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = chan.recv(count - len(data))
        if not chunk:
            raise EOFError("stream closed")
        data += chunk
    return data


def _ber(tag: int, body: bytes) -> bytes:
    size = len(body)
    head = bytes([size]) if size < 128 else bytes([0x81, size]) if size < 256 else \
        bytes([0x82, size >> 8, size & 0xFF])
    return bytes([tag]) + head + body


def _bind_request(dn: str, password: str) -> bytes:
    bind = _ber(0x60, _ber(0x02, b"\x03") + _ber(0x04, dn.encode()) +
                _ber(0x80, password.encode()))
    return _ber(0x30, _ber(0x02, b"\x01") + bind)


def _ldaps_bind(chan: paramiko.Channel, context: ssl.SSLContext, password: str) -> None:
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname=LDAP_NAME)

    def pump(call: object) -> bytes:
        while True:
            try:
                result = call()  # type: ignore[operator]
                if outgoing.pending:
                    chan.sendall(outgoing.read())
                return result if isinstance(result, bytes) else b""
            except ssl.SSLWantReadError:
                if outgoing.pending:
                    chan.sendall(outgoing.read())
                chunk = chan.recv(65536)
                if not chunk:
                    raise EOFError("TLS stream closed") from None
                incoming.write(chunk)

    pump(tls.do_handshake)
    pump(lambda: tls.write(_bind_request(BIND_DN, password)))
    answer = pump(lambda: tls.read(65536))
    if b"\x0a\x01\x00" not in answer:  # resultCode success
        raise RuntimeError(f"bind failed: {answer!r}")


def check_host(address: str, connect: str, keys: paramiko.HostKeys, pkey: paramiko.PKey,
               context: ssl.SSLContext, password: str) -> None:
    # ``connect`` is the delaying relay in front of the instance, when there is one.
    sock = socket.create_connection((connect, 22), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    transport = paramiko.Transport(sock)
    try:
        transport.start_client(timeout=30)
        known = keys.lookup(address)
        key = transport.get_remote_server_key()
        if known is None or known.get(key.get_name()) != key:
            raise RuntimeError(f"{address}: host key mismatch")
        transport.auth_publickey("root", pkey)
        session = transport.open_session(timeout=30)
        session.exec_command(COMMAND)
        streams = []
        # The streams open alongside the exec, as they would in a concurrent drill.
        dns = transport.open_channel("direct-tcpip", (DNS_ADDR, 53), ("127.0.0.1", 0), timeout=30)
        for ident, (name, _) in enumerate(records(), 1):
            dns.sendall(_dns_query(name, ident))
            size = struct.unpack(">H", _read(dns, 2))[0]
            _read(dns, size)
        streams.append(dns)
        streams.append(transport.open_channel("direct-tcpip", (LDAP_ADDR, 389),
                                              ("127.0.0.1", 0), timeout=30))
        try:
            transport.open_channel("direct-tcpip", (LDAP_ADDR, CLOSED_PORT), ("127.0.0.1", 0),
                                   timeout=30)
            raise RuntimeError("closed port accepted")
        except paramiko.ChannelException:
            pass
        ldaps = transport.open_channel("direct-tcpip", (LDAP_ADDR, 636), ("127.0.0.1", 0),
                                       timeout=30)
        _ldaps_bind(ldaps, context, password)
        streams.append(ldaps)
        while not session.exit_status_ready() or session.recv_ready():
            if not session.recv(65536) and session.exit_status_ready():
                break
        session.recv_exit_status()
        for stream in streams:
            stream.close()
    finally:
        transport.close()


def main() -> None:
    hosts = json.loads(Path(sys.argv[1]).read_text())
    keys = paramiko.HostKeys(str(KNOWN_HOSTS))  # parsed once for the run
    pkey = paramiko.Ed25519Key.from_private_key_file(str(KEY))
    context = ssl.create_default_context(cafile=str(CA))
    password = PASSWORD.read_text().strip()
    failures = []
    with ThreadPoolExecutor(max_workers=min(len(hosts), 128)) as pool:
        futures = {h["address"]: pool.submit(check_host, h["address"], h["connect"], keys, pkey,
                                             context, password) for h in hosts}
        for address, future in futures.items():
            try:
                future.result()
            except Exception as exc:  # counted and reported
                failures.append(f"{address}: {type(exc).__name__}: {exc}")
    print(json.dumps({"hosts": len(hosts), "failures": failures[:5],
                      "failed": len(failures)}))


if __name__ == "__main__":
    main()
