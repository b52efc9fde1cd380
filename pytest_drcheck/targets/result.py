"""What one command run on a host gave back.

Its own module so that ``base`` (the Target contract) and ``batch`` (many commands in one exec)
both use it without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CommandResult:
    command: str
    exit_status: int
    stdout: str
    stderr: str
    # True when our per-command timeout killed it; exit_status is then 124.
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_status == 0 and not self.timed_out
