"""The inventory is read with libyaml's events when PyYAML has libyaml, else with PyYAML's own
parser: the same nodes either way, and every refusal worded and placed the same (a file libyaml
refuses is read again by PyYAML, whose messages the hints know)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from pytest_drcheck.inventory import InventoryError, load_plan, yamldoc
from tests.inventory.test_fuzz import SEEDS as FUZZ_SEEDS

REPO = Path(__file__).resolve().parents[2]
HEAD = "version: 1\ndrill: {name: t}\nhosts:\n  app01:\n    address: 10.0.0.1\n"
needs_libyaml = pytest.mark.skipif(not yaml.__with_libyaml__, reason="PyYAML without libyaml")

REFUSALS: list[tuple[str, str, str]] = [
    # libyaml takes this BOM for a blank; PyYAML, as ever, refuses the line.
    ('bom-line', HEAD + '    attributes:\n      a: 1\n\ufeff\n      b: 2\n',
     "site.yaml:9: document: not valid YAML: a key without ':' after it; add ': ' after the "
     "key, or quote the text (the block starts at line 8)"),
    ('unclosed-flow-list', 'version: 1\ndrill: [\n',
     'site.yaml:3: document: not valid YAML: the file ends inside an unclosed [...], {...} '
     'or quote; close it'),
    ('unclosed-flow-list-mid', HEAD + '    groups: [a, b\n    description: x\n',
     'site.yaml:7: document: not valid YAML: a flow list [...] is not closed or misses a '
     "','; close it (the block starts at line 6)"),
    ('unclosed-flow-map', HEAD + '    attributes: {a: 1, b: 2\n',
     'site.yaml:7: document: not valid YAML: a flow mapping {...} is not closed or misses a '
     "','; close it (the block starts at line 6)"),
    ('unclosed-quote', HEAD + '    description: "abc\n',
     'site.yaml:7: document: not valid YAML: a quote or bracket is not closed; close it (the '
     'block starts at line 6)'),
    ('unclosed-single-quote', HEAD + "    description: 'abc\n",
     'site.yaml:7: document: not valid YAML: a quote or bracket is not closed; close it (the '
     'block starts at line 6)'),
    ('missing-colon', 'version: 1\ndrill: {name: t}\nhosts:\n  app01\n    address: 10.0.0.1\n',
     "site.yaml:5: document: not valid YAML: a ':' YAML did not expect here; check that the "
     "line above ends its key with ':' and is indented like its neighbours, and quote values "
     "that contain ': '"),
    ('indentation', HEAD + '   groups: [a]\n',
     'site.yaml:6: document: not valid YAML: the indentation of this line does not match the '
     "lines above; align the keys of one mapping (or the '-' of one list) in the same column "
     '(the block starts at line 4)'),
    ('list-misaligned', HEAD + '    groups:\n      - a\n     - b\n',
     'site.yaml:8: document: not valid YAML: the indentation of this line does not match the '
     "lines above; align the keys of one mapping (or the '-' of one list) in the same column "
     '(the block starts at line 5)'),
    ('tab', 'version: 1\ndrill: {name: t}\nhosts:\n\tapp01: {address: 10.0.0.1}\n',
     'site.yaml:4: document: not valid YAML: a tab character; indent with spaces only'),
    ('tab-after-value', HEAD + '    description: x\t\n\t  groups: []\n',
     'site.yaml:6: document: not valid YAML: a tab character; indent with spaces only'),
    ('undefined-alias', HEAD + '    attributes: *nowhere\n',
     'site.yaml:6: document: not valid YAML: an alias (*name) without an anchor (&name) '
     'above it; define the anchor first or write the value out'),
    ('bad-escape', HEAD + '    description: "a\\qb"\n',
     'site.yaml:6: document: not valid YAML: a backslash escape double quotes do not know; '
     'use single quotes or write \\\\'),
    ('at-sign', HEAD + '    description: @x\n',
     "site.yaml:6: document: not valid YAML: '@' or '`' cannot start a plain value; quote "
     'the value'),
    ('backtick', HEAD + '    description: `x`\n',
     "site.yaml:6: document: not valid YAML: '@' or '`' cannot start a plain value; quote "
     'the value'),
    ('mapping-in-plain', HEAD + '    description: a: b\n',
     "site.yaml:6: document: not valid YAML: a ':' YAML did not expect here; check that the "
     "line above ends its key with ':' and is indented like its neighbours, and quote values "
     "that contain ': '"),
    ('nul', HEAD + '    description: a\x00b\n',
     "site.yaml:6: document: the character '\\x00' is not allowed in YAML; remove it"),
    ('bell', HEAD + '    description: a\x07b\n',
     "site.yaml:6: document: the character '\\x07' is not allowed in YAML; remove it"),
    ('second-document', HEAD + '---\nversion: 1\n',
     "site.yaml:7: document: a second YAML document ('---') starts here; an inventory is one "
     "document: remove the '---' line or split the file"),
    ('deep-flow', HEAD + "    attributes: " + "[" * 500 + "]" * 500 + "\n",
     'site.yaml:6: document: nested more than 64 levels deep; flatten the structure'),
    ('deep-block', HEAD + "    attributes:\n" + "".join(
         "  " * (level + 3) + f"k{level}:\n" for level in range(80)),
     'site.yaml:67: document: nested more than 64 levels deep; flatten the structure'),
    ('self-alias', HEAD + '    attributes: &me {again: *me}\n',
     'site.yaml:6: hosts.app01.attributes.again: an anchor contains an alias of itself (an '
     'endless value); write the value out'),
    ('duplicate-key', HEAD + '    address: 10.0.0.2\n',
     "site.yaml:6: hosts.app01.address: duplicate key 'address' (first at line 5); remove "
     'one of them'),
    ('bad-tag', HEAD + '    description: !vault secret\n',
     "site.yaml:6: hosts.app01.description: YAML tag '!vault' is not supported; remove the "
     'tag (secrets are written as env:NAME or file:PATH)'),
    ('python-tag', HEAD + '    attributes: !!python/object:os.system {}\n',
     "site.yaml:6: hosts.app01.attributes: YAML tag '!!python/object:os.system' is not "
     'supported here; remove it'),
    ('merge-key', HEAD + '    attributes:\n      <<: {a: 1}\n',
     'site.yaml:7: hosts.app01.attributes: YAML merge keys (<<) are not supported; write the '
     'keys out or use defaults/groups/suites'),
    ('complex-key', HEAD + '    attributes:\n      ? [a, b]\n      : c\n',
     'site.yaml:7: hosts.app01.attributes: a key is a list or mapping; keys are names, write '
     'the key as plain text'),
    ('bad-int', HEAD + '    attributes: {a: !!int x}\n',
     'site.yaml:6: hosts.app01.attributes.a: the value is not a valid int; write a int or '
     'remove the tag'),
    ('bad-directive', '%YAML 2.0\n---\n' + HEAD,
     'site.yaml:1: document: not valid YAML: found incompatible YAML document (version 1.* '
     "is required); check the indentation and the ': ' after each key"),
    ('empty', '',
     'site.yaml:1: document: the file is empty; an inventory needs version, drill and hosts'),
    ('comment-only', '# nothing\n',
     'site.yaml:1: document: the file is empty; an inventory needs version, drill and hosts'),
    ('anchor-on-alias', HEAD + '    attributes: {a: &x 1, b: &y *x}\n',
     'site.yaml:6: document: not valid YAML: a flow mapping {...} is not closed or misses a '
     "','; close it"),
    ('block-scalar-bad-indent', HEAD + '    description: |\n  x\n',
     "site.yaml:8: document: not valid YAML: a key without ':' after it; add ': ' after the "
     'key, or quote the text (the block starts at line 7)'),
    ('flow-seq-in-key', HEAD + '    [a]: b\n',
     'site.yaml:6: hosts.app01: a key is a list or mapping; keys are names, write the key as '
     'plain text'),
    ('document-end-then-text', HEAD + '...\nfoo\n',
     "site.yaml:7: document: not valid YAML: expected '<document start>', but found "
     "'<scalar>'; check the indentation and the ': ' after each key"),
    ('lone-dash', HEAD + '    groups:\n    -\n    - x\n',
     'site.yaml:7: hosts.app01.groups[0]: nothing (null) is not valid here; expected a name '
     "of letters, digits, '.', '-' and '_' (at most 128)"),
    ('question-plain', HEAD + '    ? x\n',
     "site.yaml:6: hosts.app01.x: unknown key 'x'; use one of address, attributes, checks, "
     'connection, description, drs, ec2, groups, platform, source, suites'),
    ('unicode-line-sep', HEAD + '    description: a\u2028b\n',
     "site.yaml:8: document: not valid YAML: a key without ':' after it; add ': ' after the "
     'key, or quote the text (the block starts at line 7)'),
    ('nel', HEAD + '    description: a\x85b\n',
     "site.yaml:8: document: not valid YAML: a key without ':' after it; add ': ' after the "
     'key, or quote the text (the block starts at line 7)'),
    ('surrogate-escape', HEAD + '    description: "\\ud800"\n',
     'site.yaml:6: hosts.app01.description: the value contains a lone surrogate (\\ud800); '
     'remove it'),
]
# Accepted by both (libyaml refuses some, the %YAML 1.3 directive, "\\ud800": read again).
ACCEPTED = [
    HEAD + "    attributes: {a b c}\n",
    HEAD + "    attributes: {a: 2025-13-01, b: 2024-05-01, c: 4:00, d: 022, e: .inf}\n",
    "%YAML 1.3\n---\n" + HEAD,
    "%FOO bar\n---\n" + HEAD,
    HEAD + "    description: a\ufeffb\n",
    HEAD + "    description: \"\\ud800\"\n",
    HEAD + "    attributes:\n      a: &x [1, 'two', \"three\"]\n      b: *x\n"
           "      c: |\n        x\n      d: >-\n        y\n        z\n      e: !!str 5\n"
           "      f: ~\n",
]


@pytest.fixture(params=["libyaml", "pyyaml"])
def parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "libyaml":
        if not yaml.__with_libyaml__:
            pytest.skip("PyYAML without libyaml")
    else:
        monkeypatch.setattr(yamldoc, "LIBYAML", False)
    return str(request.param)


def refusal(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "site.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InventoryError) as caught:
        load_plan(path, display_name="site.yaml")
    return str(caught.value).splitlines()


@pytest.mark.parametrize(("name", "text", "expected"), REFUSALS, ids=[r[0] for r in REFUSALS])
def test_refusal_is_the_same_line_with_either_parser(tmp_path: Path, parser: str, name: str,
                                                    text: str, expected: str) -> None:
    assert refusal(tmp_path, text) == [expected]


def typed(value: Any) -> Any:
    """A value with the type of every part (1, 1.0 and true are equal to ==)."""
    if isinstance(value, dict):
        return {key: typed(item) for key, item in value.items()}
    if isinstance(value, list):
        return [typed(item) for item in value]
    return (type(value).__name__, value)


def node_reading(text: str, libyaml: bool) -> Any:
    """What composing nodes (from libyaml's events or PyYAML's) and converting them make of
    a text: the data and the line of every place, or the refusal's lines."""
    saved, yamldoc.LIBYAML = yamldoc.LIBYAML, libyaml
    try:
        doc = yamldoc._node_document("site.yaml", text)
    except InventoryError as exc:
        return str(exc).splitlines()
    finally:
        yamldoc.LIBYAML = saved
    return typed(doc.data), doc.lines


