"""instance_os on Linux, for real: this machine's kernel banner and curl to the local IMDS
(IMDSv2 token, then the instance type), judged by drs_instance_type's judge."""

from __future__ import annotations

from pytest_drcheck.aws.checks.instance_os import InstanceOsCheck
from pytest_drcheck.checks.base import CheckContext
from pytest_drcheck.model import Location, Outcome, PlanItem, freeze
from pytest_drcheck.targets.local import LocalTarget
from tests.aws.fakeaws import FakeAws

CHECK = InstanceOsCheck()


def item(imds: str) -> PlanItem:
    (subject,) = CHECK.expand({"imds_endpoint": imds}, {})
    return PlanItem("app01", "instance_os", subject.name, freeze(subject.params),
                    Location("site.yaml", 1, "hosts.app01.checks.instance_os[0]"), 10.0)


def test_this_kernel_on_a_nitro_type_through_imdsv2(fake: FakeAws) -> None:
    fake.imds = {"instance_type": "m5.large"}
    planned = item(fake.url)
    target = LocalTarget("app01")
    outputs = target.run_batch(list(CHECK.commands(planned)), 10)
    ctx = CheckContext(planned, target, outputs, 10, lambda name: target, command_timeout=10)
    value = CHECK.observe(ctx)
    assert (value.instance_type, value.nitro, value.origin) == ("m5.large", True,
                                                                "instance metadata")
    assert value.os_name.startswith("Linux version ")
    verdict = CHECK.judge(planned, value)
    assert verdict.outcome is Outcome.PASSED, verdict.reason
    assert verdict.observed.startswith("m5.large (nitro) for kernel ")
