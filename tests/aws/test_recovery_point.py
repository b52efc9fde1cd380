"""The aws extra answers the rpo check's recovery point through the target seam
(``recovery_point``), from DRS's point-in-time snapshot of the recovery instance."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest

from pytest_drcheck.aws.discovery import Found
from pytest_drcheck.aws.guard import DiscoveryError
from pytest_drcheck.aws.run import AwsHostTarget
from pytest_drcheck.inventory.plan import ConnectionSpec, HostSpec
from pytest_drcheck.recoverypoint import KnowsRecoveryPoint
from pytest_drcheck.targets.base import TargetError

SPEC = HostSpec("app01", None, ConnectionSpec(type="ssm"), (),
                aws={"drs": {"source_server_id": "s-1234567890abcdef0"}})


class Discovered:
    def __init__(self, recovery: dict[str, Any] | None, error: str = "") -> None:
        self.recovery, self.error = recovery, error

    def found(self, host: str, timeout: float) -> Found:
        if self.error:
            raise DiscoveryError(self.error)
        return Found(host, {"InstanceId": "i-0abc"}, self.recovery, None)


def target(aws: Discovered, spec: HostSpec = SPEC) -> AwsHostTarget:
    return AwsHostTarget(spec, aws, lambda name: None)  # type: ignore[arg-type,return-value]


def test_the_point_in_time_snapshot_is_the_recovery_point() -> None:
    host = target(Discovered({"pointInTimeSnapshotDateTime": "2024-05-01T09:59:00Z"}))
    assert isinstance(host, KnowsRecoveryPoint)
    point = host.recovery_point(1.0)
    assert point is not None
    assert point.at == datetime(2024, 5, 1, 9, 59, tzinfo=timezone.utc)
    assert point.source == "DRS point-in-time snapshot of i-0abc"


@pytest.mark.parametrize("recovery", [None, {}, {"pointInTimeSnapshotDateTime": "soon"}])
def test_without_one_drs_does_not_say(recovery: dict[str, Any] | None) -> None:
    assert target(Discovered(recovery)).recovery_point(1.0) is None


def test_a_host_not_found_in_aws_has_none() -> None:
    plain = HostSpec("app01", "10.0.0.1", ConnectionSpec(), ())
    assert target(Discovered(None, "never asked"), plain).recovery_point(1.0) is None


def test_discovery_failing_is_a_target_error_naming_it() -> None:
    with pytest.raises(TargetError, match="no recovery instance yet"):
        target(Discovered(None, "no recovery instance yet")).recovery_point(1.0)
