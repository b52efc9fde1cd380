"""What AWS-side check types share: they observe through the AWS APIs from the runner (no
connection to the instance needed, so they still explain a host that cannot be reached), they
need the host found in AWS, and a host that cannot be found or is refused by the drill guard
fails them with that reason. No boto3 import here: the registry loads check classes to build
the inventory schema on machines without the aws extra."""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from pytest_drcheck.checks.base import Check, CheckContext
from pytest_drcheck.model import Observation, PlanItem

if TYPE_CHECKING:
    from pytest_drcheck.aws.run import AwsHostTarget
    from pytest_drcheck.inventory.plan import HostSpec


class AwsCheck(Check[Any]):
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
        from pytest_drcheck.targets.base import TargetError

        target = ctx.target
        if not isinstance(target, AwsHostTarget):
            raise TargetError(f"{ctx.item.host} is not a host found in AWS (no drs:/ec2:)")
        return target

    def evaluate(self, ctx: CheckContext) -> Observation:
        from pytest_drcheck.aws.clients import AwsError
        from pytest_drcheck.aws.guard import DiscoveryError

        try:
            return self.observe_api(ctx, self.aws_target(ctx))
        except (AwsError, DiscoveryError) as exc:
            return Observation.failed(self.expectation(ctx.item), "not observed", str(exc))

    @abc.abstractmethod
    def expectation(self, item: PlanItem) -> str:
        """The expected value in words (also used when nothing could be observed)."""

    @abc.abstractmethod
    def observe_api(self, ctx: CheckContext, target: AwsHostTarget) -> Observation:
        """Observe through the APIs; AwsError/DiscoveryError become a failure with the reason."""
