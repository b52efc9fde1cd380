"""instance_os on Windows: the WMI caption and the IMDS instance type, judged by
drs_instance_type's judge (Windows Server 2008 and earlier do not boot on Nitro)."""

from __future__ import annotations

import pytest

from pytest_drcheck.aws.checks.instance_os import InstanceOsCheck
from pytest_drcheck.checks.windows import instance_os as windows
from pytest_drcheck.model import Outcome
from tests.checks.windows.helpers import evaluate, windows_item
from tests.targets.fake_windows import Answer

CHECK = InstanceOsCheck()
IMDS = "http://169.254.169.254"


@pytest.mark.parametrize(("caption", "instance_type", "outcome"), [
    ("Microsoft Windows Server 2008 Standard ", "m5.large", Outcome.FAILED),
    ("Microsoft Windows Server 2008 R2 Datacenter ", "m5.large", Outcome.PASSED),
    ("Microsoft Windows Server 2008 Standard ", "m4.large", Outcome.PASSED),
    ("Microsoft Windows Server 2022 Datacenter", "c7i.xlarge", Outcome.PASSED),
])
def test_caption_against_the_instance_type(caption: str, instance_type: str,
                                           outcome: Outcome) -> None:
    item = windows_item(CHECK, "nitro", {})
    assert list(CHECK.commands(item)) == list(windows.commands(IMDS))
    verdict = evaluate(CHECK, item, {windows.OS_COMMAND: Answer(0, caption + "\r\n"),
                                     windows.instance_type_command(IMDS): Answer(
                                         0, instance_type)})
    assert verdict.outcome is outcome
    if outcome is Outcome.FAILED:
        assert "falls under 'Windows Server 2008 and earlier do not boot on Nitro'" in (
            verdict.reason)


def test_the_imds_calls_use_a_v2_token() -> None:
    command = windows.instance_type_command("http://169.254.169.254/")
    assert "UploadString('http://169.254.169.254' + '/latest/api/token', 'PUT', '')" in command
    assert "Headers.Add('X-aws-ec2-metadata-token', $t)" in command
