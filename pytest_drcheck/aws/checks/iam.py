"""iam_role: the recovery instance's IAM role, as post-launch scripts and applications need it.

profile         an instance profile is attached, with the expected role
allow:ACTION    the role may do ACTION on the given resources (IAM policy simulation, which
                weighs identity policies, permission boundaries and organisation SCPs)
deny:ACTION     the role may not
imds            from the instance itself (through its target) the metadata service answers
                IMDSv2 and names that role, i.e. software on the instance really gets it

The imds probe lists role names only (``iam/security-credentials/``); it never requests the
credentials themselves, so no secret crosses the connection.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from pytest_drcheck.aws.checks.base import AwsCheck
from pytest_drcheck.checks.base import CheckContext, ExpansionError, Subject
from pytest_drcheck.inventory import vocabulary
from pytest_drcheck.model import CouldNotObserve, Observation, PlanItem

if TYPE_CHECKING:
    from pytest_drcheck.aws.run import AwsRun

IMDS = "http://169.254.169.254"
_ACTION = {"type": "string", "pattern": r"\A[A-Za-z0-9-]{1,64}:[A-Za-z0-9*?]{1,128}\Z",
           "x-expect": "an IAM action such as s3:GetObject"}
_MARK = "--drcheck-imds--"
_CURL_MISSING = 127
# Exit statuses of the imds probe that are observations (the instance does not get the role
# from its metadata service), and what they mean.
_IMDS_FAILURES = {
    3: "the IMDSv2 token request failed (metadata service disabled, IMDSv2 hop limit too "
       "low, or not an EC2 instance)",
    4: "the metadata service has no IAM information (no instance profile as the instance "
       "sees it)",
    5: "the metadata service lists no role credentials",
}


def imds_command(base: str) -> str:
    b = shlex.quote(base.rstrip("/"))
    curl = "curl -sS -m 3 -f"
    return (
        "command -v curl >/dev/null 2>&1 || exit 127; "
        f"T=$({curl} -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' "
        f"{b}/latest/api/token) || exit 3; "
        f"{curl} -H \"X-aws-ec2-metadata-token: $T\" {b}/latest/meta-data/iam/info || exit 4; "
        f"echo; echo {_MARK}; "
        f"{curl} -H \"X-aws-ec2-metadata-token: $T\" "
        f"{b}/latest/meta-data/iam/security-credentials/ || exit 5"
    )


def parse_imds(stdout: str) -> tuple[str | None, list[str]]:
    """(instance profile ARN from iam/info, role names listed by security-credentials/)."""
    info_text, _, roles_text = stdout.partition(_MARK)
    try:
        info = json.loads(info_text.strip() or "{}")
    except ValueError:
        info = {}
    arn = info.get("InstanceProfileArn") if isinstance(info, dict) else None
    return arn, [line.strip() for line in roles_text.splitlines() if line.strip()]


def _name_of(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Imds:
    """What the metadata service told the instance: an answer, or why there was none."""

    profile_arn: str | None = None
    roles: tuple[str, ...] = ()
    # One of _IMDS_FAILURES' texts when the probe got no IAM answer.
    failure: str = ""


@dataclass(frozen=True)
class IamRole:
    """The instance's profile and role as IAM has them, and what was asked of them."""

    instance_id: str
    profile_arn: str | None
    # Role ARNs of the instance profile (empty: a profile without a role).
    roles: tuple[str, ...] = ()
    # allow:/deny: subjects: the simulation's results for the action, by resource.
    decisions: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    imds: Imds | None = None


