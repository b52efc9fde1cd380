"""YAML to plain Python, remembering the line of every value by its place in the document.

PyYAML's composer gives nodes with marks; walking them ourselves (instead of yaml.safe_load)
keeps line numbers for error messages and lets us reject duplicate keys, which safe_load
silently resolves by keeping the last one (a typo'd duplicate would disable a check).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pytest_drcheck.inventory.errors import InventoryError, Problem


def place_of(path: tuple[str | int, ...]) -> str:
    """('hosts', 'app01', 'checks', 'dns', 0, 'expect') -> 'hosts.app01.checks.dns[0].expect'."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


@dataclass
class Document:
    file: str
    data: Any
    text: str
    lines: dict[tuple[str | int, ...], int] = field(default_factory=dict)

    def line_of(self, path: tuple[str | int, ...]) -> int | None:
        """The line of the nearest place that has one (an absent key points at its parent)."""
        while True:
            if path in self.lines:
                return self.lines[path]
            if not path:
                return None
            path = path[:-1]

    def problem(self, path: tuple[str | int, ...], message: str) -> Problem:
        return Problem(self.file, self.line_of(path), place_of(path), message)


def _convert(node: yaml.Node, path: tuple[str | int, ...], doc: Document,
             problems: list[Problem], constructor: yaml.SafeLoader) -> Any:
    doc.lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                problems.append(Problem(doc.file, key_node.start_mark.line + 1, place_of(path),
                                        "YAML merge keys (<<) are not supported; write the "
                                        "keys out or use defaults/groups/suites"))
                continue
            key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else str(
                constructor.construct_object(key_node, deep=True))
            child = (*path, key)
            if key in result:
                problems.append(Problem(
                    doc.file, key_node.start_mark.line + 1, place_of(child),
                    f"duplicate key '{key}' (first at line {doc.lines[child]}); "
                    "remove one of them"))
                continue
            # A key's place points at the key's line (the value may start lines later).
            doc.lines[child] = key_node.start_mark.line + 1
            result[key] = _convert(value_node, child, doc, problems, constructor)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_convert(item, (*path, i), doc, problems, constructor)
                for i, item in enumerate(node.value)]
    # Scalars: the safe constructor decides int/float/bool/null/str as yaml.safe_load would.
    try:
        return constructor.construct_object(node, deep=True)
    except (ValueError, yaml.constructor.ConstructorError) as exc:
        # A scalar that looks like a date but is not one (2025-13-01) makes PyYAML raise
        # ValueError, which would otherwise escape as a traceback.
        problems.append(Problem(doc.file, node.start_mark.line + 1, place_of(path),
                                f"'{node.value}' is not a valid date ({exc}); write a date "
                                "like 2025-12-31"))
        return None


def load_document(path: Path, display_name: str | None = None) -> Document:
    name = display_name or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InventoryError([Problem(name, None, "", "file not found; check the path")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InventoryError([Problem(name, None, "", f"cannot read: {exc}")]) from None
    doc = Document(name, None, text)
    try:
        nodes = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        what = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InventoryError([Problem(name, line, "", f"not valid YAML: {what}")]) from None
    if len(nodes) != 1:
        raise InventoryError([Problem(name, None, "",
                                      f"expected one YAML document, found {len(nodes)}")])
    problems: list[Problem] = []
    doc.data = _convert(nodes[0], (), doc, problems, yaml.SafeLoader(""))
    if problems:
        raise InventoryError(problems)
    return doc
