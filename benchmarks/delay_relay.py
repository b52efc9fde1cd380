"""A delaying TCP relay: the scale benchmark's stand-in for ``tc netem``, which this kernel lacks
(LAB-NOTES: "latency, if a benchmark needs it, must be added in user space").

Each listening address forwards to one upstream address; every chunk is held for the one-way
delay before it is written on, in order, in both directions. TCP's own handshake is emulated
too: a connection to the relay completes at once (loopback), so the first bytes each way are
held until they would have arrived over a real link (client to server not before 1.5 round
trips, server to client not before 2), which is when a real connect() + accept() would let them
through. Without that, every SSH connection would be one round trip cheaper than a real one.

It runs as its own process, so its CPU is not the client's; the benchmark reads that CPU from
/proc and shows it beside the client's.

Usage: python delay_relay.py --delay-ms D --map MAP.json --ready FILE
MAP.json is a list of [listen_host, listen_port, upstream_host, upstream_port]. FILE is written
once every listener is bound. SIGTERM stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
from collections import deque
from pathlib import Path

# Markers queued in place of data: the source's EOF (half-close), and the source gone (close).
EOF, CLOSE = 0, 1


class DelayedHalf:
    """One direction of one relayed connection: what the source sent, written to the sink
    ``delay`` seconds later (never before ``not_before``), in the order it was sent."""

    def __init__(self, loop: asyncio.AbstractEventLoop, delay: float, not_before: float) -> None:
        self.loop = loop
        self.delay = delay
        self.not_before = not_before
        self.sink: asyncio.Transport | None = None
        self.queue: deque[tuple[float, bytes | int]] = deque()
        self.timer: asyncio.TimerHandle | None = None

    def push(self, data: bytes | int) -> None:
        due = max(self.loop.time() + self.delay, self.not_before)
        self.queue.append((due, data))
        if self.timer is None and self.sink is not None:
            self.timer = self.loop.call_at(due, self.flush)

    def attach(self, sink: asyncio.Transport) -> None:
        self.sink = sink
        if self.queue and self.timer is None:
            self.timer = self.loop.call_at(self.queue[0][0], self.flush)

    def flush(self) -> None:
        self.timer = None
        sink = self.sink
        if sink is None or sink.is_closing():
            self.queue.clear()
            return
        now = self.loop.time()
        while self.queue and self.queue[0][0] <= now:
            _, data = self.queue.popleft()
            if data == EOF:
                try:
                    sink.write_eof()
                except OSError:  # the peer is already gone: nothing left to half-close
                    sink.close()
            elif data == CLOSE:
                sink.close()
                self.queue.clear()
                return
            else:
                assert isinstance(data, bytes)
                sink.write(data)
        if self.queue:
            self.timer = self.loop.call_at(self.queue[0][0], self.flush)

    def close_after_flush(self) -> None:
        """The source is gone: close the sink once what it sent has been delivered."""
        self.push(CLOSE)

    def cancel(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.queue.clear()


class Side(asyncio.Protocol):
    """One socket of a relayed pair. ``outgoing`` carries what this socket reads."""

    def __init__(self, outgoing: DelayedHalf, incoming: DelayedHalf) -> None:
        self.outgoing = outgoing
        self.incoming = incoming
        self.transport: asyncio.Transport | None = None
        self.peer: Side | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.incoming.attach(transport)

    def data_received(self, data: bytes) -> None:
        self.outgoing.push(data)

    def eof_received(self) -> bool:
        self.outgoing.push(EOF)
        return True  # keep our write side open: the other direction may still carry data

    def connection_lost(self, exc: Exception | None) -> None:
        self.outgoing.close_after_flush()
        self.incoming.cancel()

    # Flow control: a sink that cannot keep up stops its source from reading.
    def pause_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.resume_reading()


class Listener(asyncio.Protocol):
    """The client's side: on accept, dial the upstream and pair the two sockets."""

    def __init__(self, upstream: tuple[str, int], delay: float) -> None:
        self.upstream = upstream
        self.delay = delay
        self.side: Side | None = None
        self.dialing: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        # A real connect() returns after one round trip and the server's accept() follows half
        # a round trip later; the server's first bytes then need another half to arrive.
        to_server = DelayedHalf(loop, self.delay, now + 3 * self.delay)
        to_client = DelayedHalf(loop, self.delay, now + 4 * self.delay)
        client = Side(to_server, to_client)
        server = Side(to_client, to_server)
        client.peer, server.peer = server, client
        client.connection_made(transport)
        self.side = client

        async def dial() -> None:
            try:
                await loop.create_connection(lambda: server, *self.upstream)
            except OSError:
                to_client.close_after_flush()  # the refusal reaches the client, delayed
        self.dialing = loop.create_task(dial())  # kept: a task nobody holds may be collected

    def data_received(self, data: bytes) -> None:
        assert self.side is not None
        self.side.data_received(data)

    def eof_received(self) -> bool:
        assert self.side is not None
        return self.side.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.side is not None:
            self.side.connection_lost(exc)

    def pause_writing(self) -> None:
        if self.side is not None:
            self.side.pause_writing()

    def resume_writing(self) -> None:
        if self.side is not None:
            self.side.resume_writing()


async def serve(mapping: list[tuple[str, int, str, int]], delay: float, ready: Path) -> None:
    loop = asyncio.get_running_loop()
    servers = []
    for listen_host, listen_port, up_host, up_port in mapping:
        upstream = (up_host, up_port)
        servers.append(await loop.create_server(
            lambda upstream=upstream: Listener(upstream, delay),  # type: ignore[misc]
            listen_host, listen_port, reuse_address=True, backlog=1024))
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    ready.write_text(f"{len(servers)}\n")
    await stop.wait()
    for server in servers:
        server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay-ms", type=float, required=True, help="one-way delay")
    parser.add_argument("--map", type=Path, required=True)
    parser.add_argument("--ready", type=Path, required=True)
    args = parser.parse_args()
    mapping = [tuple(entry) for entry in json.loads(args.map.read_text())]
    asyncio.run(serve(mapping, args.delay_ms / 1000, args.ready))  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
