"""The ssm target on a Windows instance: AWS-RunPowerShellScript carrying the PowerShell batch.

The local endpoint validates every request against botocore's SSM model; its agent answers the
batch through tests/targets/fake_windows (recorded answers, no PowerShell on this machine): the
document, the framing, Run Command's 24,000-character limit and re-sending are proven here, a
real agent's PowerShell is not.
"""

from __future__ import annotations

from typing import Any

import pytest

from pytest_drcheck.aws.clients import AwsClients
from pytest_drcheck.aws.inventory import AwsSettings
from pytest_drcheck.targets.base import TargetError
from pytest_drcheck.targets.ssm import SsmSettings, SsmTarget
from tests.aws.conftest import REGION
from tests.aws.fakeaws import FakeAws
from tests.targets.fake_windows import Answer

INSTANCE = "i-0aaaabbbbccccdddd"


def windows_target(fake: FakeAws) -> SsmTarget:
    clients = AwsClients(AwsSettings(region=REGION, endpoint_url=fake.url, read_timeout=5,
                                     max_attempts=2))

    def call(operation: str, **params: Any) -> Any:
        return clients.call("ssm", operation, **params)

    return SsmTarget(SsmSettings("win01", INSTANCE, call, 2.0, poll_initial=0.05, poll_max=0.2,
                                 platform="windows"))


@pytest.fixture
def windows(fake: FakeAws) -> FakeAws:
    fake.ssm_instances[INSTANCE] = {"PingStatus": "Online", "PlatformType": "Windows"}
    return fake


def test_one_powershell_run_command_for_the_batch(windows: FakeAws) -> None:
    windows.windows_answers.update({
        "Get-Service -Name 'W32Time' | ConvertTo-Json": Answer(0, '{"Status":4}\n'),
        "w32tm /query /status": Answer(0, "Leap Indicator: 0(no warning)\n"),
        "slow": Answer(0, "late", seconds=30)})
    target = windows_target(windows)
    windows.calls.clear()
    results = target.run_batch([*windows.windows_answers, "Get-Nothing"], timeout=1)
    assert [(r.exit_status, r.stdout) for r in results[:2]] == [
        (0, '{"Status":4}\n'), (0, "Leap Indicator: 0(no warning)\n")]
    assert results[2].timed_out and results[3].missing
    assert windows.calls.count(("ssm", "SendCommand")) == 1
    (sent,) = windows.ssm_commands.values()
    assert (sent["DocumentName"], sent["PluginName"]) == ("AWS-RunPowerShellScript",
                                                          "aws:runPowerShellScript")


def test_output_past_the_inline_limit_is_resent_in_parts(windows: FakeAws) -> None:
    big = {f"Get-Big {i}": Answer(0, "a" * 7000) for i in range(4)}  # ~9,400 base64 each
    windows.windows_answers.update(big)
    target = windows_target(windows)
    windows.calls.clear()
    results = target.run_batch(list(big), timeout=10)
    assert [len(r.stdout) for r in results] == [7000] * 4
    assert windows.calls.count(("ssm", "SendCommand")) > 1


def test_a_windows_agent_with_a_linux_inventory_host_is_refused(windows: FakeAws) -> None:
    windows.ssm_instances[INSTANCE]["PlatformType"] = "Linux"
    with pytest.raises(TargetError, match="runs Linux but the inventory says platform: windows "
                                          r"\(AWS-RunPowerShellScript\); set the host's "
                                          "platform to linux"):
        windows_target(windows).connect()


def test_moto_accepts_the_powershell_document(fake: FakeAws) -> None:
    """moto (server mode) takes AWS-RunPowerShellScript and answers Success, running nothing:
    a batch whose frames never came back is 'did not run', never an empty success."""
    import boto3

    fake.ssm_mode = "moto"
    ec2 = boto3.client("ec2", endpoint_url=fake.moto_url, region_name=REGION)
    instance = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1
                                 )["Instances"][0]["InstanceId"]
    fake.ssm_instances[instance] = {"PingStatus": "Online", "PlatformType": "Windows"}
    clients = AwsClients(AwsSettings(region=REGION, endpoint_url=fake.url, max_attempts=2))
    target = SsmTarget(SsmSettings("win01", instance,
                                   lambda op, **p: clients.call("ssm", op, **p), 2,
                                   poll_initial=0.05, platform="windows"))
    (result,) = target.run_batch(["Get-Date"], 10)
    assert result.batch_failed and result.stderr == "no output came back from the batch"
    assert ("ssm", "AmazonSSM.SendCommand") in fake.calls  # forwarded to moto
