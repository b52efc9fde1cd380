"""Secret references: the inventory names where a secret lives, never the secret itself.

They are resolved as late as possible (when a connection or bind needs them) and the value is
never stored in a plan, a result, a message or a repr. AWS kinds are resolved by the aws extra.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

SECRET_PATTERN = (r"\A(env:[A-Za-z_][A-Za-z0-9_]{0,254}|file:[^\x00-\x1f]{1,4096}"
                  r"|aws-secretsmanager:[^\s]{1,2048}|aws-ssm:/[^\s]{1,2048})\Z")
_KINDS = ("env", "file", "aws-secretsmanager", "aws-ssm")
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
                f"'{text}' is not a secret reference; write env:NAME, file:PATH, "
                "aws-secretsmanager:ARN or aws-ssm:/path (never the secret itself)")
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
        return _resolve_aws(self)


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


def _resolve_aws(ref: SecretRef) -> str:
    try:
        from pytest_drcheck.aws.secrets import resolve_aws_secret
    except ImportError:
        raise SecretError(
            f"secret {ref} needs AWS support: install pytest-drcheck[aws]") from None
    value: str = resolve_aws_secret(ref.kind, ref.locator)
    return value
