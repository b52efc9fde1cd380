"""The inventory's JSON Schema, assembled from the check registry.

Each check type contributes the schema of its entries (and of its ``site:`` section), so a new
check type validates its own parameters without this module changing. ``x-expect`` is our own
annotation: the plain-words form of what a value must be, used in error messages.
"""

from __future__ import annotations

import copy
from collections.abc import Collection, Mapping
from typing import Any

from pytest_drcheck import extensions
from pytest_drcheck.checks import registry
from pytest_drcheck.inventory import vocabulary
from pytest_drcheck.inventory.secrets import SECRET_FORMS, SECRET_PATTERN
from pytest_drcheck.inventory.waivers import WAIVER_SCHEMA

SCHEMA_ID = "https://pytest-drcheck.invalid/schema/inventory-v1.json"
NAME_PATTERN = vocabulary.NAME_PATTERN
CONNECTION_TYPES = ["ssh", "local", "ssm", "winrm"]

DURATION: dict[str, Any] = vocabulary.TIMEOUT
SECRET: dict[str, Any] = {
    "type": "string",
    # Never echo the value: a mistake here is most likely a real password pasted in.
    "x-secret": True,
    "pattern": SECRET_PATTERN,
    "x-expect": f"a secret reference: {SECRET_FORMS} (never the secret itself)",
}
NAME: dict[str, Any] = vocabulary.NAME
NAME_LIST: dict[str, Any] = {"type": "array", "items": NAME, "uniqueItems": True}
PORT: dict[str, Any] = vocabulary.PORT
TEXT: dict[str, Any] = {"type": "string", "maxLength": 4096}
# Keys every check entry accepts, whatever its type.
COMMON_ENTRY_PROPERTIES: dict[str, Any] = {
    "timeout": DURATION,
    "description": TEXT,
}

CONNECTION: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "type": {"enum": CONNECTION_TYPES},
        # ssh_config's Match exec expands %r into a shell command: no shell syntax here.
        "user": {"type": "string", "pattern": r"\A[A-Za-z0-9_][A-Za-z0-9_.@\\-]{0,63}\Z",
                 "x-expect": "a user name (letters, digits, '_', '.', '@', '-', '\\')"},
        "port": PORT,
        "identity_file": {"type": "string", "minLength": 1},
        "password": SECRET,
        "known_hosts": {"type": "string", "minLength": 1},
        "host_key_policy": {"enum": ["strict", "accept-new"]},
        "connect_timeout": DURATION,
        "command_timeout": DURATION,
        "ssh_config": {"type": "string", "minLength": 1},
        # null: no jump host, even where defaults or a group set one.
        "jump": vocabulary.JUMP,
        # winrm only (pypsrp): https unless told, the server's certificate validated against
        # the system's CAs or ca_file unless cert_validation is false.
        "scheme": {"enum": ["https", "http"]},
        "auth": {"enum": ["negotiate", "ntlm", "kerberos", "credssp", "basic", "certificate"]},
        "ca_file": {"type": "string", "minLength": 1},
        "cert_validation": {"type": "boolean"},
    },
}


# The protected (on-premises) server a recovery host restores: an inventory host's name, or
# an address and connection of its own. Either way checks only read it (targets/readonly.py).
SOURCE: dict[str, Any] = {
    "anyOf": [NAME, {"type": "object", "additionalProperties": False, "required": ["address"],
                     "properties": {"address": vocabulary.HOST_ADDRESS,
                                    "connection": CONNECTION, "description": TEXT}}],
    "x-expect": "an inventory host name, or {address, connection} of the source server",
}


def entry_schema(check_type: str) -> dict[str, Any]:
    schema = copy.deepcopy(dict(registry.get(check_type).entry_schema))
    schema.setdefault("type", "object")
    schema.setdefault("additionalProperties", False)
    properties = schema.setdefault("properties", {})
    for key, value in COMMON_ENTRY_PROPERTIES.items():
        properties.setdefault(key, value)
    return schema


# Only for the schema of a check type that no entry uses: no value is ever validated against it.
_UNUSED: dict[str, Any] = {}


def checks_schema(used: Collection[str] | None = None) -> dict[str, Any]:
    """Every check type is a key; with ``used`` (the types a document's ``checks:`` write),
    the others get an empty schema, so their families are not imported to validate a
    document that never reaches them (importing every family was a fifth of collecting a
    drill). The keys, and so the messages about an unknown type, stay the same."""
    return {
        "type": "object",
        "additionalProperties": False,
        "x-kind": "check type",
        "properties": {
            name: {"type": "array", "items": entry_schema(name),
                   "x-expect": f"a list of {name} check entries"}
            if used is None or name in used else _UNUSED
            for name in registry.names()
        },
    }


