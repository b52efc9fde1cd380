"""The quick check says yes only to documents jsonschema finds valid (a no sends the document to
jsonschema, which words the problems), and says yes to the usual valid inventory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from pytest_drcheck.inventory import InventoryError
from pytest_drcheck.inventory.quickcheck import conforms
from pytest_drcheck.inventory.schema import inventory_schema, suite_schema
from pytest_drcheck.inventory.validation import validate
from pytest_drcheck.inventory.yamldoc import load_document
from tests.inventory.test_fuzz import FUZZ, KEYS, SEEDS, edit, places, values

REPO = Path(__file__).resolve().parents[2]
VALID = """\
version: 1
drill: {name: t, rpo: 15m}
defaults: {timeout: 20s, connection: {type: ssh, user: root, port: 22}}
groups:
  web: {suites: [core-reach]}
hosts:
  app01:
    address: 10.0.0.1
    groups: [web]
    checks:
      reach: [{target: '10.0.0.2:22', timeout: 5s}, {target: 'db.example:5432', expect: closed}]
  app02: {address: 'fd00::2', checks: {reach: [{target: '[fd00::1]:443'}]}}
"""


def verdicts(tmp_path: Path, text: str, suite: bool = False) -> tuple[bool, list[str]]:
    path = tmp_path / "site.yaml"
    path.write_text(text, encoding="utf-8")
    doc = load_document(path, "site.yaml")
    schema = suite_schema() if suite else inventory_schema()
    return conforms(schema, doc.data), [str(p) for p in validate(doc, schema)]


def test_a_valid_inventory_conforms(tmp_path: Path) -> None:
    assert verdicts(tmp_path, VALID) == (True, [])


def test_the_lab_inventory_and_the_shipped_suites_conform(tmp_path: Path) -> None:
    assert verdicts(tmp_path, (REPO / "inventories" / "lab.yaml").read_text()) == (True, [])
    for suite in sorted((REPO / "pytest_drcheck" / "suites").glob("*.yaml")):
        assert verdicts(tmp_path, suite.read_text(), suite=True) == (True, []), suite.name


@pytest.mark.parametrize(("written", "replacement"), [
    ("port: 22", "port: 22.0"),  # a whole float is no integer here
    ("port: 22", "port: true"),
    ("port: 22", "port: 0"),
    ("timeout: 20s", "timeout: .nan"),
    ("timeout: 20s", "timeout: .inf"),
    ("timeout: 20s", "timeout: 9999h"),  # x-max-seconds
    ("timeout: 20s", "timeout: 0s"),
    ("version: 1", "version: true"),  # const 1 is not true
    ("groups: [web]", "groups: [web, web]"),  # uniqueItems
    ("expect: closed", "expect: shut"),
    ("address: 'fd00::2'", "address: 'fe80::1%eth0'"),
    ("address: 10.0.0.1", "address: 10.0.0.256"),
    ("type: ssh", "type: ssh2"),
    ("{target: '10.0.0.2:22', timeout: 5s}", "{target: '10.0.0.2:22', timeout: 5s, x: 1}"),
    ("drill: {name: t, rpo: 15m}", "drill: {rpo: 15m}"),  # required
    ("drill: {name: t, rpo: 15m}", "drill: {name: '', rpo: 15m}"),
    ("suites: [core-reach]", "suites: core-reach"),
])
def test_an_invalid_inventory_does_not_conform(tmp_path: Path, written: str,
                                               replacement: str) -> None:
    assert written in VALID
    quick, problems = verdicts(tmp_path, VALID.replace(written, replacement))
    assert problems, "jsonschema finds a problem"
    assert quick is False


def test_an_unknown_keyword_is_left_to_jsonschema() -> None:
    assert conforms({"type": "object"}, {}) is True
    assert conforms({"type": "object", "maxProperties": 3}, {}) is False
    assert conforms({"patternProperties": {"a": {}}, "additionalProperties": False},
                    {"a": 1}) is False
    # Where no value reaches it, an unknown keyword changes nothing.
    schema = {"type": "object", "properties": {"a": {"maxProperties": 1}, "b": {}}}
    assert conforms(schema, {"b": 1}) is True
    assert conforms(schema, {"a": {}}) is False


def test_values_jsonschema_compares_its_own_way_are_left_to_it(tmp_path: Path) -> None:
    # version 1.0 equals 1 to jsonschema: valid, found by jsonschema.
    assert verdicts(tmp_path, VALID.replace("version: 1", "version: 1.0")) == (False, [])
    assert conforms({"enum": [1]}, 1.0) is False  # jsonschema: equal
    assert conforms({"uniqueItems": True}, [1, True]) is False  # jsonschema: unique


@FUZZ
@given(seed=st.sampled_from(SEEDS), data=st.data())
def test_a_yes_is_always_jsonschemas(tmp_path: Path, seed: str, data: st.DataObject) -> None:
    document: Any = yaml.safe_load(seed)
    for _ in range(data.draw(st.integers(1, 3), label="edits")):
        path = data.draw(st.sampled_from(places(document)), label="path")
        action = data.draw(st.sampled_from(["replace", "delete", "rename", "add"]))
        document = edit(document, path, action, data.draw(values, label="value"),
                        data.draw(st.sampled_from(KEYS), label="key"))
    text = yaml.safe_dump(document, allow_unicode=True, sort_keys=False, width=1000)
    try:
        quick, problems = verdicts(tmp_path, text)
    except InventoryError:
        return  # refused as YAML: no schema involved
    if quick:
        assert problems == [], text


JSONSCHEMA_IMPORTED = """
import sys
from pytest_drcheck.inventory import load_plan
load_plan(sys.argv[1])
print("jsonschema" in sys.modules)
"""


def test_a_valid_inventory_loads_without_jsonschema(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(VALID)
    done = subprocess.run([sys.executable, "-c", JSONSCHEMA_IMPORTED, str(path)],
                          capture_output=True, text=True, check=True, timeout=300)
    assert done.stdout.strip() == "False"
    path.write_text(VALID.replace("port: 22", "port: 22.0"))
    done = subprocess.run([sys.executable, "-c", JSONSCHEMA_IMPORTED, str(path)],
                          capture_output=True, text=True, timeout=300)
    assert "port: 22.0 is not valid here" in done.stderr
