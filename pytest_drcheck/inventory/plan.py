"""The validated, expanded, immutable result of loading an inventory."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from pytest_drcheck.inventory.secrets import SecretRef
from pytest_drcheck.inventory.waivers import Waiver
from pytest_drcheck.model import PlanItem


@dataclass(frozen=True)
class ConnectionSpec:
    type: str = "ssh"
    user: str = "root"
    port: int = 22
    identity_file: str | None = None
    password: SecretRef | None = None
    known_hosts: str = "~/.ssh/known_hosts"
    host_key_policy: str = "strict"
    connect_timeout: float = 5.0
    command_timeout: float = 10.0
    ssh_config: str | None = None
    # An inventory host name or [user@]address[:port].
    jump: str | None = None
    # Connection fields a target type (ssm, winrm...) adds, as written.
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class HostSpec:
    name: str
    address: str | None
    connection: ConnectionSpec
    groups: tuple[str, ...]
    # Free-form facts other layers may use (e.g. source server id for the aws extra).
    attributes: Mapping[str, Any] = field(default_factory=dict)
    # How to find the host in AWS instead of (or besides) an address, as written:
    # {"drs": {"source_server_id": ...}} or {"ec2": {"instance_id" | "tags": ...}}. Kept apart
    # from `attributes` so a user's free-form attribute can never be taken for one.
    aws: Mapping[str, Any] = field(default_factory=dict)
    # linux or windows (inventory ``platform:``; a winrm connection means windows).
    platform: str = "linux"
    # The inventory host holding this host's source server (`source:`), if described.
    source: str | None = None
    # A source server: checks only read it (targets/readonly.py refuses anything else).
    read_only: bool = False


@dataclass(frozen=True)
class DrillSpec:
    name: str
    description: str = ""
    rto_seconds: float | None = None
    rpo_seconds: float | None = None


@dataclass(frozen=True)
class Plan:
    path: str
    display_name: str
    sha256: str
    drill: DrillSpec
    hosts: Mapping[str, HostSpec]
    items: tuple[PlanItem, ...]
    site: Mapping[str, Any]
    # The raw validated document, for sections other layers own (waivers, aws...).
    document: Mapping[str, Any] = field(default_factory=dict)
    # Accepted exceptions (inventory ``waivers:``), in the order written.
    waivers: tuple[Waiver, ...] = ()

    def items_of(self, host: str) -> list[PlanItem]:
        return list(self._items_by_host.get(host, ()))

    @cached_property
    def _items_by_host(self) -> dict[str, list[PlanItem]]:
        # Built once: collection asks for every host's items, and rescanning all items per
        # host made collecting a large drill quadratic (1.7 s at 20,000 checks).
        index: dict[str, list[PlanItem]] = {}
        for item in self.items:
            index.setdefault(item.host, []).append(item)
        return index
