"""jsonschema errors turned into one-line messages that say what is wrong and how to fix it."""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker, validators
from jsonschema.exceptions import ValidationError, best_match
from referencing.jsonschema import DRAFT202012

from pytest_drcheck.durations import parse_duration
from pytest_drcheck.inventory.errors import Problem, one_line
from pytest_drcheck.inventory.yamldoc import Document

_JSON_TYPES = {"object": "a mapping", "array": "a list", "string": "a string",
               "integer": "a whole number", "number": "a number", "boolean": "true or false",
               "null": "nothing"}


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "true" if value else "false"
    text = f"'{value}'" if isinstance(value, str) else str(value)
    text = one_line(text)
    return text if len(text) <= 60 else text[:57] + "..."


def _colon_hint(value: Any, mapping_expected: bool = False) -> str:
    """'name:app01' is one text to YAML: the space after the colon is missing."""
    after = r"\S" if mapping_expected else "[A-Za-z]"  # host:port is no missing space
    if isinstance(value, str) and re.match(rf"\A[A-Za-z_][A-Za-z0-9_-]*:{after}", value):
        return " (a space is missing after the ':'?)"
    return ""


def _suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _leaf(error: ValidationError) -> ValidationError:
    """For anyOf/oneOf without a hint of our own, the most relevant branch explains best."""
    while error.context and not error.schema.get("x-expect"):  # type: ignore[union-attr]
        error = best_match(error.context)
    return error


def _message(error: ValidationError) -> str:
    schema: Mapping[str, Any] = error.schema if isinstance(error.schema, Mapping) else {}
    expect = schema.get("x-expect")
    kind = schema.get("x-kind", "key")
    value = error.instance
    if error.validator == "additionalProperties" and isinstance(value, dict):
        allowed = sorted(schema.get("properties", {}))
        extras = [key for key in value if key not in allowed]
        key = extras[0] if extras else "?"
        hint = _suggest(key, allowed)
        fix = f"use one of {', '.join(allowed)}" if allowed else "remove it"
        if hint:
            fix = "fix the spelling"
        return f"unknown {kind} '{one_line(str(key))}'{hint}; {fix}"
    if error.validator == "required":
        missing = str(error.message).split("'")[1] if "'" in error.message else "?"
        return f"missing required key '{missing}'; add it"
    if error.validator == "propertyNames":
        return (f"{_describe(value)} is not a valid {kind} name; use letters, digits, '.', '-', "
                "'_' (at most 128)")
    if error.validator == "enum":
        options = [str(o) for o in error.validator_value]  # type: ignore[union-attr]
        # With a suggestion, the suggestion is the fix.
        hint = _suggest(str(value), options)
        return f"{_describe(value)} is not one of {', '.join(options)}{hint or '; use one of them'}"
    if schema.get("x-secret"):
        return f"the value (not shown) is not valid here; expected {expect}"
    if expect:
        return f"{_describe(value)} is not valid here{_colon_hint(value)}; expected {expect}"
    if error.validator == "type":
        wanted = error.validator_value
        names = [wanted] if isinstance(wanted, str) else list(wanted)  # type: ignore[arg-type]
        words = " or ".join(_JSON_TYPES.get(str(n), str(n)) for n in names)
        quote = "; quote it if it is text" if "a string" in words else ""
        hint = _colon_hint(value, "object" in names)
        return f"{_describe(value)} is not valid here{hint}; expected {words}{quote}"
    if error.validator == "minProperties":
        return "must not be empty; add an entry or remove the key"
    if error.validator == "minItems":
        return "must not be an empty list; add an entry or remove the key"
    if error.validator == "uniqueItems":
        return "has the same entry twice; remove the duplicate"
    if error.validator in ("minimum", "maximum"):
        bound = "at least" if error.validator == "minimum" else "at most"
        return f"{_describe(value)} is out of range; must be {bound} {error.validator_value}"
    if error.validator == "exclusiveMinimum":
        return f"{_describe(value)} is out of range; must be more than {error.validator_value}"
    if error.validator == "minLength":
        return "must not be empty; write a value or remove the key"
    if error.validator == "maxLength":
        return f"is longer than {error.validator_value} characters; shorten it"
    return f"{one_line(str(error.message))[:120]}; see 'drcheck schema'"


