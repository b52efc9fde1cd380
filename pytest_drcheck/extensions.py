"""Extensions of the inventory language: what an optional part of pytest-drcheck adds (the aws
extra: the ``aws:`` section, the host keys ``drs:``/``ec2:``, the ``aws-ssm:`` and
``aws-secretsmanager:`` secret kinds, its check types, the mistakes only it can see), declared
as data so that the inventory and the check registry consult it without importing the part.

An extension is a module attribute named by ``BUILTIN`` (ours) or by the
``pytest_drcheck.extensions`` entry-point group (``name = "package.module:EXTENSION"``). Its
module must import without the part's optional dependencies (no boto3): ``drcheck validate``
has to say "install ..." rather than fail to import. Callables are named as
``"module:function"`` strings and imported only when used.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from types import MappingProxyType
from typing import Any

BUILTIN = ("pytest_drcheck.aws.extension:EXTENSION",)
ENTRY_POINT_GROUP = "pytest_drcheck.extensions"
_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True)
class SecretKind:
    """A kind of secret reference, ``<kind>:<locator>``."""

    kind: str
    # Regular expression of the whole reference (kind included), one alternative of the
    # inventory's secret pattern.
    pattern: str
    # How the reference is written, for messages: "aws-ssm:/path".
    example: str
    # "module:function" resolving (kind, locator) to the value; an ImportError means the
    # extension's dependencies are missing (the message then says ``Extension.install``).
    resolver: str


@dataclass(frozen=True)
class Extension:
    name: str
    # What makes it work when its dependencies are missing, e.g. "install pytest-drcheck[aws]".
    install: str = ""
    # Top-level inventory sections: key -> JSON Schema.
    sections: Mapping[str, Mapping[str, Any]] = field(default_factory=lambda: _EMPTY)
    # Host keys that find a host without an address: key -> JSON Schema. The values are in
    # ``HostSpec.aws`` (the only extension so far) and stand in for ``address``.
    host_keys: Mapping[str, Mapping[str, Any]] = field(default_factory=lambda: _EMPTY)
    # How those keys read in a message: "drs:/ec2: to find an AWS recovery instance".
    host_keys_hint: str = ""
    secret_kinds: tuple[SecretKind, ...] = ()
    # Check types: name -> "module:CheckClass".
    check_types: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    # "module:function" called by the loader with (document, data, hosts, items); returns
    # the inventory's mistakes only this extension can see (a list of Problem).
    problems: str = ""
    # Modules its checks import lazily while observing: the engine imports them first, on
    # one thread (concurrent first imports raced in CPython 3.11 under load).
    preload: tuple[str, ...] = ()


def load(dotted: str) -> Any:
    """The attribute named by ``"module:attribute"``."""
    module_name, _, attribute = dotted.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


@functools.cache
def extensions() -> tuple[Extension, ...]:
    found: list[Extension] = []
    named = list(BUILTIN) + [e.value for e in entry_points(group=ENTRY_POINT_GROUP)]
    for dotted in dict.fromkeys(named):
        extension = load(dotted)
        if not isinstance(extension, Extension):
            raise TypeError(f"{dotted} is not a pytest_drcheck Extension")
        found.append(extension)
    return tuple(found)


def sections() -> dict[str, Mapping[str, Any]]:
    return {k: v for e in extensions() for k, v in e.sections.items()}


def host_keys() -> dict[str, Mapping[str, Any]]:
    return {k: v for e in extensions() for k, v in e.host_keys.items()}


def secret_kinds() -> dict[str, tuple[SecretKind, Extension]]:
    return {s.kind: (s, e) for e in extensions() for s in e.secret_kinds}


def check_types() -> dict[str, str]:
    return {k: v for e in extensions() for k, v in e.check_types.items()}


def preload() -> list[str]:
    return [module for e in extensions() for module in e.preload]


def problem_finders() -> list[Callable[..., list[Any]]]:
    return [load(e.problems) for e in extensions() if e.problems]
