"""One drill run's AWS state: clients, discovery, the targets of AWS hosts, leftovers.

Attached to the DrillRun when the inventory uses AWS. Its targets are what the engine connects
to: for a host found in AWS the target's connect() waits for that host's discovery (begun for
every host at session start), applies the drill guard's verdict (a refusal or a host that cannot
be found becomes the host's checks' failure reason), then builds the real target (ssh to the
discovered private address, or ssm to the instance) and connects it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Iterable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any, TypeVar

from pytest_drcheck.aws import secrets
from pytest_drcheck.aws.clients import AwsClients, AwsError
from pytest_drcheck.aws.discovery import Discovery, Found
from pytest_drcheck.aws.guard import DiscoveryError, NoInstance
from pytest_drcheck.aws.inventory import AwsSettings
from pytest_drcheck.aws.leftovers import Leftover, find_leftovers, leftover_report
from pytest_drcheck.aws.retain import recorded_addresses
from pytest_drcheck.checks.replication_settings import Backlog, Throttle
from pytest_drcheck.checks.source_addresses import SourceAddresses
from pytest_drcheck.inflight import InFlight
from pytest_drcheck.inventory.plan import HostSpec, Plan
from pytest_drcheck.recoverypoint import RecoveryPoint
from pytest_drcheck.targets.base import CommandResult, Stream, Target, TargetError

T = TypeVar("T")
TargetBuilder = Callable[[HostSpec, Callable[[str], Target]], Target]


@dataclass(frozen=True)
class DrillLaunch:
    """Which launch of a host's source server is the drill's: the job of its drill instance,
    or (no instance: the launch failed or is pending) the server's last drill launch."""

    source_server: Mapping[str, Any]
    job_id: str
    found: Found | None


@dataclass(frozen=True)
class AwsOptions:
    """Command-line choices: the drill job to restrict discovery to, and the guard override."""

    job_id: str | None = None
    allow_non_drill: bool = False


