"""A quick yes for a valid document, without jsonschema.

Most inventories are valid, and for them jsonschema's work (importing it, and descending into
each of 10,000 check entries) was the largest part of collecting a large drill after the YAML.
``conforms`` compiles the schema's keywords into plain predicates and answers whether the
document is valid; only a "no" sends the document to jsonschema (inventory.validation), which
finds and words every problem. So the contract is one-sided: ``conforms`` never says yes to a
document jsonschema rejects. Where it is not sure (a keyword it does not know, values jsonschema
compares in its own way, anything raising) it says no, and jsonschema decides as before.

The semantics are those of inventory.validation's validator: Draft 2020-12, an integer is an
int (not 514.0, not true), a number is finite, formats ipv4 and ipv6 only, ``x-max-seconds``
bounds a duration written as text. Annotations (``x-expect``, ``title``...) are ignored.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from pytest_drcheck.durations import parse_duration

Predicate = Callable[[Any], bool]

# Keywords that say nothing about validity.
_ANNOTATIONS = frozenset({"$schema", "$id", "title", "description", "x-expect", "x-kind",
                          "x-secret", "$comment", "examples", "default"})


class _Unsupported(Exception):
    """A schema keyword (or form) this module does not judge: jsonschema decides."""


# Each keyword applies to the values jsonschema applies it to (isinstance, as its type checker
# does): a narrower test would skip a check that jsonschema makes.
def _integer(value: Any) -> bool:
    """As inventory.validation's: an int, not a bool (514.0 is no port)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any) -> bool:
    """As inventory.validation's: finite, not a bool."""
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def _object(value: Any) -> bool:
    return isinstance(value, dict)


def _array(value: Any) -> bool:
    return isinstance(value, list)


def _string(value: Any) -> bool:
    return isinstance(value, str)


_TYPES: dict[str, Predicate] = {
    "object": _object,
    "array": _array,
    "string": _string,
    "integer": _integer,
    "number": _number,
    "boolean": lambda value: isinstance(value, bool),
    "null": lambda value: value is None,
}


def _ipv4(text: str) -> bool:
    try:
        return bool(ipaddress.IPv4Address(text))
    except ValueError:
        return False


def _ipv6(text: str) -> bool:
    try:
        return not getattr(ipaddress.IPv6Address(text), "scope_id", "")
    except ValueError:
        return False


_FORMATS: dict[str, Callable[[str], bool]] = {"ipv4": _ipv4, "ipv6": _ipv6}


def _same(value: Any, wanted: Any) -> bool:
    """Equal and of the same type, for scalars only: stricter than jsonschema's equality
    (which takes 1 and 1.0 as equal), so never a yes it would not give."""
    return (type(value) is type(wanted) and isinstance(wanted, (str, int, float, bool))
            and value == wanted)


def _never(value: Any) -> bool:
    return False


