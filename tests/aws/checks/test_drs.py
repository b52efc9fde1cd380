"""drs_replication, drs_launch, drs_instance_type: judge for every property, without AWS."""

from __future__ import annotations

import pytest

from pytest_drcheck.aws.checks.drs import (
    DrsInstanceTypeCheck,
    DrsLaunchCheck,
    DrsReplicationCheck,
    InstanceType,
    Launch,
    Replication,
)
from pytest_drcheck.model import Outcome
from tests.aws.checks.items import items

SOURCE = "s-00000000000000001 (app01)"
JOB = "drsjob-0000000000000000a"
EL7 = "Linux version 3.10.0-1160.90.1.el7.x86_64 (mockbuild@kbuilder.bsys.centos.org) (gcc 4.8.5)"
EL6 = "Linux version 2.6.32-754.35.1.el6.x86_64 (mockbuild@x86-01.bsys.centos.org) (gcc 4.4.7)"


def replication(state: str = "CONTINUOUS", lag: float | None = 30.0, error: str = "",
                rpo: float | None = 900.0) -> Replication:
    return Replication(SOURCE, state, lag, error, rpo)


def test_replication_state() -> None:
    check = DrsReplicationCheck()
    state = items(check, {})["state"]
    assert check.judge(state, replication()).outcome is Outcome.PASSED
    failed = check.judge(state, replication("STALLED", error=" (error AGENT_NOT_SEEN: silent)"))
    assert failed.outcome is Outcome.FAILED
    assert failed.reason == (f"expected replication continuous for source server {SOURCE}, "
                             "observed stalled (error AGENT_NOT_SEEN: silent)")
    either = items(check, {"states": ["CONTINUOUS", "BACKLOG"]})["state"]
    assert check.judge(either, replication("BACKLOG")).observed == "backlog"


def test_replication_lag_against_rpo_and_max_lag() -> None:
    check = DrsReplicationCheck()
    lag = items(check, {})["lag"]
    assert check.judge(lag, replication(lag=120)).observed == "lag 2 min"
    late = check.judge(lag, replication("BACKLOG", lag=3720))
    assert late.outcome is Outcome.FAILED
    assert late.reason == (f"expected lag at most 15 min (RPO), observed lag 62 min for source "
                           f"server {SOURCE}: 47 min of changes would be lost")
    tight = items(check, {"max_lag": "1m"})["lag"]
    assert check.judge(tight, replication(lag=120)).expected == "lag at most 60 s (max_lag)"
    assert check.judge(lag, replication(lag=None)).observed == "no lag (continuous)"
    unknown = check.judge(lag, replication("STALLED", lag=None))
    assert unknown.outcome is Outcome.FAILED
    assert unknown.reason.endswith(f"observed no lag figure while replication of {SOURCE} is "
                                   "stalled")


def launch(status: str = "LAUNCHED", runs: tuple[dict[str, object], ...] = (),
           agent: str | None = "2024-05-01T10:05:00Z", failure: str = "") -> Launch:
    return Launch(SOURCE, JOB, "START_DRILL", status, "i-0123456789abcdef0", failure, runs,
                  agent)


def run(name: str, status: str, reason: str = "") -> dict[str, object]:
    return {"action": {"name": name, "actionCode": "AWS-RunShellScript"}, "status": status,
            "failureReason": reason}


def test_launch_status() -> None:
    check = DrsLaunchCheck()
    subject = items(check, {})["launch"]
    assert check.judge(subject, launch()).observed == f"launched i-0123456789abcdef0 (job {JOB})"
    failed = check.judge(subject, launch("FAILED", failure="LAUNCH_FAILED: no capacity"))
    assert failed.reason == (f"the launch of {SOURCE} in job {JOB} failed: LAUNCH_FAILED: no "
                             "capacity")
    pending = check.judge(subject, launch("IN_PROGRESS"))
    assert (pending.outcome, pending.observed) == (Outcome.FAILED, "in_progress")


def test_post_launch_actions_require_the_launch() -> None:
    check = DrsLaunchCheck()
    subjects = items(check, {"actions": ["join-domain"]})
    assert subjects["post_launch"].requires == ("drs_launch[launch]",)
    assert subjects["launch"].requires == ()


@pytest.mark.parametrize(("runs", "agent", "outcome", "reason"), [
    ((run("join-domain", "SUCCEEDED"),), "t", Outcome.PASSED, ""),
    ((), None, Outcome.FAILED, "post-launch action 'join-domain' did not run (the SSM agent was "
                               "never discovered on the instance: post-launch actions need it)"),
    ((run("join-domain", "FAILED", "domain unreachable"),), "t", Outcome.FAILED,
     "post-launch action 'join-domain' (AWS-RunShellScript) failed: domain unreachable"),
    ((run("join-domain", "IN_PROGRESS"),), "t", Outcome.FAILED,
     "post-launch action 'join-domain' (AWS-RunShellScript) is in progress"),
])
def test_post_launch_actions(runs: tuple[dict[str, object], ...], agent: str | None,
                             outcome: Outcome, reason: str) -> None:
    check = DrsLaunchCheck()
    subject = items(check, {"actions": ["join-domain"]})["post_launch"]
    verdict = check.judge(subject, launch(runs=runs, agent=agent))
    assert (verdict.outcome, verdict.reason) == (outcome, reason)


def test_no_post_launch_action_is_a_skip() -> None:
    check = DrsLaunchCheck()
    verdict = check.judge(items(check, {})["post_launch"], launch())
    assert (verdict.outcome, verdict.reason) == (Outcome.SKIPPED,
                                                 f"no post-launch action ran in job {JOB}")


@pytest.mark.parametrize(("value", "outcome", "decided_by"), [
    (InstanceType("m5.large", "launched i-1", True, EL7, True), Outcome.PASSED,
     "DRS supportsNitroInstances"),
    (InstanceType("m5.large", "launched i-1", True, EL7, None), Outcome.PASSED,
     "kernel release"),
    (InstanceType("m5.large", "launched i-1", True, EL7, False), Outcome.FAILED,
     "DRS supportsNitroInstances"),
    (InstanceType("c5.large", "launched i-1", True, EL6, True), Outcome.FAILED,
     "kernel release"),
    (InstanceType("m4.large", "launched i-1", False, EL6, False), Outcome.PASSED,
     "instance type (Xen)"),
])
def test_instance_type_against_the_source_os(value: InstanceType, outcome: Outcome,
                                             decided_by: str) -> None:
    check = DrsInstanceTypeCheck()
    verdict = check.judge(items(check, {"of": "launched"})["launched"], value)
    assert verdict.outcome is outcome
    assert verdict.details["decided_by"] == decided_by
    if outcome is Outcome.FAILED:
        assert verdict.reason.startswith("launched i-1: ")