def _misspelt_required(errors: list[ValidationError]) -> set[tuple[int, str]]:
    """(id of a 'required' error, key) pairs explained by a misspelt key beside them: 'hostz'
    already says everything that 'missing hosts' would."""
    explained: set[tuple[int, str]] = set()
    for error in errors:
        if error.validator != "required":
            continue
        missing = str(error.message).split("'")[1] if "'" in error.message else ""
        for other in errors:
            if (other.validator == "additionalProperties" and other.instance is error.instance
                    and isinstance(other.instance, dict)
                    and difflib.get_close_matches(missing, list(other.instance), cutoff=0.6)):
                explained.add((id(error), missing))
    return explained


def _integer(checker: Any, instance: Any) -> bool:
    """An integer is written as one: 514.0 is not a port (JSON Schema would say it is)."""
    return isinstance(instance, int) and not isinstance(instance, bool)


def _number(checker: Any, instance: Any) -> bool:
    """NaN and infinities are no quantity (and pass every minimum/maximum)."""
    return (isinstance(instance, (int, float)) and not isinstance(instance, bool)
            and math.isfinite(instance))


def _max_seconds(validator: Any, maximum: float, instance: Any, schema: Mapping[str, Any]
                 ) -> Any:
    """``x-max-seconds``: the bound of a duration written as text (9999h)."""
    if not isinstance(instance, str):
        return
    try:
        seconds = parse_duration(instance)
    except ValueError:
        return  # the pattern reports it
    if seconds > maximum:
        yield ValidationError(f"{instance} is too long", validator="x-max-seconds",
                              validator_value=maximum)
    elif seconds <= 0:
        yield ValidationError(f"{instance} is zero", validator="x-max-seconds",
                              validator_value=maximum)


def _value_key(value: Any) -> Any:
    """A hashable stand-in for a YAML value that tells apart what == does not (1, 1.0, True)."""
    # Lists built inside: a generator fed to tuple() costs more for the short entries here.
    if isinstance(value, dict):
        return (dict, tuple([(key, _value_key(item)) for key, item in value.items()]))
    if isinstance(value, list):
        return (list, tuple([_value_key(item) for item in value]))
    return (type(value), value)


# (id of an `items` schema, value key) of list entries found valid in this validation.
_VALID_ENTRIES: ContextVar[set[tuple[int, Any]] | None] = ContextVar("valid_entries",
                                                                     default=None)
# (id of a scope, id of a subschema) -> (the scope, the subschema, the validator descend makes
# for them), in this validation. Scope and subschema are kept: their ids stay theirs.
_CHILDREN: ContextVar[dict[tuple[int, int], tuple[Any, Any, Any]] | None] = ContextVar(
    "child_validators", default=None)
_ITEMS = Draft202012Validator.VALIDATORS["items"]


def _child_validator(validator: Any, subschema: Any) -> Any:
    """The validator ``validator.descend`` makes for ``subschema`` (the subschema in its own
    resource), made once per validation for each scope and subschema: making it again for
    every value was a fifth of validating 10,000 distinct entries. None where jsonschema
    keeps its scope otherwise, or outside a validation (descend is asked then)."""
    children = _CHILDREN.get()
    resolver = getattr(validator, "_resolver", None)
    if (children is None or not isinstance(subschema, Mapping) or resolver is None
            or getattr(validator, "_ref_resolver", None) is not None):
        return None
    key = (id(resolver), id(subschema))
    known = children.get(key)
    if known is None:
        scope = resolver.in_subresource(DRAFT202012.create_resource(subschema))
        known = children[key] = (resolver, subschema,
                                 validator.evolve(schema=subschema, _resolver=scope))
    return known[2]


