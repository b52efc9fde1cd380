"""egress: destinations and cells, the proxy's status line, and each cell observed through
real sockets (a stand-in proxy on loopback) and judged."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import pytest

from pytest_drcheck.checks.base import ExpansionError
from pytest_drcheck.checks.egress import EgressCheck, parse_destination
from pytest_drcheck.model import CouldNotObserve, Outcome
from pytest_drcheck.net.http import connect_request, read_status
from pytest_drcheck.net.streams import StreamTimeout
from tests.checks.instances import InstanceTarget, context, item_of
from tests.plugin.sockets import AcceptAndClose, Listener, closed_port
from tests.sockets import LoopbackServer

SITE = {"egress": {"proxies": {"corp": "10.77.0.60:3128"}, "policy": [
    {"destination": "http://www.example.com/", "via": "corp", "expect": "allowed"},
    {"destination": "https://blocked.example.org", "via": "corp", "expect": "denied"},
    {"destination": "10.99.0.80:80", "expect": "denied"},
]}}


def test_destinations() -> None:
    assert parse_destination("http://www.example.com/x?y=1") == (
        "http", "www.example.com", 80, "http://www.example.com/x?y=1")
    assert parse_destination("https://h.example:8443") == ("https", "h.example", 8443, None)
    assert parse_destination("10.99.0.80:25") == ("tcp", "10.99.0.80", 25, None)
    assert parse_destination("ftp://x") is None
    assert parse_destination("nohost") is None


def test_site_policy_expands_to_cells() -> None:
    subjects = EgressCheck().expand({"site": True, "connect_timeout": "2s"}, SITE)
    assert [s.name for s in subjects] == [
        "www.example.com/@corp", "blocked.example.org:443@corp", "10.99.0.80:80@direct"]
    assert subjects[0].params["proxy"] == ("10.77.0.60", 3128)
    assert all(s.params["connect_timeout"] == 2.0 for s in subjects)


def test_unknown_proxy_is_a_clear_mistake() -> None:
    with pytest.raises(ExpansionError, match=r"proxy 'dmz' is not in site.egress.proxies \(corp\)"):
        EgressCheck().expand({"destination": "http://x.example/", "via": "dmz",
                              "expect": "allowed"}, SITE)


def test_status_line_over_a_real_socket() -> None:
    ours, theirs = socket.socketpair()

    def proxy() -> None:
        request = theirs.recv(4096)
        assert request.startswith(b"CONNECT www.example.com:443 HTTP/1.1\r\n")
        theirs.sendall(b"HTTP/1.1 403 Forbidden\r\nServer: squid\r\n\r\n")

    threading.Thread(target=proxy, daemon=True).start()
    ours.sendall(connect_request("www.example.com", 443))
    assert read_status(ours, time.monotonic() + 2) == (403, "Forbidden")
    ours.close()
    theirs.close()


def test_silent_proxy_times_out() -> None:
    ours, theirs = socket.socketpair()
    started = time.monotonic()
    with pytest.raises(StreamTimeout):
        read_status(ours, time.monotonic() + 0.3)
    assert time.monotonic() - started < 10  # a silent proxy never answers
    ours.close()
    theirs.close()


# --- observe and judge through real sockets ------------------------------------------------

class StatusProxy(LoopbackServer):
    """A real HTTP proxy stand-in on 127.0.0.1 that answers every request with one status."""

    def __init__(self, status: str) -> None:
        self.status = status
        self.requests: list[bytes] = []
        super().__init__()

    def serve(self, conn: socket.socket, index: int) -> None:
        with conn:
            self.requests.append(conn.recv(4096))
            conn.sendall(f"HTTP/1.1 {self.status}\r\nServer: test\r\n\r\n".encode())


CHECK = EgressCheck()


def cell(destination: str, expect: str, proxy: str | None = None) -> tuple[Outcome, str]:
    entry = {"destination": destination, "expect": expect, "connect_timeout": "2s"}
    site: dict[str, Any] = {}
    if proxy is not None:
        entry["via"] = "corp"
        site = {"egress": {"proxies": {"corp": proxy}}}
    item = item_of(CHECK, entry, site)
    verdict = CHECK.evaluate(context(item, InstanceTarget()))
    return verdict.outcome, verdict.reason or verdict.observed


def test_proxy_answers_are_judged() -> None:
    allowed, forbidden, failing = (StatusProxy("200 OK"), StatusProxy("403 Forbidden"),
                                   StatusProxy("503 Service Unavailable"))
    try:
        assert cell("http://www.example.com/", "allowed", f"127.0.0.1:{allowed.port}") == (
            Outcome.PASSED, "connected (HTTP 200)")
        assert allowed.requests[0].startswith(b"GET http://www.example.com/ HTTP/1.1\r\n")
        assert cell("https://blocked.example.org", "denied",
                    f"127.0.0.1:{forbidden.port}") == (
            Outcome.PASSED, "denied by proxy (HTTP 403 Forbidden)")
        assert forbidden.requests[0].startswith(b"CONNECT blocked.example.org:443 HTTP/1.1")
        assert cell("http://repo.example.net/", "allowed", f"127.0.0.1:{failing.port}") == (
            Outcome.FAILED, "expected allowed via corp, observed proxy could not reach it "
                            "(HTTP 503 Service Unavailable)")
        # 5xx is not a denial: the proxy let it through.
        assert cell("http://repo.example.net/", "denied", f"127.0.0.1:{failing.port}")[0] is (
            Outcome.FAILED)
    finally:
        for proxy in (allowed, forbidden, failing):
            proxy.close()


def test_direct_cells_and_a_proxy_that_refuses() -> None:
    port = closed_port()
    assert cell(f"127.0.0.1:{port}", "denied") == (Outcome.PASSED, "refused")
    assert cell(f"127.0.0.1:{port}", "allowed") == (
        Outcome.FAILED, "expected allowed direct, observed refused")
    assert cell("http://www.example.com/", "allowed", f"127.0.0.1:{port}") == (
        Outcome.FAILED, f"expected allowed via corp, observed proxy 127.0.0.1:{port} refused")


def test_a_destination_or_proxy_name_that_does_not_resolve_could_not_be_observed() -> None:
    # Before: a direct cell read it as "error: ...", a proxied one as "proxy error".
    with pytest.raises(CouldNotObserve, match=r"^www.corp.example does not resolve on app01"):
        cell("www.corp.example:80", "denied")
    with pytest.raises(CouldNotObserve, match=r"^proxy.corp.example does not resolve on app01"):
        cell("http://www.example.com/", "allowed", "proxy.corp.example:3128")
    with pytest.raises(CouldNotObserve, match=r"sshd refused the channel"):
        cell("127.0.0.1:9", "denied")


def test_a_proxy_that_accepts_and_never_answers_is_observed_not_a_denial() -> None:
    silent = Listener()
    try:
        item = item_of(CHECK, {"destination": "http://blocked.example.org/", "via": "corp",
                               "expect": "denied", "connect_timeout": "1s"},
                       {"egress": {"proxies": {"corp": f"127.0.0.1:{silent.port}"}}},
                       timeout=1.5)
        verdict = CHECK.evaluate(context(item, InstanceTarget()))
    finally:
        silent.close()
    assert (verdict.outcome, verdict.reason) == (
        Outcome.FAILED, "expected denied via corp, observed no answer from the proxy")


def test_a_proxy_that_closes_without_answering_could_not_be_observed() -> None:
    """Before: 'observed proxy error: the proxy closed the connection without answering', a
    failed cell (and for a denied cell, a wrong value): neither allowed nor denied was seen."""
    closing = AcceptAndClose()
    try:
        for expect in ("allowed", "denied"):
            item = item_of(CHECK, {"destination": "http://www.example.com/", "via": "corp",
                                   "expect": expect},
                           {"egress": {"proxies": {"corp": f"127.0.0.1:{closing.port}"}}})
            # Closed before or after our request arrived: an EOF, or a reset.
            with pytest.raises(CouldNotObserve, match=(
                    rf"^the proxy 127\.0\.0\.1:{closing.port} gave no HTTP answer: (the proxy "
                    r"closed the connection without answering|\[Errno 104\] Connection reset "
                    r"by peer)$")):
                CHECK.evaluate(context(item, InstanceTarget()))
    finally:
        closing.close()
