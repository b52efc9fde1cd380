"""The drill guard: which instance a host may be checked on.

A drill must be verified on the drill's recovery instances, never on the instances of a real
recovery (or on production). DRS marks every recovery instance with ``isDrill``; an instance
that is not a drill is refused unless the user passes ``--dr-allow-non-drill``. With a job id
(``--dr-drs-job``) only that job's instances count. Pure functions over API data: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pytest_drcheck.model import CouldNotObserve

ALLOW_OPTION = "--dr-allow-non-drill"
JOB_OPTION = "--dr-drs-job"
# EC2 states in which an instance is gone (or going) and can be neither checked nor left over.
GONE_STATES = {"SHUTTING-DOWN", "TERMINATED", "NOT_FOUND", "shutting-down", "terminated"}


class DiscoveryError(CouldNotObserve):
    """A host cannot be found or may not be checked; the message is one line for the user.

    Nothing of such a host can be observed, so its checks are errors naming this cause (never
    green, never a wrong value)."""


class NoInstance(DiscoveryError):
    """The host has no recovery instance at all (never launched, launch failed or pending):
    its launch can still be judged from the source server's last drill launch. ``pending``:
    the launch is still under way, so a later look may find the instance."""

    def __init__(self, message: str, pending: bool = False) -> None:
        super().__init__(message)
        self.pending = pending


class Refused(DiscoveryError):
    """The drill guard refused the host's instance (not a drill, or not a recovery instance).
    Every check of the host reports the refusal, its source server's checks too: an auditor
    must never see green for a host the guard would not let us check."""


@dataclass(frozen=True)
class Candidate:
    """An EC2 instance that may be the host, with its DRS recovery instance if it has one."""

    instance_id: str
    recovery_instance: Mapping[str, Any] | None

    @property
    def is_drill(self) -> bool:
        return bool(self.recovery_instance and self.recovery_instance.get("isDrill"))

    @property
    def job_id(self) -> str | None:
        job = (self.recovery_instance or {}).get("jobID")
        return str(job) if job else None

    def describe(self) -> str:
        if self.recovery_instance is None:
            return f"{self.instance_id} (not a DRS recovery instance)"
        kind = "drill" if self.is_drill else "not a drill"
        return f"{self.instance_id} ({kind}, job {self.job_id or 'unknown'})"


def _listing(candidates: Sequence[Candidate]) -> str:
    return ", ".join(c.describe() for c in candidates)


def choose(what: str, candidates: Sequence[Candidate], job: str | None,
           allow_non_drill: bool, none_reason: str = "") -> Candidate:
    """The one instance a host is checked on, or DiscoveryError saying why none may be.

    ``what`` names how the host was looked up (``source server s-...``, ``tags Name=app01``).
    """
    if not candidates:
        raise NoInstance(f"no recovery instance found for {what}{none_reason}")
    pool = list(candidates)
    if job is not None:
        pool = [c for c in candidates if c.job_id == job]
        others = [c for c in candidates if not c.is_drill]
        if not pool and others and not allow_non_drill:
            # What is up for this server is a real recovery (or not a recovery instance):
            # that, not the job filter, is what the user must hear.
            raise _refusal(what, others, f", and no instance of drill job {job} is up")
        if not pool:
            raise DiscoveryError(f"no instance of drill job {job} for {what} (found "
                                 f"{_listing(candidates)}); check {JOB_OPTION}")
    drills = [c for c in pool if c.is_drill]
    if len(drills) == 1:
        return drills[0]
    if len(drills) > 1:
        raise DiscoveryError(f"{len(drills)} drill instances for {what}: "
                             f"{_listing(drills)}; pass {JOB_OPTION}=JOB to pick the drill")
    if not allow_non_drill:
        raise _refusal(what, pool)
    if len(pool) > 1:
        raise DiscoveryError(f"{len(pool)} instances for {what}: {_listing(pool)}; "
                             f"narrow the lookup (ec2.instance_id, more tags or {JOB_OPTION})")
    return pool[0]


def _refusal(what: str, pool: Sequence[Candidate], tail: str = "") -> Refused:
    first = pool[0]
    if first.recovery_instance is None:
        why = "is not a DRS recovery instance"
    else:
        why = "is not a drill (isDrill false: launched by a recovery, not a drill)"
    more = f" ({len(pool) - 1} more like it)" if len(pool) > 1 else ""
    advice = (f"pass {ALLOW_OPTION} to check non-drill instances on purpose" if not tail
              else f"check {JOB_OPTION}")
    return Refused(f"refusing to check {first.instance_id} found by {what}: it {why}{more}"
                   f"{tail}; {advice}")


def last_launch_reason(source_server: Mapping[str, Any]) -> str:
    """Why a source server may have no recovery instance, from its last launch."""
    last = source_server.get("lifeCycle", {}).get("lastLaunch", {})
    initiated = last.get("initiated", {})
    if not last:
        return " (it was never launched)"
    kind = str(initiated.get("type", "launch")).lower()
    job = initiated.get("jobID", "unknown job")
    status = last.get("status", "unknown")
    return f" (last {kind}: {job}, status {status})"