def _descend(validator: Any, instance: Any, subschema: Any, path: str | int,
             schema_path: str | int | None = None) -> Any:
    """``validator.descend(instance, subschema, path, schema_path)``, with the validator it
    makes for the subschema made once (``_child_validator``)."""
    child = _child_validator(validator, subschema)
    if child is None:
        yield from validator.descend(instance, subschema, path=path, schema_path=schema_path)
        return
    for error in child.iter_errors(instance):
        error.path.appendleft(path)  # placed as descend places them
        if schema_path is not None:
            error.schema_path.appendleft(schema_path)
        yield error


def _properties(validator: Any, properties: Mapping[str, Any], instance: Any,
                schema: Mapping[str, Any]) -> Any:
    """jsonschema's ``properties``, through ``_descend``."""
    if not validator.is_type(instance, "object"):
        return
    for name, subschema in properties.items():
        if name in instance:
            yield from _descend(validator, instance[name], subschema, name, name)


def _items_once(validator: Any, items: Any, instance: Any, schema: Mapping[str, Any]) -> Any:
    """``items``, validating each distinct entry once: a drill repeats the same check entries
    on many hosts, and validating each again was a fifth of collecting a large drill. Whether
    a value is valid depends on the value and the schema only; errors are never reused, each
    invalid entry is validated (and reported) where it is."""
    valid = _VALID_ENTRIES.get()
    if (valid is None or items is False or "prefixItems" in schema
            or not isinstance(instance, list)):
        yield from _ITEMS(validator, items, instance, schema)
        return
    for index, item in enumerate(instance):
        key = (id(items), _value_key(item))
        if key in valid:
            continue
        errors = list(_descend(validator, item, items, index))
        if errors:
            yield from errors
        else:
            valid.add(key)


def _dynamic_scope(schema: Any) -> bool:
    """$dynamicRef makes a subschema's meaning depend on how it was reached: no reuse then."""
    if isinstance(schema, Mapping):
        return ("$dynamicRef" in schema or "$recursiveRef" in schema
                or any(_dynamic_scope(value) for value in schema.values()))
    if isinstance(schema, list):
        return any(_dynamic_scope(value) for value in schema)
    return False


_TYPES = Draft202012Validator.TYPE_CHECKER.redefine_many(
    {"integer": _integer, "number": _number})
InventoryValidator = validators.extend(  # type: ignore[no-untyped-call]
    Draft202012Validator, {"x-max-seconds": _max_seconds, "items": _items_once,
                           "properties": _properties},
    type_checker=_TYPES)
# Only the formats the vocabulary uses; others stay annotations.
_FORMATS = FormatChecker(formats=("ipv4", "ipv6"))


def validate(doc: Document, schema: Mapping[str, Any],
             base: tuple[str | int, ...] = ()) -> list[Problem]:
    validator = InventoryValidator(schema, format_checker=_FORMATS)
    problems: dict[tuple[str | int, ...], Problem] = {}
    dynamic = _dynamic_scope(schema)
    reuse = _VALID_ENTRIES.set(None if dynamic else set())
    children = _CHILDREN.set(None if dynamic else {})
    try:
        errors = [_leaf(raw) for raw in validator.iter_errors(doc.data)]
    finally:
        _CHILDREN.reset(children)
        _VALID_ENTRIES.reset(reuse)
    explained = {error_id for error_id, _ in _misspelt_required(errors)}
    for error in errors:
        if id(error) in explained:
            continue
        path = (*base, *error.absolute_path)
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            allowed = error.schema.get("properties", {})  # type: ignore[union-attr]
            extras = [k for k in error.instance if k not in allowed]
            if extras:
                path = (*path, extras[0])
        # One message per place: the first is the most specific for that place.
        problems.setdefault(path, doc.problem(path, _message(error)))
    return list(problems.values())
