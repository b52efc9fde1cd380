from __future__ import annotations

from collections import OrderedDict
from types import MappingProxyType

from pytest_drcheck.inventory.texts import texts_of
from pytest_drcheck.model import freeze


class Name(str):
    pass


def test_every_text_value_at_any_depth_once_and_no_key() -> None:
    document = {"hosts": {"a": {"address": "10.0.0.1", "checks": {"reach": [
        {"target": "db:5432"}, {"target": "db:5432", "timeout": 3}]}},
        "b": {"address": "10.0.0.1", "tags": ["x", ["y", {"deep": "z"}]]}},
        "n": [1, 2.5, None, True]}
    assert texts_of(document) == {"10.0.0.1", "db:5432", "x", "y", "z"}


def test_frozen_documents_and_other_mappings_are_looked_into() -> None:
    # A plan's document is frozen (MappingProxyType, tuples); extensions may hand any Mapping.
    document = freeze({"a": ["env:A", {"b": "file:/b"}]})
    assert texts_of(document) == {"env:A", "file:/b"}
    assert texts_of(OrderedDict(k=("t", MappingProxyType({"u": Name("v")})))) == {"t", "v"}


def test_a_text_alone_is_its_own_text_and_a_scalar_has_none() -> None:
    assert texts_of("env:A") == {"env:A"}
    assert texts_of(3) == set()
