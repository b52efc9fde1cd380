from __future__ import annotations

from pytest_drcheck.inventory.plan import ConnectionSpec, DrillSpec, HostSpec, Plan
from pytest_drcheck.model import Location, PlanItem


def _plan(items: tuple[PlanItem, ...]) -> Plan:
    hosts = {name: HostSpec(name, None, ConnectionSpec(), ()) for name in ("a", "b", "c")}
    return Plan("site.yaml", "site.yaml", "0" * 64, DrillSpec("t"), hosts, items, {})


def _item(host: str, subject: str) -> PlanItem:
    return PlanItem(host, "reach", subject, {}, Location("site.yaml", 1, "hosts"), 5.0)


def test_items_of_gives_each_hosts_items_in_plan_order() -> None:
    items = (_item("a", "1"), _item("b", "2"), _item("a", "3"), _item("b", "4"))
    plan = _plan(items)
    assert [i.subject for i in plan.items_of("a")] == ["1", "3"]
    assert [i.subject for i in plan.items_of("b")] == ["2", "4"]
    assert plan.items_of("c") == []
    assert plan.items_of("unknown") == []


def test_items_of_returns_a_list_the_caller_may_change() -> None:
    plan = _plan((_item("a", "1"),))
    plan.items_of("a").clear()
    assert [i.subject for i in plan.items_of("a")] == ["1"]
