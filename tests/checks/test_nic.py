"""nic parses what iproute2 really prints: the runner's own `ip -j` output, plus fixed samples."""

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from pytest_drcheck.checks.nic import (
    COMMANDS,
    NicCheck,
    parse_default_gateways,
    parse_interfaces,
    parse_nameservers,
)
from pytest_drcheck.checks.source_addresses import SourceAddresses
from pytest_drcheck.engine import Engine, EngineSettings
from pytest_drcheck.inventory.plan import ConnectionSpec, DrillSpec, HostSpec, Plan
from pytest_drcheck.model import CouldNotObserve, Outcome, PlanItem
from pytest_drcheck.targets.base import CommandResult, Target, TargetError
from pytest_drcheck.targets.factory import TargetFactory
from pytest_drcheck.targets.local import LocalTarget
from tests.checks.instances import context, item_of, ran

SAMPLE = json.dumps([
    {"ifname": "lo", "link_type": "loopback", "mtu": 65536,
     "addr_info": [{"family": "inet", "local": "127.0.0.1", "prefixlen": 8, "scope": "host"}]},
    {"ifname": "eth1@if9", "link_type": "ether", "address": "aa:bb:cc:00:00:02", "mtu": 9001,
     "addr_info": [{"family": "inet", "local": "10.78.0.13", "prefixlen": 24,
                    "scope": "global"},
                   {"family": "inet6", "local": "fe80::1", "prefixlen": 64, "scope": "link"}]},
    {"ifname": "eth0@if7", "link_type": "ether", "address": "aa:bb:cc:00:00:01", "mtu": 1500,
     "addr_info": [{"family": "inet", "local": "10.77.0.13", "prefixlen": 24,
                    "scope": "global"}]},
])


def test_interfaces_sorted_without_loopback_or_link_local() -> None:
    interfaces = parse_interfaces(SAMPLE)
    assert [(i.name, i.mtu, i.addresses) for i in interfaces] == [
        ("eth0", 1500, ("10.77.0.13/24",)), ("eth1", 9001, ("10.78.0.13/24",))]
    assert interfaces[0].mac == "aa:bb:cc:00:00:01"


def test_runner_output_parses() -> None:
    out = subprocess.run(["ip", "-j", "addr", "show"], capture_output=True, text=True,
                         check=True).stdout
    assert all(i.name != "lo" for i in parse_interfaces(out))


def test_gateways_and_nameservers() -> None:
    routes = json.dumps([{"dst": "default", "gateway": "10.77.0.1", "dev": "eth0"}])
    assert parse_default_gateways(routes) == ["10.77.0.1"]
    assert parse_default_gateways("[]") == []
    assert parse_nameservers("# x\nsearch corp.example\nnameserver 10.77.0.53\n"
                             "nameserver 10.77.0.54\n") == ["10.77.0.53", "10.77.0.54"]


# --- observe and judge ---------------------------------------------------------------------

CHECK = NicCheck()
DB01 = {"count": 2, "names": ["eth0", "eth1"], "mode": "retain",
        "addresses": ["10.77.0.13/24", "10.78.0.13/24"], "mtu": {"eth0": 1500, "eth1": 9001},
        "default_gateway": None, "dns_servers": ["10.77.0.53"]}
ROUTES = json.dumps([{"dst": "default", "gateway": "10.77.0.1", "dev": "eth0"}])
RESOLV = "search corp.example\nnameserver 10.77.0.53\n"


def items(entry: dict[str, Any]) -> dict[str, PlanItem]:
    return {s.name: item_of(CHECK, entry, index=i)
            for i, s in enumerate(CHECK.expand(entry, {}))}


def outputs(addr: CommandResult | None = None, route: CommandResult | None = None,
            resolv: CommandResult | None = None) -> list[CommandResult]:
    return [addr or ran(COMMANDS[0], 0, SAMPLE), route or ran(COMMANDS[1], 0, "[]"),
            resolv or ran(COMMANDS[2], 0, RESOLV)]


def verdicts(entry: dict[str, Any], recorded: list[CommandResult],
             target: Target | None = None) -> dict[str, str]:
    """subject -> 'passed: observed' / 'failed: reason' / 'error: cause'."""
    shown = {}
    for name, item in items(entry).items():
        try:
            verdict = CHECK.evaluate(context(item, target or LocalTarget("app01"), recorded))
        except CouldNotObserve as exc:
            shown[name] = f"error: {exc}"
            continue
        shown[name] = (f"passed: {verdict.observed}" if verdict.outcome is Outcome.PASSED
                       else f"{verdict.outcome.value}: {verdict.reason}")
    return shown


