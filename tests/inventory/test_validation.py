"""Schema validation of an inventory: each distinct check entry is validated once, and every
invalid entry is still reported where it is written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pytest_drcheck.inventory import InventoryError, load_plan, validation

HOSTS = 40


def inventory(entries: dict[str, str]) -> str:
    """HOSTS hosts with the same two reach entries, and the given hosts a third entry."""
    lines = ["version: 1", "drill: {name: t}", "hosts:"]
    for index in range(HOSTS):
        name = f"app{index:02d}"
        lines += [f"  {name}:", f"    address: 10.0.0.{index + 1}", "    checks:", "      reach:",
                  "        - {target: '10.0.0.99:22', timeout: 5s}",
                  "        - {target: '10.0.0.99:443'}"]
        if name in entries:
            lines.append(f"        - {entries[name]}")
    return "\n".join(lines) + "\n"


def test_an_entry_repeated_on_every_host_is_validated_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Any] = []
    descend = validation.InventoryValidator.descend
    iter_errors = validation.InventoryValidator.iter_errors

    def counting(self: Any, instance: Any, schema: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(instance, dict) and "target" in instance:
            seen.append(dict(instance))
        return descend(self, instance, schema, *args, **kwargs)

    def counting_iter(self: Any, instance: Any, *args: Any, **kwargs: Any) -> Any:
        # An entry validated by its list's own validator (made once for the list).
        if isinstance(instance, dict) and "target" in instance:
            seen.append(dict(instance))
        return iter_errors(self, instance, *args, **kwargs)

    monkeypatch.setattr(validation.InventoryValidator, "descend", counting)
    monkeypatch.setattr(validation.InventoryValidator, "iter_errors", counting_iter)
    path = tmp_path / "site.yaml"
    path.write_text(inventory({}))
    assert len(load_plan(path).items) == 2 * HOSTS
    assert seen == [{"target": "10.0.0.99:22", "timeout": "5s"}, {"target": "10.0.0.99:443"}]


def test_every_invalid_entry_is_reported_where_it_is(tmp_path: Path) -> None:
    """Values Python finds equal (true == 1) are different values to the schema; an invalid
    entry on several hosts is reported on each."""
    path = tmp_path / "site.yaml"
    path.write_text(inventory({
        "app03": "{target: '10.0.0.99:80', timeout: 1}",
        "app04": "{target: '10.0.0.99:80', timeout: true}",
        "app05": "{target: '10.0.0.99:80', timeout: 1.0}",
        "app06": "{target: '10.0.0.99:80', timeout: x}",
        "app07": "{target: '10.0.0.99:80', timeout: x}",
    }))
    with pytest.raises(InventoryError) as caught:
        load_plan(path, display_name="site.yaml")
    expect = "expected a duration such as 30s, 15m or 4h (more than 0, at most 24h)"
    assert str(caught.value).splitlines() == [
        f"site.yaml:35: hosts.app04.checks.reach[2].timeout: true is not valid here; {expect}",
        f"site.yaml:49: hosts.app06.checks.reach[2].timeout: 'x' is not valid here; {expect}",
        f"site.yaml:56: hosts.app07.checks.reach[2].timeout: 'x' is not valid here; {expect}",
    ]


def test_values_refer_within_their_own_schema_resource() -> None:
    """A list's entries and a mapping's values are validated in their schema's resource (its
    $id), whose validator is made once: a $ref inside resolves there, not at the root."""
    from pytest_drcheck.inventory.yamldoc import Document

    def word(name: str) -> dict[str, Any]:
        return {"$id": f"https://drcheck.invalid/{name}",
                "$defs": {"word": {"type": "string", "maxLength": 3}}, "$ref": "#/$defs/word"}

    schema = {
        "$id": "https://drcheck.invalid/root",
        "$defs": {"word": {"type": "integer"}},  # the root's: must not be the one used
        "type": "object",
        "properties": {"list": {"type": "array", "items": word("entry")},
                       "one": word("one"), "two": word("one")},
    }
    doc = Document("site.yaml", {"list": ["ab", "ab", "abcd", 7], "one": "xy", "two": "wxyz"},
                   "", {("list", 2): 4, ("list", 3): 5, ("two",): 6})
    assert [str(problem) for problem in validation.validate(doc, schema)] == [
        "site.yaml:4: list[2]: is longer than 3 characters; shorten it",
        "site.yaml:5: list[3]: 7 is not valid here; expected a string; quote it if it is "
        "text",
        "site.yaml:6: two: is longer than 3 characters; shorten it",
    ]