def same_or_refused_by_libyaml(text: str) -> None:
    """libyaml's events make the same data, lines and refusals as PyYAML's (a file libyaml
    refuses or places differently is PyYAML's to read). The direct reading (no nodes)
    declines what it leaves to the nodes; what it reads, it reads as they do."""
    reference = node_reading(text, libyaml=False)
    assert node_reading(text, libyaml=True) == reference, text[:2000]
    if not yamldoc._libyaml_reads(text):
        return  # tabs, byte order marks: PyYAML reads those
    plain = yamldoc._plain_document("site.yaml", text)
    if plain is not None:
        assert (typed(plain.data), plain.lines) == reference, text[:2000]


@needs_libyaml
@pytest.mark.parametrize("text", ["a: {\n ? \n }\n", "a: {b: 1,\n : 2}\n", "a:\n  ?\n  : 1\n"])
def test_an_empty_key_is_placed_as_pyyaml_places_it(text: str) -> None:
    """libyaml places an empty key at the next token (a line below); PyYAML reads those."""
    assert yamldoc._plain_document("site.yaml", text) is None
    with pytest.raises(InventoryError):
        yamldoc._compose("site.yaml", text, yamldoc._LibyamlComposer)
    same_or_refused_by_libyaml(text)


def repository_yaml() -> list[Path]:
    listed = subprocess.run(["git", "ls-files", "*.yaml", "*.yml"], cwd=REPO, check=True,
                            capture_output=True, text=True).stdout.split()
    return [REPO / name for name in listed]


