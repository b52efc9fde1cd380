"""route53_resolver: hybrid DNS from the AWS side. For each on-premises zone, a Route 53
Resolver FORWARD rule exists, forwards to the expected on-premises DNS servers, and is
associated with the DR VPC (the VPC of the host's recovery instance, or ``vpc:``).

Complements the dns check (names resolve on the instance): when names fail there, this says
whether the forwarding rule is missing, points elsewhere, or is not attached to the VPC.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from pytest_drcheck.aws.checks.base import AwsCheck
from pytest_drcheck.checks.base import CheckContext, ExpansionError, Subject
from pytest_drcheck.model import CouldNotObserve, Observation, PlanItem

if TYPE_CHECKING:
    from pytest_drcheck.aws.run import AwsRun
    from pytest_drcheck.inventory.plan import HostSpec

_ZONE = re.compile(r"\A(?=.{1,253}\.?\Z)([A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?\.)*"
                   r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?\.?\Z")
_VPC = r"\Avpc-[0-9a-f]{8,17}\Z"


def normalise_zone(name: str) -> str:
    return name.rstrip(".").lower()


def _target(text: str, resolvers: Mapping[str, str]) -> str:
    """'10.77.0.53', '10.77.0.53:5353' or a site.dns.resolvers name -> 'ip:port'."""
    value = resolvers.get(text, text)
    host, _, port = value.rpartition(":") if value.count(":") == 1 else (value, "", "")
    host = host.strip("[]")
    try:
        ipaddress.ip_address(host)
        number = int(port) if port else 53
    except ValueError:
        raise ExpansionError(f"'{text}' is neither an IP address nor a name under "
                             "site.dns.resolvers; write ip or ip:port", ".targets") from None
    if not 0 < number < 65536:
        raise ExpansionError(f"'{text}' has a port out of range; use 1-65535", ".targets")
    return f"{host}:{number}"


@dataclass(frozen=True)
class ResolverRules:
    """The region's Resolver rules for the zone and their associations, and the DR VPC."""

    vpc: str
    region: str
    rules: tuple[Mapping[str, Any], ...]  # every rule for the zone, any type
    associations: tuple[Mapping[str, Any], ...]  # every association of the region