def test_one_interfaces_test_carries_the_observation_and_the_rest_require_it() -> None:
    subjects = CHECK.expand(DB01, {})
    assert [(s.name, s.requires) for s in subjects] == [
        ("interfaces", ()), ("count", ("nic[interfaces]",)), ("names", ("nic[interfaces]",)),
        ("addresses", ("nic[interfaces]",)), ("mtu", ("nic[interfaces]",)),
        ("default_gateway", ("nic[interfaces]",)), ("dns_servers", ())]
    assert [s.name for s in CHECK.expand({"dns_servers": ["10.77.0.53"]}, {})] == [
        "dns_servers"]


def test_every_property_judged_green() -> None:
    assert verdicts(DB01, outputs()) == {
        "interfaces": "passed: 2 (eth0, eth1)",
        "count": "passed: 2 (eth0, eth1)",
        "names": "passed: eth0, eth1",
        "addresses": "passed: 10.77.0.13/24, 10.78.0.13/24",
        "mtu": "passed: eth0 1500, eth1 9001",
        "default_gateway": "passed: no default route",
        "dns_servers": "passed: 10.77.0.53",
    }


def test_every_property_judged_wrong() -> None:
    entry = {"count": 3, "names": ["eth0"], "mode": "change", "subnets": ["10.77.0.0/24"],
             "mtu": 1500, "default_gateway": "10.77.0.254",
             "dns_servers": ["10.77.0.54"]}
    assert verdicts(entry, outputs(route=ran(COMMANDS[1], 0, ROUTES))) == {
        "interfaces": "passed: 2 (eth0, eth1)",
        "count": "failed: expected 3, observed 2 (eth0, eth1)",
        "names": "failed: expected eth0, observed eth0, eth1",
        "addresses": "failed: expected every address in 10.77.0.0/24, observed 10.77.0.13/24, "
                     "10.78.0.13/24: 10.78.0.13/24 outside the target subnets",
        "mtu": "failed: expected eth0 1500, eth1 1500, observed eth0 1500, eth1 9001",
        "default_gateway": "failed: expected 10.77.0.254, observed 10.77.0.1",
        "dns_servers": "failed: expected 10.77.0.54, observed 10.77.0.53",
    }
    retain = verdicts({"mode": "retain", "addresses": ["10.77.0.13/24", "10.1.0.5/24"]},
                      outputs())
    assert retain["addresses"] == (
        "failed: expected retain 10.1.0.5/24, 10.77.0.13/24 (source server's addresses), "
        "observed 10.77.0.13/24, 10.78.0.13/24: missing 10.1.0.5/24; unexpected "
        "10.78.0.13/24")


def test_interfaces_that_timed_out_are_not_a_missing_iproute2() -> None:
    # Before: "cannot read interfaces: `ip -j addr` failed (124); is iproute2 installed?"
    shown = verdicts({"count": 1}, outputs(addr=ran(COMMANDS[0], timed_out=True)))
    assert shown["interfaces"] == "error: `ip -j addr show` timed out after 10 s on app01"


def test_a_missing_iproute2_is_named_as_such() -> None:
    shown = verdicts({"count": 1}, outputs(addr=ran(COMMANDS[0], 127, "",
                                                    "sh: 1: ip: not found")))
    assert shown["interfaces"] == ("error: cannot read interfaces: `ip` is not installed on "
                                   "app01 (command not found); is iproute2 installed?")


def test_output_that_is_not_iproute2_json_is_not_zero_interfaces() -> None:
    shown = verdicts({"count": 0}, outputs(addr=ran(COMMANDS[0], 0, "Usage: ip [ OPTIONS ]")))
    assert shown["interfaces"].startswith(
        "error: `ip -j addr show` printed something that is not iproute2's JSON")


def test_dns_servers_stand_alone_and_an_unreadable_resolv_conf_is_not_none() -> None:
    entry = {"count": 2, "dns_servers": ["10.77.0.53"]}
    shown = verdicts(entry, outputs(addr=ran(COMMANDS[0], timed_out=True)))
    assert shown["dns_servers"] == "passed: 10.77.0.53"
    timed_out = verdicts(entry, outputs(resolv=ran(COMMANDS[2], timed_out=True)))
    assert timed_out["dns_servers"] == ("error: `cat /etc/resolv.conf` timed out after 10 s "
                                        "on app01")
    missing = verdicts(entry, outputs(resolv=ran(
        COMMANDS[2], 1, "", "cat: /etc/resolv.conf: No such file or directory")))
    assert missing["dns_servers"] == "failed: expected 10.77.0.53, observed none"


