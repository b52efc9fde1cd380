"""route53_resolver: judge for every outcome, without AWS."""

from __future__ import annotations

from typing import Any

from pytest_drcheck.aws.checks.resolver import ResolverRuleCheck, ResolverRules
from pytest_drcheck.model import Outcome
from tests.aws.checks.items import items

VPC, OTHER = "vpc-0123456789abcdef0", "vpc-0fedcba9876543210"


def rule(rule_id: str, target: str = "10.77.0.53", kind: str = "FORWARD",
         status: str = "COMPLETE") -> dict[str, Any]:
    return {"Id": rule_id, "DomainName": "corp.example.", "RuleType": kind, "Status": status,
            "TargetIps": [{"Ip": target, "Port": 53}]}


def observed(rules: list[dict[str, Any]], attached: dict[str, str]) -> ResolverRules:
    return ResolverRules(VPC, "eu-west-1", tuple(rules), tuple(
        {"ResolverRuleId": r, "VPCId": v, "Status": "COMPLETE"} for r, v in attached.items()))


def judge(value: ResolverRules) -> tuple[Outcome, str]:
    check = ResolverRuleCheck()
    item = items(check, {"zone": "corp.example", "targets": ["10.77.0.53"]})["corp.example"]
    verdict = check.judge(item, value)
    return verdict.outcome, verdict.reason


def test_rule_forwarding_to_the_targets_in_the_vpc() -> None:
    assert judge(observed([rule("rslvr-rr-1")], {"rslvr-rr-1": VPC}))[0] is Outcome.PASSED


def test_no_forward_rule() -> None:
    assert judge(observed([rule("rslvr-rr-1", kind="SYSTEM")], {})) == (
        Outcome.FAILED, "no Route 53 Resolver FORWARD rule for corp.example in eu-west-1 (only "
                        "SYSTEM rules); create one forwarding to 10.77.0.53:53")


def test_rule_of_another_vpc() -> None:
    assert judge(observed([rule("rslvr-rr-1")], {"rslvr-rr-1": OTHER})) == (
        Outcome.FAILED, f"forwarding rule rslvr-rr-1 for corp.example is not associated with "
                        f"{VPC} (associated with {OTHER}); associate it with the DR VPC")


def test_wrong_targets_and_status() -> None:
    assert judge(observed([rule("rslvr-rr-1", "10.9.9.9")], {"rslvr-rr-1": VPC})) == (
        Outcome.FAILED, "rule rslvr-rr-1 forwards corp.example to 10.9.9.9:53, expected "
                        "10.77.0.53:53 (missing 10.77.0.53:53; unexpected 10.9.9.9:53)")
    assert judge(observed([rule("rslvr-rr-1", status="FAILED")], {"rslvr-rr-1": VPC})) == (
        Outcome.FAILED, "the rule rslvr-rr-1 for corp.example is FAILED, not COMPLETE")
