"""iam_role: judge for every property, without AWS; the imds probe's outputs as observed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from pytest_drcheck.aws.checks.iam import IamRole, IamRoleCheck, Imds
from pytest_drcheck.checks.base import CheckContext
from pytest_drcheck.model import CouldNotObserve, Outcome
from pytest_drcheck.targets.base import CommandResult
from tests.aws.checks.items import items

PROFILE = "arn:aws:iam::123456789012:instance-profile/dr-app"
ROLE = "arn:aws:iam::123456789012:role/dr-app"


def role(**changes: Any) -> IamRole:
    value: dict[str, Any] = {"instance_id": "i-1", "profile_arn": PROFILE, "roles": (ROLE,)}
    value.update(changes)
    return IamRole(**value)


def test_profile() -> None:
    check = IamRoleCheck()
    subjects = items(check, {"role": "dr-app"})
    assert check.judge(subjects["profile"], role()).observed == (
        "instance profile dr-app with role dr-app")
    other = items(check, {"role": "prod-app"})["profile"]
    assert check.judge(other, role()).reason == (
        "expected role prod-app, observed instance profile dr-app with role dr-app")
    none = check.judge(subjects["profile"], role(profile_arn=None, roles=()))
    assert none.reason == ("i-1 has no instance profile attached; attach one with the role "
                           "post-launch actions and applications need")
    empty = check.judge(subjects["profile"], role(roles=()))
    assert empty.reason == "instance profile dr-app of i-1 has no role"


def decision(resource: str, verdict: str, *sources: str) -> dict[str, Any]:
    return {"EvalResourceName": resource, "EvalDecision": verdict,
            "MatchedStatements": [{"SourcePolicyId": s} for s in sources]}


def test_allow_and_deny() -> None:
    check = IamRoleCheck()
    subjects = items(check, {"allow": ["s3:GetObject"], "deny": ["iam:CreateUser"]})
    allowed = role(decisions={"*": decision("*", "allowed")})
    denied = role(decisions={"*": decision("*", "explicitDeny", "guard")})
    implicit = role(decisions={"*": decision("*", "implicitDeny")})
    assert check.judge(subjects["allow:s3:GetObject"], allowed).outcome is Outcome.PASSED
    assert check.judge(subjects["allow:s3:GetObject"], denied).reason == (
        "role dr-app may not s3:GetObject on *: *: explicitly denied by guard; grant it to the "
        "role")
    assert check.judge(subjects["allow:s3:GetObject"], implicit).reason == (
        "role dr-app may not s3:GetObject on *: *: implicitDeny (no policy of the role allows "
        "it); grant it to the role")
    assert check.judge(subjects["deny:iam:CreateUser"], implicit).outcome is Outcome.PASSED
    assert check.judge(subjects["deny:iam:CreateUser"], allowed).reason == (
        "role dr-app is allowed iam:CreateUser on *, which it must not be; remove it from the "
        "role's policies")


@pytest.mark.parametrize(("imds", "outcome", "reason"), [
    (Imds(PROFILE, ("dr-app",)), Outcome.PASSED, ""),
    (Imds(PROFILE, ("prod-app",)), Outcome.FAILED,
     "IMDSv2 on the instance names role prod-app, but its instance profile carries role dr-app"),
    (Imds("arn:aws:iam::1:instance-profile/x", ("dr-app",)), Outcome.FAILED,
     f"IMDSv2 names instance profile arn:aws:iam::1:instance-profile/x, EC2 says {PROFILE}"),
    (Imds(failure="the metadata service lists no role credentials"), Outcome.FAILED,
     "the metadata service lists no role credentials"),
])
def test_imds(imds: Imds, outcome: Outcome, reason: str) -> None:
    check = IamRoleCheck()
    verdict = check.judge(items(check, {})["imds"], role(imds=imds))
    assert (verdict.outcome, verdict.reason) == (outcome, reason)


def context(results: Sequence[CommandResult]) -> CheckContext:
    item = items(IamRoleCheck(), {})["imds"]
    return CheckContext(item, None, results, 30.0, lambda name: None,  # type: ignore[arg-type]
                        command_timeout=10.0)


def test_imds_probe_outputs_as_observed() -> None:
    probe = IamRoleCheck._imds
    ok = probe(context([CommandResult("curl", 0, '{"InstanceProfileArn": "' + PROFILE +
                                      '"}\n--drcheck-imds--\ndr-app\n', "")]))
    assert ok == Imds(PROFILE, ("dr-app",))
    assert probe(context([CommandResult("curl", 3, "", "")])).failure.startswith(
        "the IMDSv2 token request failed")


@pytest.mark.parametrize(("result", "cause"), [
    (CommandResult("curl", 127, "", ""), "curl is not installed on app01 (the metadata probe "
                                         "needs it)"),
    (CommandResult("curl -sS", 124, "", "", timed_out=True), "`curl -sS` timed out after 10 s "
                                                             "on app01"),
    (CommandResult("curl", 7, "", "curl: (7) Failed to connect"),
     "`curl` failed on app01 (exit 7): curl: (7) Failed to connect"),
])
def test_imds_probe_could_not_observe(result: CommandResult, cause: str) -> None:
    with pytest.raises(CouldNotObserve) as caught:
        IamRoleCheck._imds(context([result]))
    assert str(caught.value) == cause