class IamRoleCheck(AwsCheck[IamRole]):
    type_name: ClassVar[str] = "iam_role"
    default_timeout: ClassVar[float] = 30.0
    entry_schema: ClassVar[Mapping[str, Any]] = {
        "properties": {
            "role": {"type": "string", "minLength": 1,
                     "x-expect": "the role name the instance profile must carry"},
            "allow": {"type": "array", "items": _ACTION, "uniqueItems": True},
            "deny": {"type": "array", "items": _ACTION, "uniqueItems": True},
            "resources": {"type": "array", "minItems": 1, "uniqueItems": True,
                          "items": {"type": "string", "pattern": r"\A(\*|arn:\S{1,2048})\Z",
                                    "x-expect": "a resource ARN or *"}},
            "imds": {"type": "boolean"},
            "imds_endpoint": {**vocabulary.URL,
                              "x-expect": "the metadata service URL, e.g. "
                                          "http://[fd00:ec2::254] for IPv6"},
        },
    }

    def expand(self, entry: Mapping[str, Any], site: Mapping[str, Any]) -> list[Subject]:
        allow, deny = list(entry.get("allow", [])), list(entry.get("deny", []))
        both = sorted(set(allow) & set(deny))
        if both:
            raise ExpansionError(f"{both[0]} is both in allow and deny; keep one", ".deny")
        common = {"role": entry.get("role"), "resources": list(entry.get("resources", ["*"])),
                  "actions": sorted(allow + deny)}
        subjects = [Subject("profile", {**common, "property": "profile"})]
        if entry.get("imds", True):
            subjects.append(Subject("imds", {**common, "property": "imds",
                                             "endpoint": entry.get("imds_endpoint", IMDS)}))
        subjects += [Subject(f"allow:{a}", {**common, "property": "allow", "action": a})
                     for a in allow]
        subjects += [Subject(f"deny:{a}", {**common, "property": "deny", "action": a})
                     for a in deny]
        return subjects

    def needs_connection(self, item: PlanItem) -> bool:
        return bool(item.params["property"] == "imds")

    def commands(self, item: PlanItem) -> Sequence[str]:
        if item.params["property"] == "imds":
            return (imds_command(item.params["endpoint"]),)
        return ()

    def expected(self, item: PlanItem) -> str:
        prop = item.params["property"]
        role = item.params["role"] or "the instance profile's role"
        if prop == "profile":
            return f"an instance profile with role {role}"
        if prop == "imds":
            return f"IMDSv2 names role {role}"
        return f"{item.params['action']} {'allowed' if prop == 'allow' else 'denied'}"

    def observe(self, ctx: CheckContext) -> IamRole:
        aws = self.aws_target(ctx).aws
        found = self.aws_target(ctx).found(ctx.timeout)
        prop = ctx.params["property"]
        profile_arn = found.instance_profile_arn
        if not profile_arn:
            return IamRole(found.instance_id, None)
        profile_name = _name_of(profile_arn)
        roles = tuple(aws.memo(("iam-profile", profile_name),
                               lambda: self._profile_roles(aws, profile_name)))
        value = IamRole(found.instance_id, profile_arn, roles)
        if not roles:
            return value
        if prop == "imds":
            return IamRole(found.instance_id, profile_arn, roles, imds=self._imds(ctx))
        if prop in ("allow", "deny"):
            return IamRole(found.instance_id, profile_arn, roles,
                           self._simulate(ctx, aws, roles[0]))
        return value

    def judge(self, item: PlanItem, value: IamRole) -> Observation:
        prop = item.params["property"]
        expected = self.expected(item)
        if not value.profile_arn:
            return Observation.failed(expected, "no instance profile", (
                f"{value.instance_id} has no instance profile attached; attach one with the "
                "role post-launch actions and applications need"))
        profile_name = _name_of(value.profile_arn)
        if not value.roles:
            return Observation.failed(expected, f"profile {profile_name} without role", (
                f"instance profile {profile_name} of {value.instance_id} has no role"))
        role_arn = value.roles[0]
        role = _name_of(role_arn)
        wanted = item.params["role"]
        details = {"instance_profile": value.profile_arn, "role": role_arn}
        if prop == "profile":
            observed = f"instance profile {profile_name} with role {role}"
            if wanted and wanted != role:
                return Observation.failed(expected, observed, (
                    f"expected role {wanted}, observed {observed}"), **details)
            return Observation.passed(expected, observed, **details)
        if prop == "imds":
            return self._judge_imds(item, value, role, expected, details)
        return self._judge_simulation(item, value, role, expected, details)

    @staticmethod
    def _profile_roles(aws: AwsRun, profile_name: str) -> list[str]:
        profile = aws.clients.call("iam", "get_instance_profile",
                                   InstanceProfileName=profile_name)["InstanceProfile"]
        return [str(r["Arn"]) for r in profile.get("Roles", [])]

    @staticmethod
    def _simulate(ctx: CheckContext, aws: AwsRun, role_arn: str
                  ) -> dict[str, Mapping[str, Any]]:
        actions: tuple[str, ...] = tuple(ctx.params["actions"])
        resources: tuple[str, ...] = tuple(ctx.params["resources"])

        def simulate() -> list[Mapping[str, Any]]:
            return list(aws.clients.pages(
                "iam", "simulate_principal_policy", "EvaluationResults",
                PolicySourceArn=role_arn, ActionNames=list(actions),
                ResourceArns=list(resources)))

        # One simulation for all of an entry's actions.
        results = aws.memo(("iam-simulate", role_arn, actions, resources), simulate)
        action = ctx.params["action"]
        decisions = {str(r.get("EvalResourceName", "*")): r for r in results
                     if str(r.get("EvalActionName", "")).lower() == action.lower()}
        if not decisions:
            raise CouldNotObserve(f"the policy simulation returned no decision for {action}")
        return decisions

    @staticmethod
    def _judge_simulation(item: PlanItem, value: IamRole, role: str, expected: str,
                          details: Mapping[str, Any]) -> Observation:
        decisions = value.decisions
        action = item.params["action"]
        shown = ", ".join(f"{res}: {r.get('EvalDecision')}" for res, r in
                          sorted(decisions.items())) if len(decisions) > 1 else str(
            next(iter(decisions.values())).get("EvalDecision"))
        allowed = all(r.get("EvalDecision") == "allowed" for r in decisions.values())
        on = ", ".join(item.params["resources"])
        full = {**details, "decisions": {k: v.get("EvalDecision") for k, v in decisions.items()}}
        if item.params["property"] == "allow":
            if allowed:
                return Observation.passed(expected, shown, **full)
            why = []
            for res, r in sorted(decisions.items()):
                decision = r.get("EvalDecision")
                if decision == "explicitDeny":
                    sources = sorted({str(s.get("SourcePolicyId", "?"))
                                      for s in r.get("MatchedStatements", [])})
                    why.append(f"{res}: explicitly denied"
                               f"{' by ' + ', '.join(sources) if sources else ''}")
                elif decision != "allowed":
                    why.append(f"{res}: {decision} (no policy of the role allows it)")
            return Observation.failed(expected, shown, (
                f"role {role} may not {action} on {on}: {'; '.join(why)}; grant it to the "
                "role"), **full)
        if not any(r.get("EvalDecision") == "allowed" for r in decisions.values()):
            return Observation.passed(expected, shown, **full)
        return Observation.failed(expected, shown, (
            f"role {role} is allowed {action} on {on}, which it must not be; remove it from "
            "the role's policies"), **full)

    @staticmethod
    def _imds(ctx: CheckContext) -> Imds:
        result = ctx.output(0, accept=(0, _CURL_MISSING, *_IMDS_FAILURES))
        if result.exit_status == _CURL_MISSING:
            raise CouldNotObserve(f"curl is not installed on {ctx.item.host} (the metadata "
                                  "probe needs it)")
        if result.exit_status != 0:
            return Imds(failure=_IMDS_FAILURES[result.exit_status])
        profile, roles = parse_imds(result.stdout)
        return Imds(profile, tuple(roles))

    @staticmethod
    def _judge_imds(item: PlanItem, value: IamRole, role: str, expected: str,
                    details: Mapping[str, Any]) -> Observation:
        imds = value.imds or Imds()
        if imds.failure:
            return Observation.failed(expected, "no answer", imds.failure, **details)
        observed = f"role {', '.join(imds.roles) or 'none'}"
        if list(imds.roles) != [role]:
            return Observation.failed(expected, observed, (
                f"IMDSv2 on the instance names {observed}, but its instance profile carries "
                f"role {role}"), **details)
        if imds.profile_arn and imds.profile_arn != value.profile_arn:
            return Observation.failed(expected, observed, (
                f"IMDSv2 names instance profile {imds.profile_arn}, EC2 says "
                f"{value.profile_arn}"), **details)
        wanted = item.params["role"]
        if wanted and wanted != role:
            return Observation.failed(expected, observed, f"expected role {wanted}, observed "
                                      f"{observed}", **details)
        return Observation.passed(expected, f"{observed} (IMDSv2)", **details)
