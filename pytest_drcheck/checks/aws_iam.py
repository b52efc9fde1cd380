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
from typing import TYPE_CHECKING, Any, ClassVar

from pytest_drcheck.checks.aws_base import AwsCheck
from pytest_drcheck.checks.base import CheckContext, ExpansionError, Subject
from pytest_drcheck.inventory import vocabulary
from pytest_drcheck.model import Observation, PlanItem

if TYPE_CHECKING:
    from pytest_drcheck.aws.run import AwsHostTarget, AwsRun

IMDS = "http://169.254.169.254"
_ACTION = {"type": "string", "pattern": r"\A[A-Za-z0-9-]{1,64}:[A-Za-z0-9*?]{1,128}\Z",
           "x-expect": "an IAM action such as s3:GetObject"}
_MARK = "--drcheck-imds--"
# Exit statuses of the imds probe, and what they mean.
_IMDS_FAILURES = {
    127: "curl is not installed on the instance",
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


class IamRoleCheck(AwsCheck):
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

    def expectation(self, item: PlanItem) -> str:
        prop = item.params["property"]
        role = item.params["role"] or "the instance profile's role"
        if prop == "profile":
            return f"an instance profile with role {role}"
        if prop == "imds":
            return f"IMDSv2 names role {role}"
        return f"{item.params['action']} {'allowed' if prop == 'allow' else 'denied'}"

    def observe(self, ctx: CheckContext, target: AwsHostTarget) -> Observation:
        aws = target.aws
        found = target.found(ctx.timeout)
        prop = ctx.params["property"]
        expected = self.expectation(ctx.item)
        profile_arn = found.instance_profile_arn
        if not profile_arn:
            return Observation.failed(expected, "no instance profile", (
                f"{found.instance_id} has no instance profile attached; attach one with the "
                "role post-launch actions and applications need"))
        profile_name = _name_of(profile_arn)
        roles = aws.memo(("iam-profile", profile_name),
                         lambda: self._profile_roles(aws, profile_name))
        if not roles:
            return Observation.failed(expected, f"profile {profile_name} without role", (
                f"instance profile {profile_name} of {found.instance_id} has no role"))
        role_arn = roles[0]
        role = _name_of(role_arn)
        wanted = ctx.params["role"]
        details = {"instance_profile": profile_arn, "role": role_arn}
        if prop == "profile":
            observed = f"instance profile {profile_name} with role {role}"
            if wanted and wanted != role:
                return Observation.failed(expected, observed, (
                    f"expected role {wanted}, observed {observed}"), **details)
            return Observation.passed(expected, observed, **details)
        if prop == "imds":
            return self._imds(ctx, role, profile_arn, expected, details)
        return self._simulate(ctx, aws, role_arn, role, expected, details)

    @staticmethod
    def _profile_roles(aws: AwsRun, profile_name: str) -> list[str]:
        profile = aws.clients.call("iam", "get_instance_profile",
                                   InstanceProfileName=profile_name)["InstanceProfile"]
        return [str(r["Arn"]) for r in profile.get("Roles", [])]

    @staticmethod
    def _simulate(ctx: CheckContext, aws: AwsRun, role_arn: str, role: str, expected: str,
                  details: Mapping[str, Any]) -> Observation:
        actions: tuple[str, ...] = tuple(ctx.params["actions"])
        resources: tuple[str, ...] = tuple(ctx.params["resources"])

        def simulate() -> list[Mapping[str, Any]]:
            return list(aws.clients.pages(
                "iam", "simulate_principal_policy", "EvaluationResults",
                PolicySourceArn=role_arn, ActionNames=list(actions),
                ResourceArns=list(resources)))

        results = aws.memo(("iam-simulate", role_arn, actions, resources), simulate)
        action = ctx.params["action"]
        decisions = {str(r.get("EvalResourceName", "*")): r for r in results
                     if str(r.get("EvalActionName", "")).lower() == action.lower()}
        if not decisions:
            return Observation.failed(expected, "no decision", (
                f"the policy simulation returned no decision for {action}"), **details)
        shown = ", ".join(f"{res}: {r.get('EvalDecision')}" for res, r in
                          sorted(decisions.items())) if len(decisions) > 1 else str(
            next(iter(decisions.values())).get("EvalDecision"))
        allowed = all(r.get("EvalDecision") == "allowed" for r in decisions.values())
        on = ", ".join(resources)
        full = {**details, "decisions": {k: v.get("EvalDecision") for k, v in decisions.items()}}
        if ctx.params["property"] == "allow":
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
    def _imds(ctx: CheckContext, role: str, profile_arn: str, expected: str,
              details: Mapping[str, Any]) -> Observation:
        (result,) = ctx.outputs
        if result.timed_out:
            return Observation.failed(expected, "timed out", "the metadata probe timed out")
        if result.exit_status != 0:
            why = _IMDS_FAILURES.get(result.exit_status, (
                f"the metadata probe failed ({result.exit_status}: "
                f"{result.stderr.strip()[:200] or 'no message'})"))
            return Observation.failed(expected, "no answer", why, **details)
        seen_profile, seen_roles = parse_imds(result.stdout)
        observed = f"role {', '.join(seen_roles) or 'none'}"
        if seen_roles != [role]:
            return Observation.failed(expected, observed, (
                f"IMDSv2 on the instance names {observed}, but its instance profile carries "
                f"role {role}"), **details)
        if seen_profile and seen_profile != profile_arn:
            return Observation.failed(expected, observed, (
                f"IMDSv2 names instance profile {seen_profile}, EC2 says {profile_arn}"),
                **details)
        wanted = ctx.params["role"]
        if wanted and wanted != role:
            return Observation.failed(expected, observed, f"expected role {wanted}, observed "
                                      f"{observed}", **details)
        return Observation.passed(expected, f"{observed} (IMDSv2)", **details)
