"""The inventory's extension seam (pytest_drcheck.extensions): an optional part adds sections,
host keys, secret kinds, check types and plan-wide mistakes without the inventory, the check
registry or the core plugin importing it."""

from __future__ import annotations

import ast
import importlib
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

import pytest_drcheck
from pytest_drcheck import extensions
from pytest_drcheck.checks import registry
from pytest_drcheck.extensions import Extension
from pytest_drcheck.inventory import InventoryError, load_plan
from pytest_drcheck.inventory.errors import Problem
from pytest_drcheck.inventory.plan import HostSpec
from pytest_drcheck.inventory.secrets import SecretRef
from pytest_drcheck.inventory.yamldoc import Document
from pytest_drcheck.model import PlanItem

PACKAGE = Path(pytest_drcheck.__file__).parent

VAULT = Extension(
    name="vault",
    install="install vault-support",
    sections=MappingProxyType({"vault": {
        "type": "object", "additionalProperties": False, "required": ["address"],
        "properties": {"address": {"type": "string"}}}}),
    host_keys=MappingProxyType({"vm": {
        "type": "object", "additionalProperties": False, "required": ["id"],
        "properties": {"id": {"type": "string"}}}}),
    host_keys_hint="vm: to find a vault machine",
    problems="tests.inventory.test_extensions:vault_problems",
)


def vault_problems(doc: Document, data: Mapping[str, Any], hosts: Mapping[str, HostSpec],
                   items: Iterable[PlanItem]) -> list[Problem]:
    return [doc.problem(("hosts", name, "vm"), "vm: needs the inventory's vault: section")
            for name, host in sorted(hosts.items()) if "vm" in host.aws and "vault" not in data]


@pytest.fixture
def with_vault(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    def forget() -> None:
        for cached in (extensions.extensions, registry.available, registry.get):
            cached.cache_clear()

    monkeypatch.setattr(extensions, "BUILTIN", (*extensions.BUILTIN,
                                                "tests.inventory.test_extensions:VAULT"))
    forget()
    yield
    monkeypatch.undo()
    forget()


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "site.yaml"
    path.write_text("version: 1\ndrill: {name: t}\n" + text)
    return path


def test_an_extension_adds_a_section_a_host_key_and_its_own_mistakes(
        tmp_path: Path, with_vault: None) -> None:
    plan = load_plan(write(tmp_path, "vault: {address: https://vault.invalid}\n"
                                     "hosts:\n  app01: {vm: {id: vm-1}}\n"))
    # The host key stands in for an address, as drs:/ec2: do.
    assert plan.hosts["app01"].address is None
    assert dict(plan.hosts["app01"].aws) == {"vm": {"id": "vm-1"}}
    assert plan.document["vault"] == {"address": "https://vault.invalid"}
    with pytest.raises(InventoryError) as raised:
        load_plan(write(tmp_path, "hosts:\n  app01: {vm: {id: vm-1}}\n  app02: {}\n"))
    assert [p.message for p in raised.value.problems] == [
        "vm: needs the inventory's vault: section",
        "missing required key 'address'; add the host's address or DNS name (or drs:/ec2: "
        "to find an AWS recovery instance, or vm: to find a vault machine)"]


def test_without_the_extension_its_keys_are_unknown(tmp_path: Path) -> None:
    with pytest.raises(InventoryError) as raised:
        load_plan(write(tmp_path, "vault: {address: https://vault.invalid}\n"
                                  "hosts:\n  app01: {address: 10.0.0.1}\n"))
    assert "vault" in str(raised.value)


def test_the_aws_extra_is_an_extension() -> None:
    (aws,) = [e for e in extensions.extensions() if e.name == "aws"]
    assert set(aws.host_keys) == {"drs", "ec2"} and set(aws.sections) == {"aws"}
    assert {"drs_launch", "drs_replication", "drs_instance_type", "iam_role",
            "route53_resolver"} <= set(registry.names())
    # What the engine imports before checking (CPython 3.11's import race): real modules.
    assert "pytest_drcheck.aws.guard" in extensions.preload()
    for module in extensions.preload():
        importlib.import_module(module)
    assert SecretRef.parse("aws-ssm:/dr/pw") == SecretRef("aws-ssm", "/dr/pw")
    with pytest.raises(ValueError, match="write env:NAME, file:PATH, aws-secretsmanager:ARN "
                                         "or aws-ssm:/path"):
        SecretRef.parse("vault:/x")


def _imported_modules(path: Path) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)


@pytest.mark.parametrize("part", ["inventory", "checks", "plugin.py", "extensions.py",
                                  "plugins"])
def test_the_core_never_imports_the_aws_package(part: str) -> None:
    # Before: inventory.schema imported aws.schema, the loader aws.inventory, secrets
    # aws.secrets, the registry named aws check modules: aws <-> inventory <-> checks.
    root = PACKAGE / part
    files = [root] if root.is_file() else sorted(root.rglob("*.py"))
    assert files
    offending = {f"{path.relative_to(PACKAGE)}: {module}" for path in files
                 for module in _imported_modules(path)
                 if module == "pytest_drcheck.aws" or module.startswith("pytest_drcheck.aws.")}
    assert not offending