class AwsRun:
    def __init__(self, plan: Plan, options: AwsOptions, build_target: TargetBuilder,
                 clients: AwsClients | None = None, workers: int = 16) -> None:
        settings = AwsSettings.from_plan(plan)
        if settings is None:
            raise ValueError("AwsRun needs the inventory's aws: section")
        self.plan = plan
        self.options = options
        self.settings = settings
        self.clients = clients or AwsClients(settings, max_pool_connections=2 * workers)
        self.discovery = Discovery(self.clients, plan.hosts, options.job_id,
                                   options.allow_non_drill, workers)
        self._build_target = build_target
        from pytest_drcheck.aws.checks.base import AwsCheck
        from pytest_drcheck.checks import registry

        self._checked = {item.host for item in plan.items
                         if isinstance(registry.get(item.check), AwsCheck)}
        self._leftovers: list[Leftover] | None = None
        self._memo: dict[Hashable, Future[Any]] = {}
        self._in_flight: InFlight[Any] = InFlight()
        self._memo_lock = threading.Lock()
        secrets.use(self.clients)

    def redact_with(self, add: Callable[[str, str], None]) -> None:
        """Hand every AWS secret this run resolves to the evidence redactor
        (``Redactor.add(label, value)``), so its value never reaches the evidence."""
        secrets.redact_with(self.clients, add)

    def memo(self, key: Hashable, compute: Callable[[], T]) -> T:
        """compute() once per run for this key, even when many checks ask at the same time
        (e.g. the account's resolver rules, one policy simulation for all of an entry's
        actions). Failures are remembered too: one broken API is one error, not N calls."""
        with self._memo_lock:
            future = self._memo.get(key)
            owner = future is None
            if future is None:
                future = self._memo[key] = Future()
        if owner:
            try:
                future.set_result(compute())
            except Exception as exc:
                future.set_exception(exc)
        result: T = future.result()
        return result

    def fresh(self, key: Hashable, compute: Callable[[], T]) -> T:
        """compute() now, shared with the checks asking for the same key at the same time,
        never reused afterwards: state that changes during a drill (a DRS job, its post-launch
        actions) is read again by every later look, e.g. each --dr-wait retry."""
        result: T = self._in_flight.share(key, compute)
        return result

    # --- targets (TargetFactory provider) --------------------------------------------------

    def handles(self, host: HostSpec) -> bool:
        # Hosts found in AWS, and hosts with AWS-side checks (whose target must lead to us).
        return bool(host.aws) or host.connection.type == "ssm" or host.name in self._checked


    def make_target(self, host: HostSpec, target_of: Callable[[str], Target]) -> Target:
        return AwsHostTarget(host, self, target_of)

    def inner_target(self, host: HostSpec, found: Found,
                     target_of: Callable[[str], Target]) -> Target:
        """The target that really reaches the discovered instance."""
        if host.connection.type == "ssm":
            from pytest_drcheck.targets.ssm import SsmSettings, SsmTarget

            def call(operation: str, **params: Any) -> Mapping[str, Any]:
                return self.clients.call("ssm", operation, **params)

            return SsmTarget(SsmSettings(host.name, found.instance_id, call,
                                         host.connection.connect_timeout,
                                         platform=host.platform))
        address = host.address or found.private_ip
        if not address:
            raise TargetError(f"instance {found.instance_id} has no private address")
        return self._build_target(replace(host, address=address, aws=MappingProxyType({})),
                                  target_of)

    def build_target(self, host: HostSpec, target_of: Callable[[str], Target]) -> Target:
        """The ordinary target of a host that is not found in AWS."""
        return self._build_target(host, target_of)

    # --- discovery -------------------------------------------------------------------------

    def start_discovery(self, hosts: Iterable[str] | None = None) -> None:
        self.discovery.start(hosts)

    def found(self, host: str, timeout: float) -> Found:
        return self.discovery.found(host, timeout)

    def source_server(self, host: str, timeout: float) -> Mapping[str, Any]:
        return self.discovery.source_server(host, timeout)

    def drill_launch(self, host: str, timeout: float) -> DrillLaunch:
        """The host's drill launch. The guard's verdicts hold: a refused host, or a server
        with two drills up and no --dr-drs-job, raise like every other check of the host."""
        server = self.source_server(host, timeout)
        try:
            found = self.found(host, timeout)
        except NoInstance:
            initiated = server.get("lifeCycle", {}).get("lastLaunch", {}).get("initiated", {})
            job = initiated.get("jobID")
            wanted = self.options.job_id
            if initiated.get("type") != "DRILL" or not job or (wanted and job != wanted):
                raise
            return DrillLaunch(server, str(job), None)
        if found.source_server is None or not found.job_id:
            raise DiscoveryError(f"{found.instance_id} is not a DRS recovery instance: it has "
                                 "no launch job")
        return DrillLaunch(server, found.job_id, found)

    # --- end of run ------------------------------------------------------------------------

    def leftovers(self) -> list[Leftover]:
        """Drill instances still up in the region (asked once per run; AwsError if it fails)."""
        if self._leftovers is None:
            self._leftovers = find_leftovers(self.clients, self.plan.hosts)
        return self._leftovers

    def leftover_report(self) -> dict[str, Any]:
        """The JSON-able end-of-run record of leftover drill instances (see leftovers.py)."""
        return leftover_report(self.clients, self.plan.hosts, self.leftovers)

    def uses_drs(self) -> bool:
        return any(h.aws for h in self.plan.hosts.values()) or self.options.job_id is not None

    def close(self) -> None:
        self.discovery.close()
        secrets.release(self.clients)


