"""``aws-secretsmanager:`` and ``aws-ssm:`` secret references, resolved through boto3.

``aws-secretsmanager:ID[#KEY]``: the secret's string value (ID is a name or an ARN); with
``#KEY`` the secret is a JSON object and KEY one of its fields (the usual way to keep a user and
a password in one secret). ``aws-ssm:/path``: a Parameter Store parameter, decrypted.

The drill's AWS settings (region, profile, endpoints, timeouts) come from the inventory's
``aws:`` section: the run that owns them registers its clients here with ``use``. Without it
(an inventory with no ``aws:`` section) the region comes from a Secrets Manager ARN or from
AWS_REGION/AWS_DEFAULT_REGION. Values never appear in a message.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable

from pytest_drcheck.aws.clients import AwsClients, AwsError
from pytest_drcheck.aws.inventory import AwsSettings
from pytest_drcheck.inventory.secrets import SecretError

_lock = threading.Lock()
_active: list[AwsClients] = []
# Per run (its clients): where resolved values go, e.g. the evidence Redactor's add(label, value).
_redactors: dict[int, list[Callable[[str, str], None]]] = {}
# Values resolved before a redactor was attached, handed to it when it is.
_resolved: list[tuple[str, str]] = []


def use(clients: AwsClients) -> None:
    """Resolve AWS secrets with these clients (the current drill run's) until ``release``."""
    with _lock:
        _active.append(clients)


def release(clients: AwsClients) -> None:
    with _lock:
        if clients in _active:
            _active.remove(clients)
        _redactors.pop(id(clients), None)
        if not _active:
            _resolved.clear()


def redact_with(clients: AwsClients, add: Callable[[str, str], None]) -> None:
    """Give ``add(label, value)`` every AWS secret value resolved in this run: those resolved
    already and every later one (label: the reference, e.g. ``aws-ssm:/dr/password``)."""
    with _lock:
        _redactors.setdefault(id(clients), []).append(add)
        known = list(_resolved)
    for label, value in known:
        add(label, value)


def _remember(reference: str, value: str) -> str:
    with _lock:
        _resolved.append((reference, value))
        sinks = [add for adds in _redactors.values() for add in adds]
    for add in sinks:
        add(reference, value)
    return value


def _clients_for(reference: str, locator: str) -> AwsClients:
    with _lock:
        if _active:
            return _active[-1]
    region = None
    if locator.startswith("arn:"):
        parts = locator.split(":")
        region = parts[3] if len(parts) > 3 and parts[3] else None
    region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if not region:
        raise SecretError(f"secret {reference} needs an AWS region: add aws: {{region: ...}} "
                          "to the inventory")
    return AwsClients(AwsSettings(region=region))


def resolve_aws_secret(kind: str, locator: str) -> str:
    """The secret's value; every value resolved is handed to the run's redactor first."""
    reference = f"{kind}:{locator}"
    return _remember(reference, _resolve(kind, locator, reference))


def _resolve(kind: str, locator: str, reference: str) -> str:
    clients = _clients_for(reference, locator)
    try:
        if kind == "aws-ssm":
            response = clients.call("ssm", "get_parameter", Name=locator, WithDecryption=True)
            return str(response["Parameter"]["Value"])
        if kind == "aws-secretsmanager":
            secret_id, _, key = locator.partition("#")
            response = clients.call("secretsmanager", "get_secret_value", SecretId=secret_id)
            if "SecretString" not in response:
                raise SecretError(f"secret {reference} is binary; store it as a string")
            value = str(response["SecretString"])
            if not key:
                return value
            try:
                fields = json.loads(value)
            except ValueError:
                fields = None
            if not isinstance(fields, dict) or key not in fields:
                raise SecretError(f"secret {reference}: the secret is not a JSON object with "
                                  f"the key '{key}'; fix the key after '#'")
            return str(fields[key])
    except AwsError as exc:
        raise SecretError(f"secret {reference} cannot be resolved: {exc}") from None
    raise SecretError(f"secret {reference}: unknown AWS secret kind '{kind}'")
