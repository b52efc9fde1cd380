"""One drill run's live state: the plan, its engine and its targets. No pytest here."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from pytest_drcheck.engine import Engine, EngineSettings
from pytest_drcheck.inventory.plan import Plan
from pytest_drcheck.targets.factory import TargetFactory

if TYPE_CHECKING:
    from pytest_drcheck.aws.run import AwsOptions, AwsRun


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class DrillRun:
    plan: Plan
    settings: EngineSettings
    factory: TargetFactory = field(default_factory=TargetFactory)
    started_at: datetime = field(default_factory=utc_now)
    finished_at: datetime | None = None
    engine: Engine = field(init=False)
    # The aws extra's state, when the inventory uses AWS (see attach_aws).
    aws: AwsRun | None = None

    def __post_init__(self) -> None:
        self.engine = Engine(self.plan, self.factory, self.settings)

    def attach_aws(self, options: AwsOptions) -> AwsRun:
        """Find hosts in AWS and make their targets (imports boto3 only when first used)."""
        from pytest_drcheck.aws.run import AwsRun

        self.aws = AwsRun(self.plan, options, self.factory.plain,
                          workers=self.settings.workers)
        self.factory.providers.append(self.aws)
        return self.aws

    def close(self) -> None:
        self.finished_at = self.finished_at or utc_now()
        self.engine.close()
        self.factory.close()
        if self.aws is not None:
            self.aws.close()
