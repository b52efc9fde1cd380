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


def test_frozen_values_are_read_only_at_any_depth_and_scalars_kept_as_they_are() -> None:
    from types import MappingProxyType

    import pytest

    from pytest_drcheck.model import freeze

    class Name(str):
        pass

    name = Name("n")
    frozen = freeze({"a": [1, {"b": (True, None, 2.5, name)}], "c": "x", "d": {"e": [[]]}})
    assert frozen == {"a": (1, {"b": (True, None, 2.5, "n")}), "c": "x", "d": {"e": ((),)}}
    assert isinstance(frozen, MappingProxyType)
    assert isinstance(frozen["a"][1], MappingProxyType)
    assert isinstance(frozen["d"]["e"], tuple)
    assert frozen["a"][1]["b"][0] is True and frozen["a"][1]["b"][3] is name
    with pytest.raises(TypeError):
        frozen["a"][1]["b"] = ()  # type: ignore[index]
