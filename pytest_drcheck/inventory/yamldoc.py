"""YAML to plain Python, remembering the line of every value by its place in the document.

PyYAML's composer gives nodes with marks; walking them ourselves (instead of yaml.safe_load)
keeps line numbers for error messages and lets us reject duplicate keys, which safe_load
silently resolves by keeping the last one (a typo'd duplicate would disable a check).
The events come from libyaml when PyYAML has it (7x faster than PyYAML's pure-Python scanner
and parser: most of collecting a large drill); a file libyaml refuses is read again by the
pure-Python parser, whose messages (and lines) are the ones the hints below know.

An inventory is untrusted text as far as resources go: the file size, the nesting depth and
the nodes that aliases expand to are bounded, each refusal one line. YAML 1.1's surprises are
kept as text, for the schema to reject with a hint, instead of becoming silently different
numbers: base-60 (``4:00`` = 240), octal (``022`` = 18), ``.inf``/``.nan`` and implicit dates.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pytest_drcheck.inventory.errors import InventoryError, Problem

# A thousand hosts with the lab's suites are ~240 KB and load in 1.5 s of CPU; at 2 MiB (8000
# such hosts, 376,000 checks: benchmarks/inventory_load.py) 14 s and ~430 MB. At 4 MiB a file of
# 120,000 one-line hosts took 17 s of CPU and 450 MB: past any real drill.
MAX_FILE_BYTES = 2 * 1024 * 1024
# Deeper than any inventory needs, well inside Python's recursion limit.
MAX_DEPTH = 64
# Nodes an alias may stand for, in total (a billion-laughs file expands to 10^9).
MAX_ALIAS_NODES = 10_000
DOCUMENT = "document"
# PyYAML built with libyaml (wheels are): events from C.
LIBYAML: bool = bool(getattr(yaml, "__with_libyaml__", False))
_RESOLVER = yaml.resolver.Resolver()

_STANDARD = "tag:yaml.org,2002:"
_SCALAR_TAGS = {f"{_STANDARD}{t}" for t in ("str", "int", "float", "bool", "null", "timestamp")}
_COLLECTION_TAGS = {f"{_STANDARD}map", f"{_STANDARD}seq"}
_STR = f"{_STANDARD}str"
_MERGE = f"{_STANDARD}merge"
# What _bad_character looks for (category Cc is exactly these controls), found in C first.
_SUSPECT = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
# Plain decimal integers: anything else YAML 1.1 reads as an int (022, 0x1f, 4:00, 1_000) is
# kept as written.
_PLAIN_INT = re.compile(r"\A[-+]?(?:0|[1-9][0-9]*)\Z")
_SYNTAX_HINTS: tuple[tuple[str, str], ...] = (
    ("found character '\\t'", "a tab character; indent with spaces only"),
    ("mapping values are not allowed", "a ':' YAML did not expect here; check that the line "
     "above ends its key with ':' and is indented like its neighbours, and quote values that "
     "contain ': '"),
    ("did not find expected key", "the indentation of this line does not match the lines "
     "above; align the keys of one mapping in the same column"),
    ("expected <block end>", "the indentation of this line does not match the lines above; "
     "align the keys of one mapping (or the '-' of one list) in the same column"),
    ("did not find expected '-' indicator", "a list item is not aligned with the '-' of the "
     "items above; align them"),
    ("could not find expected ':'", "a key without ':' after it; add ': ' after the key, or "
     "quote the text"),
    ("found undefined alias", "an alias (*name) without an anchor (&name) above it; define "
     "the anchor first or write the value out"),
    ("found '<stream end>'", "the file ends inside an unclosed [...], {...} or quote; close "
     "it"),
    ("found unexpected end of stream", "a quote or bracket is not closed; close it"),
    ("found unknown escape character", "a backslash escape double quotes do not know; use "
     "single quotes or write \\\\"),
    ("expected ',' or ']'", "a flow list [...] is not closed or misses a ','; close it"),
    ("expected ',' or '}'", "a flow mapping {...} is not closed or misses a ','; close it"),
    ("found character '@'", "'@' or '`' cannot start a plain value; quote the value"),
    ("found character '`'", "'@' or '`' cannot start a plain value; quote the value"),
)


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
        return Problem(self.file, self.line_of(path), place_of(path) or DOCUMENT, message)


class _TooDeep(Exception):
    def __init__(self, line: int) -> None:
        super().__init__(line)
        self.line = line


class _DepthBound(yaml.composer.Composer):
    """PyYAML's composer recurses once per level: bound the depth before Python's limit does."""

    _depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                event = self.peek_event()  # type: ignore[attr-defined]
                raise _TooDeep(event.start_mark.line + 1)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


class _BoundedLoader(_DepthBound, yaml.SafeLoader):
    """PyYAML's own scanner and parser: the reference, and every message's source."""

    def __init__(self, stream: str) -> None:
        yaml.SafeLoader.__init__(self, stream)


class _LibyamlComposer(_DepthBound, yaml.resolver.Resolver):
    """The same composer and resolver over libyaml's events. (libyaml's own composer recurses
    in C, where no depth bound can stop it; the nodes are PyYAML's either way.)"""

    def __init__(self, stream: str) -> None:
        parser = yaml._yaml.CParser(stream)
        self.check_event = parser.check_event
        self.peek_event = parser.peek_event
        self.get_event = parser.get_event
        yaml.composer.Composer.__init__(self)
        yaml.resolver.Resolver.__init__(self)

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        # An empty key ('? ' alone, '{: x}') is placed by libyaml at the next token, by PyYAML
        # where it stands, possibly on another line: PyYAML reads such a file. (An empty value
        # differs too, but a value's place is its key's line.)
        if isinstance(parent, yaml.MappingNode) and index is None:
            event = self.peek_event()
            if isinstance(event, yaml.ScalarEvent) and not event.value:
                raise yaml.YAMLError("an empty key")
        return super().compose_node(parent, index)

    def dispose(self) -> None:
        pass


