"""``MANIFEST.sha256``: the SHA-256 of every file of a bundle, in ``sha256sum`` format (so
``sha256sum -c MANIFEST.sha256`` works too), and its verification."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from pytest_drcheck.evidence.layout import MANIFEST, SIGNATURE, EvidenceError


def _digest(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def _files(directory: Path) -> list[str]:
    names = []
    for root, dirs, files in os.walk(directory):
        dirs.sort()
        for name in files:
            relative = (Path(root) / name).relative_to(directory).as_posix()
            if relative not in (MANIFEST, SIGNATURE):
                names.append(relative)
    return sorted(names)


def digests(directory: Path) -> dict[str, str]:
    return {name: _digest(directory / name) for name in _files(directory)}


def write_manifest(directory: Path) -> str:
    """Write the manifest; returns the manifest's own SHA-256 (worth keeping elsewhere, e.g.
    in the CI log: whoever can rewrite the bundle can rewrite its manifest too)."""
    lines = [f"{digest}  {name}\n" for name, digest in digests(directory).items()]
    path = directory / MANIFEST
    temporary = path.with_suffix(".tmp")
    temporary.write_text("".join(lines), encoding="utf-8")
    temporary.replace(path)
    return _digest(path)


def read_manifest(directory: Path) -> dict[str, str]:
    path = directory / MANIFEST
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise EvidenceError(f"{directory}: no {MANIFEST}; not a finished evidence bundle "
                            "(a killed run leaves none: run 'drcheck report DIR' to finish "
                            "it)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise EvidenceError(f"{path}: cannot read: {exc}") from None
    entries: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        digest, sep, name = line.partition("  ")
        if not sep or len(digest) != 64 or not name:
            raise EvidenceError(f"{path}:{number}: not a manifest line ('<sha256>  <file>')")
        entries[name] = digest
    return entries


@dataclass
class Verification:
    matched: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.changed or self.added or self.removed)

    def lines(self) -> list[str]:
        return ([f"changed: {n}" for n in self.changed] + [f"added: {n}" for n in self.added]
                + [f"removed: {n}" for n in self.removed])


def verify(directory: Path) -> Verification:
    if not directory.is_dir():
        raise EvidenceError(f"{directory}: not a directory")
    expected = read_manifest(directory)
    actual = digests(directory)
    result = Verification()
    for name in sorted(set(expected) | set(actual)):
        if name not in actual:
            result.removed.append(name)
        elif name not in expected:
            result.added.append(name)
        elif expected[name] != actual[name]:
            result.changed.append(name)
        else:
            result.matched.append(name)
    return result
