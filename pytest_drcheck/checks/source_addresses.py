"""The seam through which nic's retain mode learns the source server's addresses when the
inventory does not list them.

A host's target that knows the server it recovers implements ``RecordsSourceAddresses`` (the
aws extra's target of a host found through DRS answers with what DRS recorded). The checks only
know this protocol, never the layer that answers it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class SourceAddresses:
    # Bare IPs (no prefix length), primary NIC first, as the recovery service recorded them.
    addresses: tuple[str, ...]
    # Who recorded them, for messages: "DRS source server s-0123...".
    origin: str
    # Why the launch may not keep them (e.g. it is configured to change IPs), else "": said
    # with a failure, since it is then the likely cause.
    caveat: str = ""


@runtime_checkable
class RecordsSourceAddresses(Protocol):
    def source_addresses(self, timeout: float) -> SourceAddresses:
        """The recorded addresses; ``TargetError`` (one line, the cause) when they cannot be
        read within ``timeout`` seconds."""
        ...
