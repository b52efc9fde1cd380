"""What AWS-side check types share: they observe through the AWS APIs from the runner (no
connection to the instance needed, so they still explain a host that cannot be reached) and
need the host found in AWS.

Observing: an API call that failed or timed out (``AwsError``), a host that cannot be found or
that the drill guard refused (``DiscoveryError``, ``Refused``) are all ``CouldNotObserve``: the
engine reports them as errors naming the call, the endpoint or the refusal. So a refused host
never shows green, its source server's checks included. Judging is pure, per family.

No boto3 import here: the registry loads check classes to build the inventory schema on
machines without the aws extra.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from pytest_drcheck.checks.base import Check, CheckContext
from pytest_drcheck.model import CouldNotObserve, PlanItem

if TYPE_CHECKING:
    from pytest_drcheck.aws.run import AwsHostTarget
    from pytest_drcheck.inventory.plan import HostSpec

ValueT = TypeVar("ValueT")


class AwsCheck(Check[ValueT]):
    # Whether every entry needs the host found in AWS (drs: or ec2:).
    needs_aws_host: ClassVar[bool] = True
    # API calls from the runner cost the host nothing: the engine's larger pool.
    light: ClassVar[bool] = True

    def needs_connection(self, item: PlanItem) -> bool:
        return False

    def plan_problem(self, item: PlanItem, host: HostSpec, drill: Mapping[str, Any]
                     ) -> str | None:
        """A mistake only visible with the whole inventory (the message: problem and fix)."""
        if self.needs_aws_host and not host.aws:
            return (f"the {self.type_name} check needs host {item.host} found in AWS; add "
                    "drs: {source_server_id: ...} or ec2: {instance_id: ...} to the host")
        return None

    @staticmethod
    def aws_target(ctx: CheckContext) -> AwsHostTarget:
        from pytest_drcheck.aws.run import AwsHostTarget

        target = ctx.target
        if not isinstance(target, AwsHostTarget):
            raise CouldNotObserve(f"{ctx.item.host} is not a host found in AWS (no drs:/ec2:)")
        return target