class ResolverRuleCheck(AwsCheck[ResolverRules]):
    type_name: ClassVar[str] = "route53_resolver"
    default_timeout: ClassVar[float] = 30.0
    entry_schema: ClassVar[Mapping[str, Any]] = {
        "required": ["zone", "targets"],
        "properties": {
            "zone": {"type": "string", "pattern": _ZONE.pattern,
                     "x-expect": "an on-premises DNS zone such as corp.example"},
            "targets": {"type": "array", "minItems": 1, "uniqueItems": True,
                        "items": {"type": "string", "minLength": 1},
                        "x-expect": "the on-premises DNS servers the rule must forward to: "
                                    "addresses (ip or ip:port) or names under "
                                    "site.dns.resolvers"},
            "vpc": {"type": "string", "pattern": _VPC,
                    "x-expect": "a VPC id such as vpc-0123456789abcdef0 (default: the VPC "
                                "of the host's recovery instance)"},
        },
    }

    def expand(self, entry: Mapping[str, Any], site: Mapping[str, Any]) -> list[Subject]:
        resolvers = site.get("dns", {}).get("resolvers", {})
        targets = sorted({_target(str(t), resolvers) for t in entry["targets"]})
        zone = normalise_zone(str(entry["zone"]))
        return [Subject(zone, {"zone": zone, "targets": targets, "vpc": entry.get("vpc")})]

    def plan_problem(self, item: PlanItem, host: HostSpec, drill: Mapping[str, Any]
                     ) -> str | None:
        if item.params["vpc"] or host.aws:
            return None
        return (f"route53_resolver on host {item.host} needs the DR VPC; add vpc: to the entry "
                "or drs:/ec2: to the host (its instance's VPC is used)")

    def expected(self, item: PlanItem) -> str:
        return (f"a forwarding rule for {item.params['zone']} to "
                f"{', '.join(item.params['targets'])}, associated with the DR VPC")

    def observe(self, ctx: CheckContext) -> ResolverRules:
        target = self.aws_target(ctx)
        aws = target.aws
        zone: str = ctx.params["zone"]
        vpc = ctx.params["vpc"] or target.found(ctx.timeout).vpc_id
        if not vpc:
            raise CouldNotObserve(f"the recovery instance of {ctx.item.host} has no VPC; give "
                                  "vpc: on the entry")
        rules = tuple(r for r in aws.memo("resolver-rules", lambda: self._rules(aws))
                      if normalise_zone(str(r.get("DomainName", ""))) == zone)
        associations = tuple(aws.memo("resolver-associations",
                                      lambda: self._associations(aws)))
        return ResolverRules(str(vpc), aws.settings.region, rules, associations)

    def judge(self, item: PlanItem, value: ResolverRules) -> Observation:
        zone: str = item.params["zone"]
        wanted: list[str] = list(item.params["targets"])
        vpc = value.vpc
        expected = f"rule for {zone} -> {', '.join(wanted)} associated with {vpc}"
        forward = [r for r in value.rules if r.get("RuleType") == "FORWARD"]
        if not forward:
            other = f" (only {', '.join(r.get('RuleType', '?') for r in value.rules)} rules)" if (
                value.rules) else ""
            return Observation.failed(expected, "no rule", (
                f"no Route 53 Resolver FORWARD rule for {zone} in {value.region}{other}; create "
                f"one forwarding to {', '.join(wanted)}"))
        attached = {str(a.get("ResolverRuleId")): a for a in value.associations
                    if a.get("VPCId") == vpc}
        mine = [r for r in forward if str(r.get("Id")) in attached]
        if not mine:
            names = ", ".join(str(r.get("Id")) for r in forward)
            ids = {str(r.get("Id")) for r in forward}
            elsewhere = sorted({str(a.get("VPCId")) for a in value.associations
                                if str(a.get("ResolverRuleId")) in ids})
            where = ", ".join(elsewhere) if elsewhere else "no VPC"
            return Observation.failed(expected, f"not associated with {vpc}", (
                f"forwarding rule {names} for {zone} is not associated with {vpc} (associated "
                f"with {where}); associate it with the DR VPC"))
        rule = mine[0]
        observed_targets = sorted(f"{t.get('Ip') or t.get('Ipv6')}:{t.get('Port', 53)}"
                                  for t in rule.get("TargetIps", []))
        details = {"rule": rule.get("Id"), "vpc": vpc, "targets": observed_targets,
                   "rule_status": rule.get("Status"),
                   "association_status": attached[str(rule.get("Id"))].get("Status")}
        observed = f"rule {rule.get('Id')} -> {', '.join(observed_targets) or 'nothing'}"
        if sorted(observed_targets) != sorted(wanted):
            missing = [t for t in wanted if t not in observed_targets]
            extra = [t for t in observed_targets if t not in wanted]
            parts = [f"missing {', '.join(missing)}"] if missing else []
            parts += [f"unexpected {', '.join(extra)}"] if extra else []
            return Observation.failed(expected, observed, (
                f"rule {rule.get('Id')} forwards {zone} to {', '.join(observed_targets)}, "
                f"expected {', '.join(wanted)} ({'; '.join(parts)})"), **details)
        for what, status in (("rule", rule.get("Status")),
                             ("association", details["association_status"])):
            if status and status != "COMPLETE":
                return Observation.failed(expected, observed, (
                    f"the {what} {rule.get('Id')} for {zone} is {status}, not COMPLETE"),
                    **details)
        return Observation.passed(expected, f"{observed}, associated with {vpc}", **details)

    @staticmethod
    def _rules(aws: AwsRun) -> list[Mapping[str, Any]]:
        return list(aws.clients.pages("route53resolver", "list_resolver_rules",
                                      "ResolverRules"))

    @staticmethod
    def _associations(aws: AwsRun) -> list[Mapping[str, Any]]:
        return list(aws.clients.pages("route53resolver", "list_resolver_rule_associations",
                                      "ResolverRuleAssociations"))
