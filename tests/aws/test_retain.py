"""nic's retain mode without addresses, end to end: the expectation comes from what the local
DRS endpoint recorded for the source server (requests and responses validated against
botocore's model), the instance's interfaces from `ip -j` run through SSM on the runner (an
`ip` on PATH that prints the recovery instance's interfaces, as iproute2 prints them)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from tests.aws.conftest import Drill, write_inventory
from tests.aws.fakeaws import FakeAws
from tests.aws.test_drill_aws import outcomes, run

INSTANCE_INTERFACES = [
    {"ifname": "lo", "link_type": "loopback", "mtu": 65536,
     "addr_info": [{"family": "inet", "local": "127.0.0.1", "prefixlen": 8, "scope": "host"}]},
    {"ifname": "ens5", "link_type": "ether", "address": "02:00:00:00:00:01", "mtu": 9001,
     "addr_info": [{"family": "inet", "local": "10.0.1.5", "prefixlen": 24, "scope": "global"},
                   {"family": "inet", "local": "10.0.1.6", "prefixlen": 24,
                    "scope": "global"}]},
]


@pytest.fixture
def instance_ip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`ip` as on the recovery instance, for the SSM agent's shell (it inherits PATH)."""
    bin_dir = tmp_path / "instance-bin"
    bin_dir.mkdir()
    script = bin_dir / "ip"
    script.write_text("#!/bin/sh\n"
                      "case \"$*\" in\n"
                      f"  '-j addr show') echo '{json.dumps(INSTANCE_INTERFACES)}' ;;\n"
                      "  *) echo '[]' ;;\n"
                      "esac\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")


def test_retain_without_addresses_is_judged_against_what_drs_recorded(
        pytester: pytest.Pytester, drill: Drill, fake: FakeAws, instance_ip: None) -> None:
    kept = drill.add("app01", ips=("10.0.1.5", "10.0.1.6"))
    changed = drill.add("app02", ips=("10.0.9.5",))
    unrecorded = drill.add("app03", ips=())
    unknown = drill.add("app04")
    fake.launch_configurations[kept.sid]["copyPrivateIp"] = True
    for host in (kept, changed, unrecorded, unknown):
        fake.ssm_instances[str(host.instance_id)] = {"PingStatus": "Online",
                                                     "PlatformType": "Linux"}
    del fake.launch_configurations[unknown.sid]  # DRS answers ResourceNotFoundException
    write_inventory(pytester.path / "site.yaml", fake, "".join(
        f"{host.name}:\n  drs: {{source_server_id: {host.sid}}}\n"
        "  checks: {nic: [{mode: retain}]}\n" for host in (kept, changed, unrecorded, unknown)))
    result = run(pytester)
    assert outcomes(result) == {
        "site.yaml::app01::nic[interfaces]": "PASSED",
        "site.yaml::app01::nic[addresses]": "PASSED",
        "site.yaml::app02::nic[interfaces]": "PASSED",
        "site.yaml::app02::nic[addresses]": "FAILED",
        "site.yaml::app03::nic[interfaces]": "PASSED",
        "site.yaml::app03::nic[addresses]": "ERROR",
        "site.yaml::app04::nic[interfaces]": "PASSED",
        "site.yaml::app04::nic[addresses]": "ERROR",
    }
    text = result.stdout.str()
    assert (f"app02 nic addresses: expected retain 10.0.9.5 (recorded for DRS source server "
            f"{changed.sid}), observed 10.0.1.5, 10.0.1.6: missing 10.0.9.5; unexpected "
            "10.0.1.5, 10.0.1.6 (its DRS launch configuration does not copy the private IPs "
            "(copyPrivateIp: false))") in text
    assert (f"app03 nic addresses: could not observe: DRS source server {unrecorded.sid} has "
            "no IP address recorded, so there is nothing to retain") in text
    assert ("app04 nic addresses: could not observe: cannot read the source server's recorded "
            "addresses of app04: GetLaunchConfiguration failed: ResourceNotFoundException: "
            "source server not found") in text