def site_schema(needed: bool = True) -> dict[str, Any]:
    """``needed=False`` for a document whose ``site:`` is absent or empty: nothing is
    validated against its sections, and the families that own them stay unimported."""
    properties: dict[str, Any] = {}
    for name in registry.names() if needed else ():
        check = registry.get(name)
        if check.site_key and check.site_schema is not None:
            properties[check.site_key] = copy.deepcopy(dict(check.site_schema))
    return {"type": "object", "additionalProperties": False, "properties": properties,
            "x-kind": "site section"}


def _with_checks(base: Mapping[str, Any], used: Collection[str] | None) -> dict[str, Any]:
    schema = copy.deepcopy(dict(base))
    schema["properties"]["checks"] = checks_schema(used)
    return schema


def check_types_used(data: Any, sections: Collection[str]) -> set[str] | None:
    """The check types written as keys of ``checks:`` in these sections of a document: the
    top level's own ``checks`` (a suite), or each entry's of ``hosts`` and ``groups``.
    None (every type) for a shape the schema will reject anyway."""
    if not isinstance(data, dict):
        return None
    holders: list[Any] = []
    for section in sections:
        if section == "checks":
            holders.append(data)
            continue
        entries = data.get(section, {})
        if not isinstance(entries, dict):
            return None
        holders += entries.values()
    used: set[str] = set()
    for holder in holders:
        checks = holder.get("checks", {}) if isinstance(holder, dict) else {}
        if not isinstance(checks, dict):
            return None
        used.update(name for name in checks if isinstance(name, str))
    return used


def suite_schema(used: Collection[str] | None = None) -> dict[str, Any]:
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "additionalProperties": False,
        "required": ["suite", "checks"],
        "properties": {
            "suite": NAME,
            "description": TEXT,
            "checks": checks_schema(used),
        },
    }


def inventory_schema(used: Collection[str] | None = None, site: bool = True
                     ) -> dict[str, Any]:
    """The whole schema (``drcheck schema``), or with ``used`` and ``site`` (see
    checks_schema and site_schema) the one that validates a given document alike."""
    group = _with_checks({
        "type": "object", "additionalProperties": False,
        "properties": {
            "description": TEXT,
            "connection": CONNECTION,
            "suites": NAME_LIST,
        },
    }, used)
    host = _with_checks({
        "type": "object", "additionalProperties": False,
        "properties": {
            "description": TEXT,
            "address": vocabulary.HOST_ADDRESS,
            "connection": CONNECTION,
            "groups": NAME_LIST,
            "suites": NAME_LIST,
            "attributes": {"type": "object"},
            "platform": vocabulary.PLATFORM,
            # Extensions' ways of finding a host instead of an address (aws: drs:, ec2:).
            **extensions.host_keys(),
            "source": SOURCE,
        },
    }, used)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "pytest-drcheck inventory",
        "type": "object",
        "additionalProperties": False,
        "required": ["version", "drill", "hosts"],
        "properties": {
            "version": {"const": 1, "x-expect": "1 (the only inventory version so far)"},
            "drill": {
                "type": "object", "additionalProperties": False, "required": ["name"],
                "properties": {
                    "name": {"type": "string", "minLength": 1, "maxLength": 200},
                    "description": TEXT,
                    "rto": vocabulary.OBJECTIVE,
                    "rpo": vocabulary.OBJECTIVE,
                },
            },
            "defaults": {
                "type": "object", "additionalProperties": False,
                "properties": {"connection": CONNECTION, "timeout": DURATION},
            },
            "suite_paths": {"type": "array",
                            "items": {"type": "string", "minLength": 1, "maxLength": 1024}},
            "site": site_schema(site),
            "groups": {"type": "object", "propertyNames": NAME,
                       "additionalProperties": group, "x-kind": "group"},
            "hosts": {"type": "object", "propertyNames": NAME, "minProperties": 1,
                      "additionalProperties": host, "x-kind": "host"},
            "waivers": {"type": "array", "items": WAIVER_SCHEMA,
                        "x-expect": "a list of waivers (host/group/check/subject, "
                                    "justification, approved_by, expires)"},
            **extensions.sections(),
            # Marks the bundled sandbox's inventory: a drill of it refuses to start, in one
            # line, while the lab is down (pytest_drcheck/lab/guard.py).
            "sandbox": {"const": "drcheck-lab",
                        "x-expect": "drcheck-lab (the inventory addresses the local sandbox "
                                    "lab), or no sandbox key at all"},
        },
    }
