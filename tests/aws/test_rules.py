"""The AWS layer's pure rules: lag durations, OS vs instance type, the drill guard's choice,
recorded source addresses, the IMDS probe's output, the loopback-only client guard."""

from __future__ import annotations

import pytest

from pytest_drcheck.aws.checks.drs import parse_iso_duration
from pytest_drcheck.aws.checks.iam import imds_command, parse_imds
from pytest_drcheck.aws.clients import AwsClients, AwsError
from pytest_drcheck.aws.guard import Candidate, DiscoveryError, NoInstance, Refused, choose
from pytest_drcheck.aws.inventory import AwsSettings
from pytest_drcheck.aws.ostype import (
    compatible,
    enterprise_linux_release,
    is_nitro,
    legacy_os,
    short_name,
)
from pytest_drcheck.aws.retain import source_addresses
from pytest_drcheck.model import CouldNotObserve

JOB_A = "drsjob-aaaaaaaaaaaaaaaaa"
JOB_B = "drsjob-bbbbbbbbbbbbbbbbb"


@pytest.mark.parametrize(("text", "seconds"), [
    ("PT0S", 0), ("PT30S", 30), ("PT1M30S", 90), ("PT1H2M3S", 3723), ("P1DT2H", 93600),
    ("PT0.5S", 0.5), ("P1W", 604800), ("PT15M", 900),
])
def test_iso_durations(text: str, seconds: float) -> None:
    assert parse_iso_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "P", "PT", "15m", "PT1X", "1H"])
def test_bad_iso_durations(text: str) -> None:
    with pytest.raises(ValueError, match="is not an ISO 8601 duration"):
        parse_iso_duration(text)


@pytest.mark.parametrize(("os_name", "rule"), [
    ("Red Hat Enterprise Linux Server release 6.10 (Santiago)", "RHEL/CentOS 6 and earlier"),
    ("CentOS release 6.10 (Final)", "RHEL/CentOS 6 and earlier"),
    ("CentOS release 5.11 (Final)", "RHEL/CentOS 6 and earlier"),
    ("CentOS Linux release 7.9.2009 (Core)", None),
    ("Red Hat Enterprise Linux release 8.6 (Ootpa)", None),
    ("Microsoft Windows Server 2008 Enterprise 6.0.6002", "Windows Server 2008 and earlier"),
    ("Microsoft Windows Server 2003 R2 Standard", "Windows Server 2008 and earlier"),
    ("Microsoft Windows Server 2008 R2 Datacenter 6.1.7601", None),
    ("Microsoft Windows Server 2019 Datacenter", None),
    ("Ubuntu 22.04.3 LTS", None),
])
def test_legacy_os_rule(os_name: str, rule: str | None) -> None:
    assert legacy_os(os_name) == rule


EL7 = ("Linux version 3.10.0-1160.90.1.el7.x86_64 (mockbuild@kbuilder.bsys.centos.org) (gcc "
       "version 4.8.5 20150623 (Red Hat 4.8.5-44) (GCC) ) #1 SMP Fri Mar 17 09:52:28 UTC 2023")


@pytest.mark.parametrize(("os_name", "release", "rule"), [
    # Before: "centos" in the builder's host name, then gcc's major: CentOS "4".
    (EL7, 7, None),
    ("Linux version 2.6.32-754.35.1.el6.x86_64 (mockbuild@x86-01.bsys.centos.org) (gcc "
     "version 4.4.7 20120313 (Red Hat 4.4.7-23) (GCC) ) #1 SMP", 6, "RHEL/CentOS 6 and earlier"),
    ("Linux version 2.6.18-419.el5 (mockbuild@builder10.centos.org) (gcc version 4.1.2)", 5,
     "RHEL/CentOS 6 and earlier"),
    ("Linux version 4.18.0-477.10.1.el8_8.x86_64 (mockbuild@x86-vm-07.build.eng.bos.redhat.com) "
     "(gcc version 8.5.0 20210514 (Red Hat 8.5.0-18) (GCC)) #1 SMP", 8, None),
    ("Linux version 4.1.12-124.48.6.el6uek.x86_64 (mockbuild@host) (gcc version 4.4.7)", 6,
     "RHEL/CentOS 6 and earlier"),
    # Other distributions' kernels carry no release the rule knows: no rule, DRS decides.
    ("Linux version 5.15.0-1031-aws (buildd@lcy02-amd64-001) (gcc (Ubuntu 11.3.0-1ubuntu1~22.04) "
     "11.3.0, GNU ld (GNU Binutils for Ubuntu) 2.38) #35-Ubuntu SMP", None, None),
    ("Linux version 4.12.14-122.37-default (geeko@buildhost) (gcc version 4.8.5 (SUSE Linux))",
     None, None),
    ("Linux version 4.14.322-246.539.amzn2.x86_64 (mockbuild@ip-10-0-1-5) (gcc 7.3.1)", None,
     None),
])
def test_os_from_the_kernel_release(os_name: str, release: int | None, rule: str | None
                                    ) -> None:
    assert enterprise_linux_release(os_name) == release
    assert legacy_os(os_name) == rule


