"""Secret references: the inventory names where a secret lives, never the secret itself.

They are resolved as late as possible (when a connection or bind needs them) and the value is
never stored in a plan, a result, a message or a repr. Kinds besides env: and file: come from
extensions (pytest_drcheck.extensions; the aws extra's aws-secretsmanager: and aws-ssm:).
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from pytest_drcheck import extensions

_OWN_PATTERNS = (r"env:[A-Za-z_][A-Za-z0-9_]{0,254}", r"file:[^\x00-\x1f]{1,4096}")
SECRET_PATTERN = (r"\A(" + "|".join(
    (*_OWN_PATTERNS, *(kind.pattern for kind, _ in extensions.secret_kinds().values())))
    + r")\Z")
_KINDS = ("env", "file", *extensions.secret_kinds())
_EXAMPLES = ("env:NAME", "file:PATH",
             *(kind.example for kind, _ in extensions.secret_kinds().values()))
# "env:NAME, file:PATH, aws-secretsmanager:ARN or aws-ssm:/path"
SECRET_FORMS = f"{', '.join(_EXAMPLES[:-1])} or {_EXAMPLES[-1]}"
# A password or a key passphrase is short; a bigger file is the wrong file (or /dev/zero).
MAX_SECRET_BYTES = 64 * 1024


class SecretError(Exception):
    """A reference that cannot be resolved. The message names the reference, never a value."""


@dataclass(frozen=True)
class SecretRef:
    kind: str
    locator: str

    @classmethod
    def parse(cls, text: str) -> SecretRef:
        kind, sep, locator = text.partition(":")
        if not sep or kind not in _KINDS or not locator or not re.match(SECRET_PATTERN, text):
            raise ValueError(
                f"'{text}' is not a secret reference; write {SECRET_FORMS} (never the "
                "secret itself)")
        return cls(kind, locator)

    def __str__(self) -> str:
        return f"{self.kind}:{self.locator}"

    def __repr__(self) -> str:
        return f"SecretRef({self})"

    def resolve(self) -> str:
        if self.kind == "env":
            value = os.environ.get(self.locator)
            if value is None:
                raise SecretError(f"secret {self} is not set in the environment")
            return value
        if self.kind == "file":
            return _read_file(self)
        return _resolve_by_extension(self)


def _read_file(ref: SecretRef) -> str:
    """The file's text, read only up to the bound. O_NONBLOCK: opening a FIFO with no writer
    must not hang; only regular files are read (not /dev/zero, not a pipe)."""
    fix = "point file: at a regular file that holds only the secret"
    try:
        fd = os.open(Path(ref.locator).expanduser(),
                     os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except (OSError, ValueError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else "invalid path"
        raise SecretError(f"secret {ref} cannot be read: {why}; {fix}") from None
    with os.fdopen(fd, "rb") as stream:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise SecretError(f"secret {ref} is not a regular file; {fix}")
        try:
            data = stream.read(MAX_SECRET_BYTES + 1)
        except OSError as exc:
            raise SecretError(f"secret {ref} cannot be read: {exc.strerror}; {fix}") from None
    if len(data) > MAX_SECRET_BYTES:
        raise SecretError(f"secret {ref} is larger than {MAX_SECRET_BYTES // 1024} KiB; {fix}")
    try:
        return data.decode("utf-8").rstrip("\n")
    except UnicodeDecodeError:
        raise SecretError(f"secret {ref} is not UTF-8 text; {fix}") from None


def _resolve_by_extension(ref: SecretRef) -> str:
    kind, extension = extensions.secret_kinds()[ref.kind]
    try:
        resolve = extensions.load(kind.resolver)
    except ImportError:
        raise SecretError(f"secret {ref} needs {extension.name.upper()} support: "
                          f"{extension.install}") from None
    value: str = resolve(ref.kind, ref.locator)
    return value
