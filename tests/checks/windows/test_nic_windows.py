"""nic on Windows: Get-NetIPConfiguration and Get-NetIPInterface into the family's NicValue."""

from __future__ import annotations

import pytest

from pytest_drcheck.checks.nic import Interface, NicCheck
from pytest_drcheck.checks.windows import nic as windows
from pytest_drcheck.model import CouldNotObserve, Outcome
from tests.checks.windows.helpers import evaluate, observe, recorded, windows_item
from tests.targets.fake_windows import Answer

CHECK = NicCheck()
TWO = {windows.CONFIG_COMMAND: Answer(0, recorded("get-netipconfiguration-two-nics.json")),
       windows.MTU_COMMAND: Answer(0, recorded("get-netipinterface-ipv4.json"))}


def test_two_nics_with_mtu_gateway_and_dns() -> None:
    interfaces, gateways, servers = windows.parse(
        recorded("get-netipconfiguration-two-nics.json"),
        recorded("get-netipinterface-ipv4.json"), "win01")
    assert interfaces == [
        Interface("Ethernet", "0a:1b:2c:3d:4e:5f", 9001, ("10.77.0.21/24",)),
        Interface("Ethernet 2", "0a:1b:2c:3d:4e:60", 1500, ("10.78.0.21/24",))]
    assert (gateways, servers) == (["10.77.0.1"], ["10.77.0.53", "10.77.0.54"])


def test_one_nic_unrolled_by_old_powershell() -> None:
    interfaces, gateways, servers = windows.parse(
        recorded("get-netipconfiguration-one-nic-ps3.json"),
        recorded("get-netipinterface-ipv4.json"), "win01")
    assert [i.addresses for i in interfaces] == [("10.77.0.21/24",)]
    assert (gateways, servers) == (["10.77.0.1"], ["10.77.0.53"])


@pytest.mark.parametrize(("entry", "subject", "outcome"), [
    ({"count": 2}, "count", Outcome.PASSED),
    ({"mtu": 9001}, "mtu", Outcome.FAILED),
    ({"mtu": {"Ethernet": 9001, "Ethernet 2": 1500}}, "mtu", Outcome.PASSED),
    ({"default_gateway": "10.77.0.1"}, "default_gateway", Outcome.PASSED),
    ({"dns_servers": ["10.77.0.53", "10.77.0.54"]}, "dns_servers", Outcome.PASSED),
    ({"mode": "change", "subnets": ["10.77.0.0/16", "10.78.0.0/16"]}, "addresses",
     Outcome.PASSED),
    ({"mode": "retain", "addresses": ["10.77.0.20/24"]}, "addresses", Outcome.FAILED),
])
def test_properties_through_the_shared_judge(entry: dict[str, object], subject: str,
                                             outcome: Outcome) -> None:
    item = windows_item(CHECK, subject, entry)
    assert list(CHECK.commands(item)) == list(windows.COMMANDS)
    assert evaluate(CHECK, item, TWO).outcome is outcome


def test_without_the_netip_cmdlets_it_could_not_observe() -> None:
    item = windows_item(CHECK, "interfaces", {"count": 1})
    with pytest.raises(CouldNotObserve, match="is not available on win01"):
        observe(CHECK, item, {})
