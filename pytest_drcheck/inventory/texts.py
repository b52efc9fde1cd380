"""The distinct texts of a loaded document, found in one pass.

Several layers look for texts of a kind in the whole document (secret references, AWS
references), and a large drill has tens of thousands of values that repeat on every host:
one flat pass that keeps each text once, instead of a recursive walk per layer that looks at
every value again (a walk per layer was a tenth of collecting a 10,000-check drill).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

# What a loaded (dict, list) or frozen (MappingProxyType, tuple) document is made of.
_SEQUENCES = (list, tuple)
_CONTAINERS = frozenset({dict, MappingProxyType, list, tuple})


def texts_of(value: Any) -> set[str]:
    """Every text that is a value (not a key) anywhere inside ``value``, mappings and
    lists or tuples of any depth, once each."""
    if isinstance(value, str):
        return {value}
    found: set[str] = set()
    containers = [value] if isinstance(value, (Mapping, *_SEQUENCES)) else []
    while containers:
        container = containers.pop()
        children = container if isinstance(container, _SEQUENCES) else container.values()
        for child in children:
            kind = type(child)
            # The exact types first: an ABC's isinstance is slow, and nearly every value is
            # one of them; subclasses and other mappings are still looked into.
            if kind is str:
                found.add(child)
            elif kind in _CONTAINERS:
                containers.append(child)
            elif isinstance(child, str):
                found.add(child)
            elif isinstance(child, (Mapping, *_SEQUENCES)):
                containers.append(child)
    return found