def test_which_rule_decided_is_said() -> None:
    assert compatible("m5.large", True, EL7, True).decided_by == "DRS supportsNitroInstances"
    assert compatible("m5.large", True, EL7, None).decided_by == "kernel release"
    assert compatible("m4.large", True, EL7, False).decided_by == "DRS supportsNitroInstances"
    assert compatible("m4.large", False, EL7, False).decided_by == "instance type (Xen)"
    el6 = compatible("c5.large", True, EL7.replace("el7", "el6"), True)
    assert not el6.compatible and el6.decided_by == "kernel release"
    assert "kernel 3.10.0-1160.90.1.el6.x86_64 (el6) falls under 'RHEL/CentOS 6" in el6.reason
    assert short_name(EL7) == "kernel 3.10.0-1160.90.1.el7.x86_64"


def test_nitro_detection_prefers_ec2s_own_answer() -> None:
    assert is_nitro("c5.large") and is_nitro("t3.micro") and is_nitro("m7g.large")
    assert not is_nitro("m4.large") and not is_nitro("t2.micro") and not is_nitro("c4.xlarge")
    assert not is_nitro("c5.large", {"Hypervisor": "xen"})
    assert is_nitro("i3.metal", {"BareMetal": True})


def test_compatibility_verdicts() -> None:
    assert compatible("m4.large", False, "CentOS release 6.10", False).compatible
    assert compatible("c5.large", True, "Ubuntu 22.04", True).compatible
    flag = compatible("c5.large", True, "Ubuntu 14.04", False)
    assert not flag.compatible and "supportsNitroInstances false" in flag.reason
    rule = compatible("m5.large", True, "CentOS release 6.10 (Final)", True)
    assert not rule.compatible and "RHEL/CentOS 6 and earlier" in rule.reason


def _ri(instance: str, drill: bool, job: str) -> Candidate:
    return Candidate(instance, {"recoveryInstanceID": instance, "isDrill": drill, "jobID": job})


def test_guard_picks_the_only_drill_instance() -> None:
    chosen = choose("source server s-1", [_ri("i-0000000a", False, JOB_A),
                                          _ri("i-0000000b", True, JOB_B)], None, False)
    assert chosen.instance_id == "i-0000000b"


def test_guard_refuses_non_drill_and_names_the_override() -> None:
    with pytest.raises(Refused) as refused:
        choose("source server s-1", [_ri("i-0000000a", False, JOB_A)], None, False)
    assert str(refused.value) == (
        "refusing to check i-0000000a found by source server s-1: it is not a drill (isDrill "
        "false: launched by a recovery, not a drill); pass --dr-allow-non-drill to check "
        "non-drill instances on purpose")
    assert choose("source server s-1", [_ri("i-0000000a", False, JOB_A)], None,
                  True).instance_id == "i-0000000a"
    with pytest.raises(Refused, match="it is not a DRS recovery instance"):
        choose("tags Name=db01", [Candidate("i-0000000c", None)], None, False)


def test_guard_needs_the_job_when_several_drills_are_up() -> None:
    both = [_ri("i-0000000a", True, JOB_A), _ri("i-0000000b", True, JOB_B)]
    with pytest.raises(DiscoveryError, match=r"2 drill instances for source server s-1: "
                                             r"i-0000000a \(drill, job drsjob-a+\).*pass "
                                             r"--dr-drs-job=JOB to pick the drill"):
        choose("source server s-1", both, None, False)
    assert choose("source server s-1", both, JOB_B, False).instance_id == "i-0000000b"
    with pytest.raises(DiscoveryError, match=r"^no instance of drill job drsjob-c+ for source "
                                             r"server s-1 \(found i-0000000a"):
        choose("source server s-1", both, "drsjob-ccccccccccccccccc", False)


