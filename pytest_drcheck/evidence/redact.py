"""Keeps secret values out of every piece of evidence.

Checks are written never to put a secret in a result, but evidence also carries raw command
outputs and protocol answers, which nobody controls. So everything written to a bundle (and
the case properties of pytest's JUnit file) passes through a Redactor built from the inventory's
secret references: each reference that resolves here (``env:``, ``file:``) has its value
replaced by ``[redacted env:NAME]``; values under secret-looking keys are replaced whole.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from pytest_drcheck.inventory.plan import Plan
from pytest_drcheck.inventory.secrets import SECRET_PATTERN, SecretError, SecretRef
from pytest_drcheck.inventory.texts import texts_of

_SECRET_KEY = re.compile(r"(passw(or)?d|passphrase|secret|token|api[_-]?key|private[_-]?key)",
                         re.IGNORECASE)
# AWS references would need a network call to resolve; the aws extra resolves them when it
# uses them and can hand the values to ``Redactor.add``.
_RESOLVABLE_HERE = ("env", "file")
_REFERENCE = re.compile(SECRET_PATTERN)


class Redactor:
    def __init__(self, secrets: Iterable[tuple[str, str]] = (),
                 pending: Iterable[SecretRef] = ()) -> None:
        self._secrets: dict[str, str] = {}
        self._ordered: list[str] = []
        # Resolved on first use, not at session start: collection never reads a secret.
        self._pending = list(pending)
        self._lock = threading.Lock()
        for label, value in secrets:
            self.add(label, value)

    def _resolve_pending(self) -> None:
        with self._lock:  # threads wait until every value is known, then redact
            for ref in self._pending:
                try:
                    self.add(str(ref), ref.resolve())
                except SecretError:
                    continue  # unresolvable here means it cannot have reached a result either
            self._pending = []

    def add(self, label: str, value: str) -> None:
        for candidate in {value, value.strip()}:
            if candidate:
                self._secrets[candidate] = f"[redacted {label}]"
        self._ordered = sorted(self._secrets, key=len, reverse=True)

    def __len__(self) -> int:
        self._resolve_pending()
        return len(self._secrets)

    def text(self, text: str) -> str:
        if self._pending:
            self._resolve_pending()
        if not self._secrets:
            return text
        for value in self._ordered:
            if value in text:
                text = text.replace(value, self._secrets[value])
        return text

    def value(self, value: Any, key: str = "") -> Any:
        """A deep copy of a JSON-like value with secrets redacted."""
        if key and _SECRET_KEY.search(key) and isinstance(value, (str, bytes)) and value:
            return "[redacted]"
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, bytes):
            return self.text(value.decode("utf-8", "replace"))
        if isinstance(value, Mapping):
            return {str(k): self.value(v, str(k)) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.value(v) for v in value]
        return value


def _references(value: Any) -> Iterable[str]:
    """The references in ``value``, in the order written (which label a value shared by two
    references gets depends on it)."""
    if isinstance(value, str):
        if _REFERENCE.match(value):
            yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _references(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _references(item)


def secret_references(plan: Plan) -> list[SecretRef]:
    """Every secret reference of the inventory: connections and anything in the document."""
    texts: dict[str, None] = {}
    for host in plan.hosts.values():
        if host.connection.password is not None:
            texts[str(host.connection.password)] = None
        if host.connection.extra:
            texts.update(dict.fromkeys(_references(host.connection.extra)))
    # The ordered walk only for a document that has a reference: most have none, and looking
    # at each distinct text once is a fraction of walking every value of a large drill.
    if any(_REFERENCE.match(text) for text in texts_of(plan.document)):
        texts.update(dict.fromkeys(_references(plan.document)))
    refs = []
    for text in texts:
        try:
            refs.append(SecretRef.parse(text))
        except ValueError:
            continue
    return refs


def redactor_for(plan: Plan) -> Redactor:
    return Redactor(pending=[ref for ref in secret_references(plan)
                             if ref.kind in _RESOLVABLE_HERE])
