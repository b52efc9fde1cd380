"""What one command run on a host gave back, and what a check may conclude from it.

Its own module so that ``base`` (the Target contract) and ``batch`` (many commands in one exec)
both use it without importing each other.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field, replace

from pytest_drcheck.durations import format_duration
from pytest_drcheck.model import CouldNotObserve

# coreutils `timeout` exits 124 when it stopped the command; a shell exits 127 when it cannot
# find the command; the batch uses 125 for a command whose result never came back.
TIMEOUT_STATUS = 124
NOT_RUN_STATUS = 125
NOT_FOUND_STATUS = 127
_SHOWN_COMMAND_CHARS = 120


class CommandNotObserved(CouldNotObserve):
    """A command gave no usable output: timed out, missing, not run, or an unexpected status.

    ``cause`` is one of ``timed out``, ``not found``, ``batch failure``, ``exit status``.
    """

    def __init__(self, cause: str, message: str) -> None:
        super().__init__(message)
        self.cause = cause


@dataclass(frozen=True)
class CommandResult:
    command: str
    exit_status: int
    stdout: str
    stderr: str
    # True when our per-command timeout killed it; exit_status is then 124.
    timed_out: bool = False
    # Where and under which timeout it ran, for messages (the target fills them in).
    host: str | None = field(default=None, compare=False)
    timeout: float | None = field(default=None, compare=False)
    # Why the command's own result never came back when it ran in a batch (the batch timed
    # out, the host could not create a temporary directory, no output came back); None when
    # its result did come back.
    batch_failure: str | None = field(default=None, compare=False)

    @classmethod
    def not_run(cls, command: str, why: str, timed_out: bool = False) -> CommandResult:
        """The result of a command whose batch did not give its result back, and why."""
        return cls(command, TIMEOUT_STATUS if timed_out else NOT_RUN_STATUS, "", why,
                   timed_out=timed_out, batch_failure=why)

    @property
    def ok(self) -> bool:
        return self.exit_status == 0 and not self.timed_out

    @property
    def missing(self) -> bool:
        """The shell could not find the command (exit 127): the tool is not installed."""
        return (self.exit_status == NOT_FOUND_STATUS and not self.timed_out
                and self.batch_failure is None)

    @property
    def batch_failed(self) -> bool:
        return self.batch_failure is not None

    def on(self, host: str, timeout: float) -> CommandResult:
        """This result, stamped with the host it ran on and its timeout (kept if already set)."""
        return replace(self, host=self.host or host,
                       timeout=self.timeout if self.timeout is not None else timeout)

    def require(self, allowed_statuses: Collection[int] = (0,), shown: str | None = None
                ) -> CommandResult:
        """This result if its output can be trusted; else CommandNotObserved with the cause.

        For check families: a command that timed out, whose tool is missing, whose batch did
        not complete, or that exited with a status not in ``allowed_statuses`` observed
        nothing, and must not be read as data (an empty ``cat`` is not "no nameserver").
        The message names the command, the host and the cause in one line, e.g.
        ```ip -j addr` timed out after 10 s on app01``. ``shown`` names a long script by
        what it runs (```net ads testjoin` timed out ...``) instead of its first characters.
        """
        shown, where = f"`{shown or self._shown()}`", self.host or "the host"
        if self.batch_failure is not None:
            raise CommandNotObserved(
                "batch failure", f"{shown} did not run on {where}: "
                                 f"{_one_line(self.batch_failure)}")
        if self.timed_out or (self.exit_status == TIMEOUT_STATUS
                              and TIMEOUT_STATUS not in allowed_statuses):
            after = f" after {format_duration(self.timeout)}" if self.timeout else ""
            raise CommandNotObserved("timed out", f"{shown} timed out{after} on {where}")
        if self.exit_status in allowed_statuses:
            return self
        if self.missing:
            raise CommandNotObserved(
                "not found", f"{shown} is not available on {where} (command not found)")
        detail = f": {_first_line(self.stderr)}" if self.stderr.strip() else ""
        raise CommandNotObserved(
            "exit status", f"{shown} failed on {where} (exit {self.exit_status}){detail}")

    def _shown(self) -> str:
        text = _one_line(self.command)
        if len(text) > _SHOWN_COMMAND_CHARS:
            return text[:_SHOWN_COMMAND_CHARS - 3] + "..."
        return text


def _first_line(text: str) -> str:
    """The first non-blank line of a command's stderr (its error, without the noise after)."""
    for line in text.splitlines():
        if line.strip():
            return _one_line(line)
    return ""


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= 200 else line[:197] + "..."