def test_unreadable_interfaces_are_reported_once_and_the_properties_skipped(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A real run on the runner whose PATH has what the batch and cat need, but no `ip`.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("sh", "cat", "timeout", "mktemp", "rm", "base64", "cp", "mkdir", "wc"):
        found = shutil.which(tool)
        assert found is not None
        (bin_dir / tool).symlink_to(found)
    monkeypatch.setenv("PATH", str(bin_dir))
    planned = list(items(DB01).values())
    host = HostSpec("app01", None, ConnectionSpec(type="local"), ())
    plan = Plan("site.yaml", "site.yaml", "0" * 64, DrillSpec("t"), {"app01": host}, planned,
                {})
    engine = Engine(plan, TargetFactory(), EngineSettings(workers=2, per_host=2))
    try:
        engine.select(planned)
        engine.start()
        results = {item.subject: engine.result(item) for item in planned}
    finally:
        engine.close()
    cause = ("cannot read interfaces: `ip` is not installed on app01 (command not found); is "
             "iproute2 installed?")
    assert results["interfaces"].outcome is Outcome.ERROR
    assert results["interfaces"].message == f"app01 nic interfaces: could not observe: {cause}"
    for name in ("count", "names", "addresses", "mtu", "default_gateway"):
        assert results[name].outcome is Outcome.SKIPPED
        assert results[name].message == (f"app01 nic {name}: skipped: nic[interfaces] did not "
                                          f"pass (could not observe: {cause})")
    assert results["dns_servers"].outcome in (Outcome.PASSED, Outcome.FAILED)


def test_a_default_route_that_could_not_be_read_is_not_no_default_route() -> None:
    shown = verdicts({"default_gateway": None},
                     outputs(route=ran(COMMANDS[1], timed_out=True)))
    assert shown == {"interfaces": "passed: 2 (eth0, eth1)",
                     "default_gateway": "error: `ip -j route show default` timed out after "
                                        "10 s on app01"}


# --- retain mode without addresses: the source server's recorded addresses ----------------


class RecordingTarget(LocalTarget):
    """A host's target that knows its source server's addresses (as the aws extra's does)."""

    def __init__(self, recorded: SourceAddresses | None = None, error: str = "") -> None:
        super().__init__("app01")
        self.recorded, self.error = recorded, error
        self.asked: list[float] = []

    def source_addresses(self, timeout: float) -> SourceAddresses:
        self.asked.append(timeout)
        if self.error:
            raise TargetError(self.error)
        assert self.recorded is not None
        return self.recorded


RETAIN = {"mode": "retain"}
SOURCE = "DRS source server s-00000000000000001"


def test_retain_without_addresses_takes_the_recorded_ones_without_prefix() -> None:
    # Before: "mode: retain needs 'addresses'" at inventory load, whatever DRS recorded.
    assert items(RETAIN)["addresses"].params["addresses"] is None
    assert CHECK.expected(items(RETAIN)["addresses"]) == (
        "retain the source server's recorded addresses")
    target = RecordingTarget(SourceAddresses(("10.77.0.13", "10.78.0.13"), SOURCE))
    assert verdicts(RETAIN, outputs(), target) == {
        "interfaces": "passed: 2 (eth0, eth1)", "addresses": "passed: 10.77.0.13, 10.78.0.13"}
    assert target.asked == [5.0]  # the check's own time budget


def test_recorded_addresses_not_kept_fail_with_the_likely_cause() -> None:
    changed = RecordingTarget(SourceAddresses(("10.77.0.13", "10.0.1.5"), SOURCE,
                                              "its launch changes IPs"))
    assert verdicts(RETAIN, outputs(), changed)["addresses"] == (
        f"failed: expected retain 10.77.0.13, 10.0.1.5 (recorded for {SOURCE}), observed "
        "10.77.0.13, 10.78.0.13: missing 10.0.1.5; unexpected 10.78.0.13 (its launch "
        "changes IPs)")


def test_recorded_addresses_that_cannot_be_read_are_never_a_pass() -> None:
    unreachable = RecordingTarget(error="DRS DescribeSourceServers: endpoint timed out")
    assert verdicts(RETAIN, outputs(), unreachable)["addresses"] == (
        "error: cannot read the source server's recorded addresses of app01: DRS "
        "DescribeSourceServers: endpoint timed out")
    nothing = RecordingTarget(SourceAddresses((), SOURCE))
    assert verdicts(RETAIN, outputs(), nothing)["addresses"] == (
        f"error: {SOURCE} has no IP address recorded, so there is nothing to retain: list the "
        "addresses in the inventory")
    assert verdicts(RETAIN, outputs())["addresses"] == (
        "error: mode: retain without addresses needs the source server's recorded addresses, "
        "and nothing records them for app01: list them (addresses: [10.0.1.5/24]) or find "
        "the host through DRS (drs: {source_server_id: ...})")
