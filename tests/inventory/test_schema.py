"""The schema a document is validated against names every check type, but holds the entries'
schemas of the types the document uses only (and the site sections only when it has a site:),
so loading imports just the families it needs. Its verdicts are those of the whole schema."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from hypothesis import given
from hypothesis import strategies as st

from pytest_drcheck.checks import registry
from pytest_drcheck.inventory import InventoryError, load_plan
from pytest_drcheck.inventory.schema import (
    check_types_used,
    inventory_schema,
    suite_schema,
)
from pytest_drcheck.inventory.validation import validate
from pytest_drcheck.inventory.yamldoc import load_document
from tests.inventory.test_fuzz import FUZZ, KEYS, SEEDS, edit, places, values

REPO = Path(__file__).resolve().parents[2]
SUITES = REPO / "pytest_drcheck" / "suites"


def both_verdicts(path: Path, suite: bool = False) -> tuple[list[str], list[str]]:
    """(problems with the whole schema, problems with the document's own)."""
    doc = load_document(path, "site.yaml")
    if suite:
        whole, own = suite_schema(), suite_schema(check_types_used(doc.data, ("checks",)))
    else:
        site = doc.data.get("site") if isinstance(doc.data, dict) else None
        whole = inventory_schema()
        own = inventory_schema(check_types_used(doc.data, ("groups", "hosts")),
                               site=bool(site) and isinstance(site, dict))
    return [str(p) for p in validate(doc, whole)], [str(p) for p in validate(doc, own)]


def test_types_used_are_the_keys_of_every_checks_mapping() -> None:
    data = {"groups": {"web": {"checks": {"dns": []}}, "bare": None},
            "hosts": {"a": {"checks": {"reach": [], "rech": []}}, "b": {}}}
    assert check_types_used(data, ("groups", "hosts")) == {"dns", "reach", "rech"}
    assert check_types_used({"checks": {"nic": []}}, ("checks",)) == {"nic"}
    # A shape the schema rejects: the whole schema, to report it as ever.
    assert check_types_used({"hosts": ["a"]}, ("groups", "hosts")) is None
    assert check_types_used({"hosts": {"a": {"checks": ["reach"]}}}, ("hosts",)) is None


def test_every_type_stays_a_key() -> None:
    """An unknown type is reported with the same list of types to choose from."""
    own = inventory_schema(set(), site=False)
    checks = own["properties"]["hosts"]["additionalProperties"]["properties"]["checks"]
    assert sorted(checks["properties"]) == registry.names()
    assert checks["properties"]["reach"] == {}


def test_mistakes_are_reported_alike(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text("""\
version: 1
drill: {name: t}
site:
  dns: {resolvers: {onprem: 10.0.0.53}, recordz: []}
  dnz: {}
groups:
  web: {checks: {nic: [{count: two}]}}
hosts:
  app01:
    address: 10.0.0.1
    groups: [web]
    checks:
      rech: [{target: '10.0.0.2:22'}]
      reach: [{target: '10.0.0.2:22', timeout: x}, {targt: '10.0.0.2:80'}]
      dns: [{name: a.example, resolver: onprem, expect: [10.0.0.1], extra: 1}]
""")
    whole, own = both_verdicts(path)
    assert own == whole
    assert any("unknown check type 'rech' (did you mean 'reach'?)" in line for line in own)
    assert any("hosts.app01.checks.reach[1].targt" in line for line in own)
    assert any("site.dnz" in line for line in own)
    assert len(own) >= 6, own


def test_shipped_suites_are_validated_alike() -> None:
    for suite in sorted(SUITES.glob("*.yaml")):
        whole, own = both_verdicts(suite, suite=True)
        assert own == whole == [], suite.name


@FUZZ
@given(seed=st.sampled_from(SEEDS), data=st.data())
def test_mutated_documents_are_validated_alike(tmp_path: Path, seed: str,
                                               data: st.DataObject) -> None:
    document: Any = yaml.safe_load(seed)
    for _ in range(data.draw(st.integers(1, 3), label="edits")):
        path = data.draw(st.sampled_from(places(document)), label="path")
        action = data.draw(st.sampled_from(["replace", "delete", "rename", "add"]))
        document = edit(document, path, action, data.draw(values, label="value"),
                        data.draw(st.sampled_from(KEYS), label="key"))
    target = tmp_path / "site.yaml"
    target.write_text(yaml.safe_dump(document, allow_unicode=True, sort_keys=False,
                                     width=1000), encoding="utf-8")
    try:
        load_document(target, "site.yaml")
    except InventoryError:
        return  # refused as YAML: no schema involved
    whole, own = both_verdicts(target)
    assert own == whole


LOADED_FAMILIES = """
import json, sys
from pytest_drcheck.inventory import InventoryError, load_plan
plan = load_plan(sys.argv[1])
print(json.dumps([len(plan.items), sorted(m for m in sys.modules
                                          if m.startswith("pytest_drcheck.checks."))]))
"""


def test_loading_imports_only_the_families_the_inventory_uses(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text("version: 1\ndrill: {name: t}\nhosts:\n  app01:\n    address: 10.0.0.1\n"
                    "    checks: {reach: [{target: '10.0.0.2:22'}]}\n")
    done = subprocess.run([sys.executable, "-c", LOADED_FAMILIES, str(path)],
                          capture_output=True, text=True, check=True, timeout=300)
    count, modules = json.loads(done.stdout)
    assert count == 1
    assert "pytest_drcheck.checks.reach" in modules
    for family in ("dns", "directory", "nic", "timesync", "agents", "replication"):
        assert f"pytest_drcheck.checks.{family}" not in modules, modules
    # Still loaded with every family's rules where used: the plan is the same.
    assert len(load_plan(path).items) == 1
