import socket
import threading
import time

import pytest

from pytest_drcheck.checks.base import ExpansionError
from pytest_drcheck.checks.egress import EgressCheck, parse_destination
from pytest_drcheck.net.http import connect_request, read_status
from pytest_drcheck.net.streams import StreamTimeout

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
    assert time.monotonic() - started < 1
    ours.close()
    theirs.close()