class AwsHostTarget(Target):
    """A host found in AWS: discovery and the drill guard first, then the real target."""

    def __init__(self, spec: HostSpec, aws: AwsRun, target_of: Callable[[str], Target]) -> None:
        super().__init__(spec.name)
        self.spec = spec
        self.aws = aws
        self._target_of = target_of
        self._inner: Target | None = None
        self._lock = threading.Lock()

    @property
    def vantage(self) -> str:
        inner = self._inner
        return inner.vantage if inner is not None else f"{self.name} (not connected)"

    def found(self, timeout: float) -> Found:
        """The host's instance (waits for discovery); DiscoveryError with the reason."""
        return self.aws.found(self.name, timeout)

    def source_addresses(self, timeout: float) -> SourceAddresses:
        """What DRS recorded of the source server's IPs (nic's retain mode, through the
        checks' RecordsSourceAddresses seam); TargetError with the cause."""
        if not self.spec.aws:
            raise TargetError(f"{self.name} is not found through DRS (add drs: "
                              "{source_server_id: ...} to the host, or list the addresses)")
        return recorded_addresses(self.aws, self.name, timeout)

    def replication_throttle(self, timeout: float) -> Throttle:
        """DRS's bandwidthThrottling of the host's source server (the replication check,
        through the checks' ReplicationSettings seam); TargetError with the cause. The AWS
        calls are bounded by aws.call_timeout."""
        from pytest_drcheck.aws import replication

        return replication.throttle(self.aws, self.spec)

    def replication_backlog(self, timeout: float) -> Backlog:
        """DRS's replication backlog of the host's source server, read now."""
        from pytest_drcheck.aws import replication

        return replication.backlog(self.aws, self.spec)

    def connect(self) -> None:
        with self._lock:
            if self._inner is None and not self.spec.aws:
                # Not found in AWS (it only has AWS-side checks): its own address.
                self._inner = self.aws.build_target(self.spec, self._target_of)
            if self._inner is None:
                try:
                    # Discovery began at session start; two connect timeouts for it leave one
                    # for the connection itself within the engine's connect deadline (3x).
                    found = self.aws.found(self.name,
                                           2 * self.spec.connection.connect_timeout)
                except (DiscoveryError, AwsError) as exc:
                    raise TargetError(str(exc)) from None
                if found.state != "running":
                    # Still booting (or stopped): the next connect (--dr-wait) looks again.
                    self.aws.discovery.refresh(self.name)
                    raise TargetError(f"instance {found.instance_id} is {found.state}, not "
                                      "running")
                self._inner = self.aws.inner_target(self.spec, found, self._target_of)
            inner = self._inner
        inner.connect()

    def recovery_point(self, timeout: float) -> RecoveryPoint | None:
        """DRS's point-in-time snapshot this recovery instance was launched from (the rpo
        check's recovery point, read through this seam); None when DRS does not say."""
        if not self.spec.aws:
            return None
        try:
            found = self.aws.found(self.name, timeout)
        except (DiscoveryError, AwsError) as exc:
            raise TargetError(str(exc)) from None
        stamp = (found.recovery_instance or {}).get("pointInTimeSnapshotDateTime")
        if not stamp:
            return None
        from pytest_drcheck.aws.discover import instant

        at = instant(stamp)
        if at.year < 2000:  # unparseable
            return None
        return RecoveryPoint(at, f"DRS point-in-time snapshot of {found.instance_id}")

    def _connected(self) -> Target:
        self.connect()
        if self._inner is None:  # connect() sets it or raises
            raise TargetError(f"{self.name} is not connected")
        return self._inner

    def run(self, command: str, timeout: float) -> CommandResult:
        return self._connected().run(command, timeout)

    def run_batch(self, commands: list[str], timeout: float) -> list[CommandResult]:
        return self._connected().run_batch(commands, timeout)

    def open_stream(self, host: str, port: int, timeout: float) -> Stream:
        return self._connected().open_stream(host, port, timeout)

    def unwrap(self) -> Target:
        return self._connected().unwrap()

    def close(self) -> None:
        with self._lock:
            inner = self._inner
        if inner is not None:
            inner.close()
