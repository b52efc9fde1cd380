"""jsonschema errors turned into one-line messages that say what is wrong and how to fix it."""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

from pytest_drcheck.inventory.errors import Problem
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
    text = json.dumps(value) if not isinstance(value, str) else f"'{value}'"
    return text if len(text) <= 60 else text[:57] + "..."


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
        listing = f"; known: {', '.join(allowed)}" if allowed and not hint else ""
        return f"unknown {kind} '{key}'{hint}{listing}"
    if error.validator == "required":
        missing = str(error.message).split("'")[1] if "'" in error.message else "?"
        return f"missing required key '{missing}'"
    if error.validator == "propertyNames":
        return f"{_describe(value)} is not a valid {kind} name; use letters, digits, '.', '-', '_'"
    if error.validator == "enum":
        options = [str(o) for o in error.validator_value]  # type: ignore[union-attr]
        return (f"{_describe(value)} is not one of {', '.join(options)}"
                f"{_suggest(str(value), options)}")
    if schema.get("x-secret"):
        return f"the value (not shown) is not valid here; expected {expect}"
    if expect:
        return f"{_describe(value)} is not valid here; expected {expect}"
    if error.validator == "type":
        wanted = error.validator_value
        names = [wanted] if isinstance(wanted, str) else list(wanted)  # type: ignore[arg-type]
        words = " or ".join(_JSON_TYPES.get(str(n), str(n)) for n in names)
        return f"expected {words}, got {_describe(value)}"
    if error.validator == "minProperties":
        return "must not be empty"
    if error.validator == "minItems":
        return "must not be an empty list"
    if error.validator == "uniqueItems":
        return "has the same entry twice; remove the duplicate"
    if error.validator in ("minimum", "maximum"):
        bound = "at least" if error.validator == "minimum" else "at most"
        return f"{_describe(value)} is out of range; must be {bound} {error.validator_value}"
    if error.validator == "minLength":
        return "must not be empty"
    return str(error.message)


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


def validate(doc: Document, schema: Mapping[str, Any],
             base: tuple[str | int, ...] = ()) -> list[Problem]:
    validator = Draft202012Validator(schema)
    problems: dict[tuple[str | int, ...], Problem] = {}
    errors = [_leaf(raw) for raw in validator.iter_errors(doc.data)]
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