def test_guard_refuses_a_real_recovery_even_with_a_job() -> None:
    # Before: "no instance of drill job ..." hid that a real recovery is what is up.
    real = [_ri("i-0000000a", False, JOB_A)]
    with pytest.raises(Refused) as refused:
        choose("source server s-1", real, JOB_B, False)
    assert str(refused.value) == (
        "refusing to check i-0000000a found by source server s-1: it is not a drill (isDrill "
        f"false: launched by a recovery, not a drill), and no instance of drill job {JOB_B} is "
        "up; check --dr-drs-job")
    with pytest.raises(DiscoveryError, match=r"^no instance of drill job"):
        choose("source server s-1", real, JOB_B, True)


def test_guard_errors_are_could_not_observe() -> None:
    assert issubclass(DiscoveryError, CouldNotObserve) and issubclass(AwsError, CouldNotObserve)
    with pytest.raises(NoInstance):
        choose("source server s-1", [], None, False)


def test_guard_explains_no_instance() -> None:
    with pytest.raises(DiscoveryError, match=r"^no recovery instance found for source server "
                                             r"s-1 \(last drill: drsjob-a+, status FAILED\)$"):
        choose("source server s-1", [], None, False,
               f" (last drill: {JOB_A}, status FAILED)")


def test_source_addresses_primary_nic_first() -> None:
    server = {"sourceProperties": {"networkInterfaces": [
        {"ips": ["10.0.2.5"], "isPrimary": False}, {"ips": ["10.0.1.5", "10.0.1.6"],
                                                    "isPrimary": True}]}}
    assert source_addresses(server) == ["10.0.1.5", "10.0.1.6", "10.0.2.5"]
    assert source_addresses({}) == []


def test_imds_probe_never_asks_for_credentials() -> None:
    command = imds_command("http://169.254.169.254/")
    assert "latest/api/token" in command and "X-aws-ec2-metadata-token" in command
    assert "security-credentials/ " in command + " "  # the listing only, never a role's keys
    arn, roles = parse_imds('{"Code": "Success", "InstanceProfileArn": "arn:aws:iam::1:'
                            'instance-profile/p"}\n--drcheck-imds--\ndr-app\n')
    assert (arn, roles) == ("arn:aws:iam::1:instance-profile/p", ["dr-app"])
    assert parse_imds("garbage") == (None, [])


def test_clients_refuse_non_loopback_endpoints(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRCHECK_AWS_LOOPBACK_ONLY", "1")
    with pytest.raises(AwsError, match=r"^refusing the drs endpoint "
                                       r"https://drs.eu-west-1.amazonaws.com: "
                                       r"DRCHECK_AWS_LOOPBACK_ONLY is set"):
        AwsClients(AwsSettings(region="eu-west-1")).client("drs")
    local = AwsClients(AwsSettings(region="eu-west-1", endpoint_url="http://127.0.0.1:9"))
    assert local.client("drs").meta.endpoint_url == "http://127.0.0.1:9"


def test_every_client_has_timeouts_and_bounded_retries() -> None:
    settings = AwsSettings(region="eu-west-1", endpoint_url="http://127.0.0.1:9",
                           connect_timeout=3, read_timeout=7, max_attempts=2)
    config = AwsClients(settings).client("ec2").meta.config
    assert (config.connect_timeout, config.read_timeout) == (3, 7)
    assert config.retries == {"total_max_attempts": 2, "mode": "standard"}


def test_unreachable_endpoint_is_one_line() -> None:
    clients = AwsClients(AwsSettings(region="eu-west-1", endpoint_url="http://127.0.0.1:9",
                                     connect_timeout=1, max_attempts=1))
    with pytest.raises(AwsError) as caught:
        clients.call("drs", "describe_source_servers")
    message = str(caught.value)
    assert message.startswith("DescribeSourceServers: cannot reach the AWS endpoint")
    assert "\n" not in message