@needs_libyaml
@pytest.mark.parametrize("text", [HEAD, *ACCEPTED, *(r[1] for r in REFUSALS)])
def test_libyaml_reads_the_same_nodes_as_pyyaml(text: str) -> None:
    same_or_refused_by_libyaml(text)


@needs_libyaml
def test_every_yaml_file_of_the_repository_reads_the_same() -> None:
    files = repository_yaml()
    assert len(files) > 5
    for path in files:
        same_or_refused_by_libyaml(path.read_text(encoding="utf-8"))


@needs_libyaml
def test_a_valid_inventory_is_read_by_libyaml(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The point of it all: PyYAML's pure-Python scanner is most of collecting a big drill."""

    def refuse(stream: str) -> None:
        raise AssertionError("PyYAML's own parser read a file libyaml accepts")

    monkeypatch.setattr(yamldoc, "_BoundedLoader", refuse)
    path = tmp_path / "site.yaml"
    path.write_text(HEAD + "    attributes: {a: &x [1, 2], b: *x}\n")
    plan = load_plan(path)
    assert plan.hosts["app01"].attributes == {"a": (1, 2), "b": (1, 2)}


@needs_libyaml
def test_a_usual_inventory_is_read_without_nodes(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Composing nodes and converting them was most of what remained of reading a file."""

    def refuse(name: str, text: str) -> None:
        raise AssertionError("a usual inventory was composed into nodes")

    monkeypatch.setattr(yamldoc, "_node_document", refuse)
    path = tmp_path / "site.yaml"
    path.write_text(HEAD + "    attributes: {a: [1, 2.5, true, ~, '3'], b: 4:00, c: 2024-05-01}\n"
                    "    checks:\n      reach:\n        - target: 10.0.0.9:22\n")
    plan = load_plan(path)
    assert plan.hosts["app01"].attributes == {"a": (1, 2.5, True, None, "3"), "b": "4:00",
                                              "c": "2024-05-01"}
    assert [(item.key, item.source.line) for item in plan.items] == [
        ("app01::reach[10.0.0.9:22]", 9)]


@needs_libyaml
@pytest.mark.parametrize("text", [
    HEAD + "    attributes: &a {x: 1}\n", HEAD + "    attributes: !!map {x: 1}\n",
    HEAD + "    address: 10.0.0.2\n", HEAD + "    <<: {x: 1}\n", HEAD + '    "\\x01": 1\n',
    HEAD + "    attributes: {x: !!int y}\n", HEAD + "---\n" + HEAD, "- a\n", "",
    HEAD + "    attributes: " + "[" * 70 + "]" * 70 + "\n"])
def test_what_the_direct_reading_declines_is_left_to_the_nodes(text: str) -> None:
    """Anchors, tags, duplicate and merge keys, control characters, values a tag refuses, a
    second document, a document that is no mapping, and depth: the nodes word those."""
    assert yamldoc._plain_document("site.yaml", text) is None
    same_or_refused_by_libyaml(text)


def test_with_either_parser_the_lines_are_those_written(tmp_path: Path, parser: str) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(HEAD + "    checks:\n      reach:\n        - {target: 10.0.0.9:22}\n\n"
                    "        - target: 10.0.0.9:23\n          timeout: 5s\n")
    sources = {item.key: (item.source.line, item.source.place) for item in load_plan(path).items}
    assert sources == {"app01::reach[10.0.0.9:22]": (8, "hosts.app01.checks.reach[0]"),
                       "app01::reach[10.0.0.9:23]": (10, "hosts.app01.checks.reach[1]")}


SEEDS = [*FUZZ_SEEDS, ACCEPTED[-1]]
# More for a longer hunt of disagreements (3000 found none past tabs and BOMs).
EXAMPLES = int(os.environ.get("DRCHECK_YAML_EXAMPLES", "300"))
RAW = ["4:00", ".inf", "022", "2024-05-01", "~", "''", '"\\ud800"', '"a\\0b"', "!vault x",
       "!!binary aGVsbG8=", "!!set {a, b}", "&anchor x", "*undefined", "[", "{", "}", "]",
       "'unclosed", '"unclosed', "- a", "a: b: c", "`id`", "@x", "<<: {a: 1}", "? complex",
       "| \n  block", "> folded", "{a: [b, {c: d}]}", "&a [*a]", "\u2028", "\x85", "\ufeff",
       "%YAML 1.1", "---", "...", "#", "'it''s'", '"\\x41\\u00e9"', "? [a]\n: b"]


# Values the direct reading takes (so that it, too, is compared), twice as likely.
PLAIN = ["1", "-7", "2.5", "1e3", "0x1f", "0o17", "1_000", "+5", ".NaN", "-.inf", "yes", "No",
         "off", "null", "NULL", "2024-05-01 10:00:00", "2024-05-01t10:00:00.5+02:00", "1:30:00",
         "'022'", '"\\t"', '"a\\x01b"', "''", "x # comment", "'a: b'", "\"$(reboot)\"", "é😀",
         "[1, [2, {a: b}]]", "{a: {b: [c, d]}, e: 5}", "|+\n  kept\n", ">\n  folded text"]
RAW += PLAIN * 2


@needs_libyaml
@settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
          phases=(Phase.explicit, Phase.generate),
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(seed=st.sampled_from(SEEDS), data=st.data())
def test_mutated_inventories_read_the_same(seed: str, data: st.DataObject) -> None:
    lines = seed.splitlines()
    for _ in range(data.draw(st.integers(1, 3), label="edits")):
        index = data.draw(st.integers(0, len(lines) - 1), label="line")
        line = lines[index]
        action = data.draw(st.sampled_from(["value", "value", "value", "raw", "drop",
                                            "indent", "dedent"]), label="action")
        if action == "value" and ":" in line:
            lines[index] = f"{line.split(':', 1)[0]}: {data.draw(st.sampled_from(RAW))}"
        elif action == "raw":
            lines.insert(index, data.draw(st.sampled_from(RAW)))
        elif action == "drop" and len(lines) > 1:
            del lines[index]
        elif action == "indent":
            lines[index] = " " + line
        elif action == "dedent":
            lines[index] = line[1:]
    same_or_refused_by_libyaml("\n".join(lines) + "\n")
