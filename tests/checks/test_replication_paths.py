"""The replication and failback paths: reach and egress entries that take their destinations
from site.replication (and the hosts' source:), expanded, and observed through real sockets
(a stand-in proxy and listeners on loopback) and judged."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_drcheck.checks import replication_paths
from pytest_drcheck.checks.base import ExpansionError
from pytest_drcheck.checks.egress import EgressCheck
from pytest_drcheck.checks.reach import ReachCheck
from pytest_drcheck.model import Outcome
from pytest_drcheck.targets.base import Stream, StreamError
from pytest_drcheck.targets.local import LocalTarget
from pytest_drcheck.targets.readonly import ReadOnlyTarget
from tests.checks.instances import InstanceTarget, context, item_of
from tests.checks.test_egress import StatusProxy
from tests.plugin.sockets import Listener, closed_port

SITE: dict[str, Any] = {
    "egress": {"proxies": {"corp": "10.77.0.60:3128"}},
    "replication": {"region": "us-east-1", "via": "corp",
                    "staging": ["10.78.0.80", "10.78.0.81:1501", "staging.corp.example"]},
}
# What the loader hands a source host's entries: the hosts whose source: names it.
SOURCE = {"host": "src01", "recovered_by": [["app01", "10.77.0.11"]]}
NOT_A_SOURCE = {"host": "app02", "recovered_by": []}


def names(check: Any, entry: dict[str, Any], site: dict[str, Any] = SITE) -> list[str]:
    return [subject.name for subject in check.expand(entry, site)]


@pytest.mark.parametrize(("region", "host"), [
    ("us-east-1", "drs.us-east-1.amazonaws.com"),
    ("eu-west-2", "drs.eu-west-2.amazonaws.com"),
    ("us-gov-west-1", "drs.us-gov-west-1.amazonaws.com"),
    ("cn-north-1", "drs.cn-north-1.amazonaws.com.cn"),
    ("us-iso-east-1", "drs.us-iso-east-1.c2s.ic.gov"),
    ("us-isob-east-1", "drs.us-isob-east-1.sc2s.sgov.gov"),
])
def test_the_drs_endpoint_of_a_region(region: str, host: str) -> None:
    assert replication_paths.drs_host(region) == host


def test_the_endpoint_cell_goes_through_the_named_proxy() -> None:
    (subject,) = EgressCheck().expand({"replication": "endpoint"}, SITE)
    assert subject.name == "DRS endpoint drs.us-east-1.amazonaws.com:443 via corp"
    params = dict(subject.params)
    assert (params["host"], params["port"], params["proxy"], params["url"],
            params["expect"]) == ("drs.us-east-1.amazonaws.com", 443, ("10.77.0.60", 3128),
                                  None, "allowed")


def test_the_endpoint_direct_and_overridden() -> None:
    direct = {"replication": {"region": "eu-west-1", "staging": ["10.0.0.1"]}}
    assert names(EgressCheck(), {"replication": "endpoint"}, direct) == [
        "DRS endpoint drs.eu-west-1.amazonaws.com:443 direct"]
    vpce = {"replication": {"region": "eu-west-1", "endpoint": "vpce-1.drs.example:8443"}}
    assert names(EgressCheck(), {"replication": "endpoint", "connect_timeout": "2s"}, vpce) == [
        "DRS endpoint vpce-1.drs.example:8443 direct"]
    bare = {"replication": {"region": "eu-west-1", "endpoint": "drs-fips.eu-west-1.example"}}
    assert names(EgressCheck(), {"replication": "endpoint"}, bare) == [
        "DRS endpoint drs-fips.eu-west-1.example:443 direct"]


def test_staging_servers_on_the_replication_port() -> None:
    assert names(ReachCheck(), {"replication": "staging"}) == [
        "staging 10.78.0.80:1500", "staging 10.78.0.81:1501", "staging staging.corp.example:1500"]
    other_port = {"replication": {**SITE["replication"], "port": 2500}}
    assert names(ReachCheck(), {"replication": "staging"}, other_port)[0] == (
        "staging 10.78.0.80:2500")


def test_the_recovery_instance_of_a_source() -> None:
    (subject,) = ReachCheck().expand({"replication": "recovery-instance",
                                      "host_context": SOURCE}, SITE)
    assert subject.name == "recovery instance app01 10.77.0.11:1500"
    assert (subject.params["host"], subject.params["port"], subject.params["expect"]) == (
        "10.77.0.11", 1500, "open")


@pytest.mark.parametrize(("check", "entry", "site", "message"), [
    (ReachCheck(), {"replication": "staging"}, {"egress": SITE["egress"]},
     r"^missing site\.replication, which the replication-path and failback-path suites derive "
     r"their destinations from; add site\.replication with region"),
    (EgressCheck(), {"replication": "endpoint"}, {},
     r"^missing site\.replication, which"),
    (ReachCheck(), {"replication": "recovery-instance", "host_context": SOURCE}, {},
     r"^missing site\.replication, which"),
    (ReachCheck(), {"replication": "staging"}, {"replication": {"region": "us-east-1"}},
     r"^missing site\.replication\.staging; add it"),
    (ReachCheck(), {"replication": "recovery-instance", "host_context": NOT_A_SOURCE}, SITE,
     r"^app02 is not a source server: no host names it as source:, so there is no recovery "
     r"instance to fail back from; apply failback-path to source hosts only"),
    (ReachCheck(), {"replication": "recovery-instance",
                    "host_context": {"host": "src01", "recovered_by": [["app01", None]]}}, SITE,
     r"^recovery instance app01 \(source: src01\) has no address in the inventory to "
     r"dial; add its address:"),
    (EgressCheck(), {"replication": "endpoint"},
     {"replication": {"region": "us-east-1", "via": "dmz"}, "egress": SITE["egress"]},
     r"^proxy 'dmz' is not in site\.egress\.proxies \(corp\); define it there or leave via out "
     r"for a direct path"),
    (ReachCheck(), {"replication": "staging", "target": "10.0.0.1:1500"}, SITE,
     r"^replication: staging takes its targets from site\.replication"),
    (ReachCheck(), {}, SITE, r"^missing required key 'target'; add it \(or use replication: "),
])
def test_mistakes_are_expansion_errors(check: Any, entry: dict[str, Any],
                                       site: dict[str, Any], message: str) -> None:
    with pytest.raises(ExpansionError, match=message):
        check.expand(entry, site)


def test_an_unknown_proxy_is_reported_at_site_replication_via() -> None:
    with pytest.raises(ExpansionError) as caught:
        EgressCheck().expand({"replication": "endpoint"},
                             {"replication": {"region": "us-east-1", "via": "dmz"}})
    assert caught.value.site_path == ("replication", "via")


# --- observed through real sockets -----------------------------------------------------------

def reach_verdict(site: dict[str, Any], entry: dict[str, Any]) -> tuple[Outcome, str]:
    item = item_of(ReachCheck(), entry, site)
    verdict = ReachCheck().evaluate(context(item, InstanceTarget()))
    return verdict.outcome, verdict.reason or verdict.observed


def test_staging_open_passes_and_refused_fails_with_the_cause() -> None:
    listener = Listener()
    refused = closed_port()
    try:
        site = {"replication": {"region": "us-east-1",
                                "staging": [f"127.0.0.1:{listener.port}",
                                            f"127.0.0.1:{refused}"]}}
        outcome, observed = reach_verdict(site, {"replication": "staging"})
        assert outcome is Outcome.PASSED and observed.startswith("connected in ")
        item = item_of(ReachCheck(), {"replication": "staging"}, site, index=1)
        verdict = ReachCheck().evaluate(context(item, InstanceTarget()))
        assert (item.subject, verdict.outcome, verdict.reason) == (
            f"staging 127.0.0.1:{refused}", Outcome.FAILED, "expected open, observed refused")
    finally:
        listener.close()


def test_the_endpoint_through_the_proxy_is_judged_as_egress() -> None:
    allowed, forbidden = StatusProxy("200 Connection established"), StatusProxy("403 Forbidden")
    try:
        for proxy, expected in ((allowed, (Outcome.PASSED, "connected (HTTP 200)")),
                                (forbidden, (Outcome.FAILED, "expected allowed via corp, "
                                                             "observed denied by proxy (HTTP "
                                                             "403 Forbidden)"))):
            site = {"egress": {"proxies": {"corp": f"127.0.0.1:{proxy.port}"}},
                    "replication": {"region": "us-east-1", "via": "corp"}}
            item = item_of(EgressCheck(), {"replication": "endpoint"}, site)
            verdict = EgressCheck().evaluate(context(item, InstanceTarget()))
            assert (verdict.outcome, verdict.reason or verdict.observed) == expected
            # A CONNECT to the endpoint, as the replication agent makes through its proxy.
            assert proxy.requests[0].startswith(
                b"CONNECT drs.us-east-1.amazonaws.com:443 HTTP/1.1\r\n")
    finally:
        allowed.close()
        forbidden.close()


class BlackHoledSource(LocalTarget):
    """The source's own connection answers; its streams to port 1500 time out (a dropping
    firewall on the way)."""

    def open_stream(self, host: str, port: int, timeout: float) -> Stream:
        if port == replication_paths.REPLICATION_PORT:
            raise StreamError("timed out", f"{host}:{port} from src01: timed out")
        return super().open_stream(host, port, timeout)


def test_a_black_holed_failback_port_is_observed_from_the_read_only_source() -> None:
    """Before: the timeout's responsiveness probe (`true` on the source) was refused by the
    read-only target, so a dropped path was an error ("could not observe"), not a failure."""
    item = item_of(ReachCheck(), {"replication": "recovery-instance", "host_context": SOURCE,
                                  "connect_timeout": "1s"}, SITE)
    verdict = ReachCheck().evaluate(context(item, ReadOnlyTarget(BlackHoledSource("src01"))))
    assert (verdict.outcome, verdict.reason) == (
        Outcome.FAILED, "expected open, observed timed out after 1 s")
