"""instance_os: the operating system the instance itself reports boots on the instance type it
itself reports (its instance metadata), judged as ``drs_instance_type`` judges DRS's record:
Nitro types need NVMe and ENA drivers, which RHEL/CentOS 6 and earlier and Windows Server 2008
and earlier lack (``aws.ostype``).

Observed on the instance, so it also covers instances DRS does not describe (a replacement
launched by hand, an EC2 host outside DRS). Linux: the kernel banner (``/proc/version``, whose
release says el6/el7) and IMDSv2 through curl; Windows: ``Win32_OperatingSystem``'s Caption
and IMDSv2 through .NET's WebClient (``checks/windows/instance_os.py``; Windows PowerShell 2.0
suffices, which Windows Server 2008 R2 ships).
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from pytest_drcheck.aws.checks.drs import DrsInstanceTypeCheck, InstanceType
from pytest_drcheck.checks.base import Check, CheckContext, Subject
from pytest_drcheck.inventory import vocabulary
from pytest_drcheck.model import CouldNotObserve, Observation, PlanItem

IMDS = "http://169.254.169.254"
ORIGIN = "instance metadata"


def linux_commands(imds: str) -> tuple[str, ...]:
    base = shlex.quote(imds.rstrip("/"))
    return ("cat /proc/version",
            f"t=$(curl -sf -m 3 -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' "
            f"{base}/latest/api/token) && curl -sf -m 3 -H \"X-aws-ec2-metadata-token: $t\" "
            f"{base}/latest/meta-data/instance-type")


class InstanceOsCheck(Check[InstanceType]):
    type_name: ClassVar[str] = "instance_os"
    default_timeout: ClassVar[float] = 15.0
    entry_schema: ClassVar[Mapping[str, Any]] = {
        "properties": {"imds_endpoint": vocabulary.URL},
    }

    def expand(self, entry: Mapping[str, Any], site: Mapping[str, Any]) -> list[Subject]:
        return [Subject("nitro", {"imds": entry.get("imds_endpoint", IMDS)})]

    def commands(self, item: PlanItem) -> Sequence[str]:
        if item.platform == "windows":
            from pytest_drcheck.checks.windows import instance_os as windows

            return windows.commands(str(item.params["imds"]))
        return linux_commands(str(item.params["imds"]))

    def expected(self, item: PlanItem) -> str:
        return DrsInstanceTypeCheck().expected(item)

    def observe(self, ctx: CheckContext) -> InstanceType:
        from pytest_drcheck.aws import ostype

        os_name = " ".join(ctx.output(0).stdout.split())
        instance_type = ctx.output(1).stdout.strip()
        if not os_name or not instance_type:
            raise CouldNotObserve(f"{ctx.item.host} reported no "
                                  f"{'OS' if not os_name else 'instance type'}")
        return InstanceType(instance_type, ORIGIN, ostype.is_nitro(instance_type), os_name,
                            None)

    def judge(self, item: PlanItem, value: InstanceType) -> Observation:
        return DrsInstanceTypeCheck().judge(item, value)
