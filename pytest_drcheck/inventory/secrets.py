"""Secret references: the inventory names where a secret lives, never the secret itself.

They are resolved as late as possible (when a connection or bind needs them) and the value is
never stored in a plan, a result, a message or a repr. AWS kinds are resolved by the aws extra.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

SECRET_PATTERN = r"^(env:[A-Za-z_][A-Za-z0-9_]*|file:.+|aws-secretsmanager:.+|aws-ssm:/.+)$"
_KINDS = ("env", "file", "aws-secretsmanager", "aws-ssm")


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
            try:
                return Path(self.locator).expanduser().read_text(encoding="utf-8").rstrip("\n")
            except OSError as exc:
                raise SecretError(f"secret {self} cannot be read: {exc.strerror}") from None
        return _resolve_aws(self)


def _resolve_aws(ref: SecretRef) -> str:
    try:
        from pytest_drcheck.aws.secrets import resolve_aws_secret
    except ImportError:
        raise SecretError(
            f"secret {ref} needs AWS support: install pytest-drcheck[aws]") from None
    value: str = resolve_aws_secret(ref.kind, ref.locator)
    return value