class _Compiler:
    def __init__(self) -> None:
        # id of a subschema -> its predicate; the schemas are kept so the ids stay theirs.
        self.compiled: dict[int, Predicate] = {}
        self.kept: list[Any] = []

    def compile(self, schema: Any) -> Predicate:
        if schema is True:
            return lambda value: True
        if schema is False:
            return _never
        if not isinstance(schema, Mapping):
            raise _Unsupported(schema)
        found = self.compiled.get(id(schema))
        if found is None:
            self.kept.append(schema)
            try:
                found = self.build(schema)
            except _Unsupported:
                # A no wherever a value reaches it (jsonschema decides); where none does, as
                # in a family's schema that the document does not use, it changes nothing.
                found = _never
            self.compiled[id(schema)] = found
        return found

    def build(self, schema: Mapping[str, Any]) -> Predicate:
        tests: list[Predicate] = []
        done: set[str] = set()
        properties = schema.get("properties")
        if (isinstance(properties, Mapping) and schema.get("additionalProperties") is False
                and "patternProperties" not in schema):
            # The usual closed mapping, in one pass over the value's keys.
            tests.append(self._closed(properties))
            done = {"properties", "additionalProperties"}
        for keyword, argument in schema.items():
            if keyword in _ANNOTATIONS or keyword in done:
                continue
            build = getattr(self, "_" + keyword.replace("-", "_"), None)
            if build is None:
                raise _Unsupported(keyword)
            tests.append(build(argument, schema))
        # Unrolled for the usual two or three keywords: this runs for every value.
        if not tests:
            return lambda value: True
        if len(tests) == 1:
            return tests[0]
        if len(tests) == 2:
            first, second = tests
            return lambda value: first(value) and second(value)
        if len(tests) == 3:
            first, second, third = tests
            return lambda value: first(value) and second(value) and third(value)
        return lambda value: all(test(value) for test in tests)

    def _closed(self, properties: Mapping[str, Any]) -> Predicate:
        """``properties`` with ``additionalProperties: false``: every key known and valid."""
        subs = {name: self.compile(sub) for name, sub in properties.items()}

        def check(value: Any) -> bool:
            if not _object(value):
                return True
            for name, item in value.items():
                sub = subs.get(name)
                if sub is None or not sub(item):
                    return False
            return True
        return check

    # --- keywords, each as jsonschema applies it -----------------------------------------

    def _type(self, names: Any, schema: Mapping[str, Any]) -> Predicate:
        checks = [_TYPES[names]] if isinstance(names, str) else [_TYPES[n] for n in names]
        return lambda value: any(check(value) for check in checks)

    def _properties(self, properties: Mapping[str, Any], schema: Mapping[str, Any]
                    ) -> Predicate:
        subs = {name: self.compile(sub) for name, sub in properties.items()}

        def check(value: Any) -> bool:
            if not _object(value):
                return True
            # By the value's keys: an entry writes a few of the many keys its type knows.
            for name, item in value.items():
                sub = subs.get(name)
                if sub is not None and not sub(item):
                    return False
            return True
        return check

    def _additionalProperties(self, additional: Any, schema: Mapping[str, Any]) -> Predicate:
        if "patternProperties" in schema:
            raise _Unsupported("patternProperties")
        known = frozenset(schema.get("properties", {}))
        if additional is False:
            return lambda value: not _object(value) or known.issuperset(value)
        sub = self.compile(additional)
        return lambda value: not _object(value) or all(
            sub(item) for key, item in value.items() if key not in known)

    def _required(self, names: Any, schema: Mapping[str, Any]) -> Predicate:
        return lambda value: not _object(value) or all(n in value for n in names)

    def _propertyNames(self, names: Any, schema: Mapping[str, Any]) -> Predicate:
        sub = self.compile(names)
        return lambda value: not _object(value) or all(sub(key) for key in value)

    def _minProperties(self, least: int, schema: Mapping[str, Any]) -> Predicate:
        return lambda value: not _object(value) or len(value) >= least

    def _items(self, items: Any, schema: Mapping[str, Any]) -> Predicate:
        if "prefixItems" in schema:
            raise _Unsupported("prefixItems")
        sub = self.compile(items)
        return lambda value: not _array(value) or all(sub(item) for item in value)

    def _minItems(self, least: int, schema: Mapping[str, Any]) -> Predicate:
        return lambda value: not _array(value) or len(value) >= least

    def _uniqueItems(self, unique: Any, schema: Mapping[str, Any]) -> Predicate:
        if not unique:
            return lambda value: True
        # Texts only: jsonschema's equality of other values (1 == 1.0, true != 1) is its own.
        return lambda value: not _array(value) or (
            all(type(item) is str for item in value) and len(set(value)) == len(value))

    def _anyOf(self, branches: Any, schema: Mapping[str, Any]) -> Predicate:
        subs = [self.compile(branch) for branch in branches]
        return lambda value: any(sub(value) for sub in subs)

    def _const(self, wanted: Any, schema: Mapping[str, Any]) -> Predicate:
        return lambda value: _same(value, wanted)

    def _enum(self, options: Any, schema: Mapping[str, Any]) -> Predicate:
        return lambda value: any(_same(value, option) for option in options)

    def _minimum(self, bound: Any, schema: Mapping[str, Any]) -> Predicate:
        return lambda value: not _number(value) or value >= bound

    def _maximum(self, bound: Any, schema: Mapping[str, Any]) -> Predicate:
        return lambda value: not _number(value) or value <= bound

    def _exclusiveMinimum(self, bound: Any, schema: Mapping[str, Any]) -> Predicate:
        return lambda value: not _number(value) or value > bound

    def _minLength(self, least: int, schema: Mapping[str, Any]) -> Predicate:
        return lambda value: not _string(value) or len(value) >= least

    def _maxLength(self, most: int, schema: Mapping[str, Any]) -> Predicate:
        return lambda value: not _string(value) or len(value) <= most

    def _pattern(self, pattern: str, schema: Mapping[str, Any]) -> Predicate:
        search = re.compile(pattern).search
        return lambda value: not _string(value) or search(value) is not None

    def _format(self, name: str, schema: Mapping[str, Any]) -> Predicate:
        conforms = _FORMATS.get(name)
        if conforms is None:
            # Formats the validator does not check are annotations there too.
            return lambda value: True
        return lambda value: not _string(value) or conforms(value)

    def _x_max_seconds(self, most: float, schema: Mapping[str, Any]) -> Predicate:
        def check(value: Any) -> bool:
            if not _string(value):
                return True
            try:
                seconds = parse_duration(value)
            except ValueError:
                return True  # the pattern decides
            return 0 < seconds <= most
        return check


def conforms(schema: Mapping[str, Any], document: Any) -> bool:
    """True only if the document is valid against the schema (see the module's doc)."""
    try:
        return _Compiler().compile(schema)(document)
    except Exception:  # any doubt is a "no": jsonschema decides and words the problem
        return False