class _Converter:
    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self.problems: list[Problem] = []
        self.constructor = yaml.SafeLoader("")
        self.seen: set[int] = set()
        self.alias_nodes = 0

    def problem(self, line: int, path: tuple[str | int, ...], message: str) -> None:
        self.problems.append(Problem(self.doc.file, line, place_of(path) or DOCUMENT, message))

    def convert(self, node: yaml.Node, path: tuple[str | int, ...],
                ancestors: frozenset[int]) -> Any:
        line = node.start_mark.line + 1
        self.doc.lines.setdefault(path, line)
        if id(node) in ancestors:
            raise _Refused(line, path, "an anchor contains an alias of itself (an endless "
                                       "value); write the value out")
        if id(node) in self.seen:
            # Second visit: an alias. Count what it stands for.
            self.alias_nodes += 1
            if self.alias_nodes > MAX_ALIAS_NODES:
                raise _Refused(line, path, f"aliases expand to more than {MAX_ALIAS_NODES} "
                                           "values; write the values out or use groups and "
                                           "suites")
        self.seen.add(id(node))
        if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)):
            if node.tag not in _COLLECTION_TAGS:
                self.problem(line, path, f"YAML tag {_tag(node.tag)} is not supported here; "
                                         "remove it")
                return None
            inner = ancestors | {id(node)}
            if isinstance(node, yaml.SequenceNode):
                return [self.convert(item, (*path, i), inner)
                        for i, item in enumerate(node.value)]
            return self._mapping(node, path, inner)
        return self._scalar(node, path, line)

    def _mapping(self, node: yaml.MappingNode, path: tuple[str | int, ...],
                 ancestors: frozenset[int]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key_line = key_node.start_mark.line + 1
            if key_node.tag == f"{_STANDARD}merge":
                self.problem(key_line, path, "YAML merge keys (<<) are not supported; write the "
                                             "keys out or use defaults/groups/suites")
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                self.problem(key_line, path, "a key is a list or mapping; keys are names, "
                                             "write the key as plain text")
                continue
            key = str(key_node.value)
            bad = _bad_character(key)
            if bad:
                self.problem(key_line, path, f"a key contains {bad}; remove it")
                continue
            child = (*path, key)
            if key in result:
                self.problem(key_line, child, f"duplicate key '{_short(key)}' (first at line "
                                              f"{self.doc.lines[child]}); remove one of them")
                continue
            # A key's place points at the key's line (the value may start lines later).
            self.doc.lines[child] = key_line
            result[key] = self.convert(value_node, child, ancestors)
        return result

    def _scalar(self, node: yaml.Node, path: tuple[str | int, ...], line: int) -> Any:
        if node.tag not in _SCALAR_TAGS:
            # The value is not shown: '!vault <secret>' is exactly where secrets get pasted.
            self.problem(line, path, f"YAML tag {_tag(node.tag)} is not supported; remove the "
                                     "tag (secrets are written as env:NAME or file:PATH)")
            return None
        text = str(node.value)
        # Control characters are fine in values (clamd's "zPING\0"); a lone surrogate cannot
        # even be printed or written to JSON.
        bad = _bad_character(text, controls=False)
        if bad:
            self.problem(line, path, f"the value contains {bad}; remove it")
            return None
        if node.tag == _STR:
            return text  # what SafeConstructor gives, without its bookkeeping per value
        try:
            value = self.constructor.construct_object(node, deep=True)
        except Exception:  # PyYAML raises ValueError, KeyError, TypeError... on bad values
            what = node.tag.rsplit(":", 1)[-1]
            explicit = not _implicit_tag(node)
            if what == "timestamp" and not explicit:
                # An impossible date (2025-13-01) in a plain value: text, for the schema.
                return text
            self.problem(line, path, f"the value is not a valid {what}; write a {what} or "
                                     "remove the tag")
            return None
        return _normalised(value, text, node)


class _Refused(Exception):
    def __init__(self, line: int, path: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.line = line
        self.path = path
        self.message = message


def _implicit_tag(node: yaml.Node) -> bool:
    """True when YAML chose the tag (a plain value), false for an explicit !!tag."""
    if getattr(node, "style", None):
        return node.tag == f"{_STANDARD}str"  # quoted: YAML chose str
    resolved = _RESOLVER.resolve(yaml.ScalarNode, node.value, (True, False))  # type: ignore[no-untyped-call]
    return bool(resolved == node.tag)


def _normalised(value: Any, text: str, node: yaml.Node) -> Any:
    """YAML 1.1 readings a person rarely means, kept as the text written."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and not _PLAIN_INT.match(text.strip()):
        return text
    if isinstance(value, float) and (not math.isfinite(value) or ":" in text):
        return text
    if hasattr(value, "isoformat") and _implicit_tag(node):
        # Dates are text like any other (a drill named 2024-05-01); waivers parse their own.
        return text
    return value


def _tag(tag: str) -> str:
    shown = "!!" + tag[len(_STANDARD):] if tag.startswith(_STANDARD) else tag
    return f"'{_short(shown)}'"


def _short(text: str, limit: int = 60) -> str:
    text = "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _bad_character(text: str, controls: bool = True) -> str:
    if not _SUSPECT.search(text):
        return ""
    for char in text:
        if "\ud800" <= char <= "\udfff":
            return f"a lone surrogate ({ascii(char)[1:-1]})"
        if controls and unicodedata.category(char) == "Cc":
            return f"a control character ({ascii(char)[1:-1]})"
    return ""


def _read(path: Path, name: str) -> str:
    try:
        with path.open("rb") as stream:
            raw = stream.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise InventoryError([Problem(name, None, "", "file not found; check the path")]) from None
    except OSError as exc:
        raise InventoryError([Problem(name, None, "", f"cannot read: {exc.strerror}; check "
                                                      "the path and its permissions")]) from None
    if len(raw) > MAX_FILE_BYTES:
        raise InventoryError([Problem(name, 1, DOCUMENT, (
            f"the file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB; split it (suites "
            "hold shared checks) or check that it is the right file"))])
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise InventoryError([Problem(name, line, DOCUMENT, (
            f"byte 0x{raw[exc.start]:02x} is not UTF-8; save the file as UTF-8"))]) from None


def _syntax_problem(name: str, exc: yaml.YAMLError, text: str) -> Problem:
    if isinstance(exc, yaml.reader.ReaderError):
        line = text[:exc.position].count("\n") + 1
        char = exc.character if isinstance(exc.character, str) else chr(exc.character)
        return Problem(name, line, DOCUMENT, f"the character {char!a} is not allowed in "
                                             "YAML; remove it")
    mark = getattr(exc, "problem_mark", None)
    line = mark.line + 1 if mark is not None else 1
    what = str(getattr(exc, "problem", None) or str(exc).splitlines()[0])
    hint = next((h for key, h in _SYNTAX_HINTS if key in what), "")
    if not hint:
        hint = f"{_short(what)}; check the indentation and the ': ' after each key"
    context = getattr(exc, "context_mark", None)
    if context is not None and context.line + 1 != line:
        hint += f" (the block starts at line {context.line + 1})"
    return Problem(name, line, DOCUMENT, f"not valid YAML: {hint}")


def _compose(name: str, text: str, loader_class: type[_BoundedLoader | _LibyamlComposer]
             ) -> list[yaml.Node]:
    nodes: list[yaml.Node] = []
    loader: _BoundedLoader | _LibyamlComposer | None = None
    try:
        loader = loader_class(text)
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            nodes.append(node)
            if len(nodes) > 1:
                raise InventoryError([Problem(name, node.start_mark.line + 1, DOCUMENT, (
                    "a second YAML document ('---') starts here; an inventory is one document: "
                    "remove the '---' line or split the file"))])
    except _TooDeep as exc:
        raise InventoryError([Problem(name, exc.line, DOCUMENT, (
            f"nested more than {MAX_DEPTH} levels deep; flatten the structure"))]) from None
    except yaml.YAMLError as exc:
        raise InventoryError([_syntax_problem(name, exc, text)]) from None
    finally:
        if loader is not None:
            loader.dispose()
    return nodes


def _libyaml_reads(text: str) -> bool:
    """Tabs and byte order marks are where the two parsers disagree (libyaml takes a BOM
    inside a document for a blank, PyYAML refuses it): such files are PyYAML's to read."""
    return LIBYAML and "\t" not in text and "\ufeff" not in text


def _nodes(name: str, text: str) -> list[yaml.Node]:
    """libyaml's reading when it accepts the file; else (or without libyaml) PyYAML's, so a
    refusal is worded, placed and hinted the same whichever parser PyYAML was built with."""
    if _libyaml_reads(text):
        try:
            return _compose(name, text, _LibyamlComposer)
        except Exception:  # any refusal is worded by the reference below
            pass
    return _compose(name, text, _BoundedLoader)


class _NotPlain(Exception):
    """The file uses something the direct reading leaves to the nodes (an anchor, a tag...)."""


def _plain_document(name: str, text: str) -> Document | None:
    """The data and lines straight from libyaml's events, for the usual file: one document, a
    mapping, no anchors, aliases, tags, merge or duplicate keys, no control character and
    nothing a scalar's reading objects to. The nodes and their conversion, for every other
    file, find and word what this declines; for these files both give the same data and
    lines (tests/inventory/test_yamldoc.py holds them to it)."""
    doc = Document(name, None, text)
    try:
        doc.data = _PlainReader(doc).read()
    except (_NotPlain, yaml.YAMLError):
        return None
    return doc


def _line(event: Any) -> int:
    return int(event.start_mark.line) + 1


def _resolve(text: str, implicit: tuple[bool, bool]) -> str:
    """The tag YAML gives a scalar written without one."""
    tag: str = _RESOLVER.resolve(yaml.ScalarNode, text, implicit)  # type: ignore[no-untyped-call]
    return tag


class _PlainReader:
    def __init__(self, doc: Document) -> None:
        self.get_event: Callable[[], Any] = yaml._yaml.CParser(doc.text).get_event
        self.converter = _Converter(doc)
        self.lines = doc.lines
        # The tag of each text as written (keys repeat on every host): resolved once.
        self.tags: dict[tuple[str, tuple[bool, bool]], str] = {}
        # Texts (as written) already found to be a plain key, or a plain text value: keys and
        # many values repeat on every host, and are looked at once.
        self.plain_keys: set[tuple[str, tuple[bool, bool]]] = set()
        self.plain_texts: set[tuple[str, tuple[bool, bool]]] = set()

    def read(self) -> dict[str, Any]:
        get = self.get_event
        if type(get()) is not yaml.StreamStartEvent or type(get()) is not yaml.DocumentStartEvent:
            raise _NotPlain
        start: Any = get()
        if (type(start) is not yaml.MappingStartEvent or start.tag is not None
                or start.anchor is not None):
            raise _NotPlain
        root: dict[str, Any] = {}
        self.lines[()] = _line(start)
        self._fill(root, ())
        if type(get()) is not yaml.DocumentEndEvent or type(get()) is not yaml.StreamEndEvent:
            raise _NotPlain  # a second document
        return root

    def _fill(self, root: dict[str, Any], root_path: tuple[str | int, ...]) -> None:
        """Without recursion: a stack of the open collections, each with its path and, for a
        mapping, the key whose value comes next."""
        get = self.get_event
        lines = self.lines
        plain_keys = self.plain_keys
        plain_texts = self.plain_texts
        stack: list[tuple[dict[str, Any] | list[Any], tuple[str | int, ...]]] = [
            (root, root_path)]
        keys: list[str | None] = [None]
        while stack:
            event = get()
            kind = type(event)
            container, path = stack[-1]
            if kind is yaml.MappingEndEvent or kind is yaml.SequenceEndEvent:
                stack.pop()
                keys.pop()
                continue
            if event.anchor is not None or kind is yaml.AliasEvent or event.tag is not None:
                raise _NotPlain
            if isinstance(container, dict) and keys[-1] is None:
                key = event.value if kind is yaml.ScalarEvent else None
                if (key is None or key in container
                        or ((key, event.implicit) not in plain_keys
                            and not self._plain_key(key, event.implicit))):
                    raise _NotPlain
                keys[-1] = key
                key_path = (*path, key)
                lines[key_path] = event.start_mark.line + 1
                continue
            if isinstance(container, dict):
                child: tuple[str | int, ...] = (*path, keys[-1])  # type: ignore[arg-type]
                keys[-1] = None
            else:
                child = (*path, len(container))
            line = event.start_mark.line + 1
            lines.setdefault(child, line)
            value: Any
            if kind is yaml.ScalarEvent:
                value = event.value
                if (value, event.implicit) not in plain_texts:
                    value = self._scalar(event, child, line)
            elif len(stack) + 1 >= MAX_DEPTH:
                raise _NotPlain
            elif kind is yaml.MappingStartEvent:
                value = {}
            elif kind is yaml.SequenceStartEvent:
                value = []
            else:
                raise _NotPlain
            if isinstance(container, dict):
                container[child[-1]] = value  # type: ignore[index]
            else:
                container.append(value)
            if kind is not yaml.ScalarEvent:
                stack.append((value, child))
                keys.append(None)

    def _plain_key(self, key: str, implicit: tuple[bool, bool]) -> bool:
        if not key or _SUSPECT.search(key) or self._tag(key, implicit) == _MERGE:
            return False
        self.plain_keys.add((key, implicit))
        return True

    def _tag(self, text: str, implicit: tuple[bool, bool]) -> str:
        tag = self.tags.get((text, implicit))
        if tag is None:
            tag = self.tags[text, implicit] = _resolve(text, implicit)
        return tag

    def _scalar(self, event: Any, path: tuple[str | int, ...], line: int) -> Any:
        text: str = event.value
        if _bad_character(text, controls=False):
            raise _NotPlain
        tag = self._tag(text, event.implicit)
        if tag == _STR:
            self.plain_texts.add((text, event.implicit))
            return text
        if tag not in _SCALAR_TAGS:
            raise _NotPlain
        node = yaml.ScalarNode(tag, text, event.start_mark, event.end_mark, event.style)
        value = self.converter._scalar(node, path, line)
        if self.converter.problems:
            raise _NotPlain
        return value


def load_document(path: Path, display_name: str | None = None) -> Document:
    name = display_name or str(path)
    text = _read(path, name)
    if _libyaml_reads(text) and (plain := _plain_document(name, text)) is not None:
        return plain
    return _node_document(name, text)


def _node_document(name: str, text: str) -> Document:
    doc = Document(name, None, text)
    nodes = _nodes(name, text)
    if not nodes:
        raise InventoryError([Problem(name, 1, DOCUMENT, "the file is empty; an inventory "
                                                         "needs version, drill and hosts")])
    converter = _Converter(doc)
    try:
        doc.data = converter.convert(nodes[0], (), frozenset())
    except _Refused as exc:
        raise InventoryError([Problem(name, exc.line, place_of(exc.path) or DOCUMENT,
                                      exc.message)]) from None
    if converter.problems:
        raise InventoryError(converter.problems)
    return doc
