"""Runs the plan concurrently: hosts in parallel, a few checks at a time per host, one batched
remote execution per host for every command-based check, every wait bounded.

Execution starts when collection ends; pytest items then only wait for their result, so the
run's wall time approaches the slowest host's instead of the sum of all checks.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import queue
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime, timezone

from pytest_drcheck.checks import registry
from pytest_drcheck.checks.base import CheckContext
from pytest_drcheck.deadline import DeadlineExceeded, call_with_deadline
from pytest_drcheck.durations import format_duration
from pytest_drcheck.inventory.plan import HostSpec, Plan
from pytest_drcheck.model import (
    CheckResult,
    CouldNotObserve,
    EarlierAttempt,
    Observation,
    Outcome,
    PlanItem,
)
from pytest_drcheck.retry import Backoff
from pytest_drcheck.targets.base import CommandResult, Target, TargetError

log = logging.getLogger("pytest_drcheck.engine")

ResultListener = Callable[[CheckResult], None]
# A host's batched command outputs for one item (waits for the batch if the item has commands).
OutputsOf = Callable[[PlanItem], Sequence[CommandResult]]
TargetFactory = Callable[[HostSpec, Callable[[str], Target]], Target]
# Extra seconds a watchdog allows beyond a target's own timeouts before giving up on it.
WATCHDOG_SLACK = 2.0
# Vantage of checks that observe through APIs from the machine running pytest.
RUNNER_VANTAGE = "runner"
# Light checks (streams only) per host at once, as a multiple of --dr-per-host: a direct-tcpip
# channel costs the host almost nothing, and waiting out timeouts one by one would not scale.
LIGHT_FACTOR = 8


def _preload() -> None:
    """The rest of what host threads and result reporting import lazily (check modules and
    targets are prepared in ``start``), imported on the caller's thread for the same reason:
    the main thread imports evidence.junit for the first result while host threads import
    targets.batch (every batch) and targets.forward (ldap), which can race the same way when
    there is no bytecode cache (PYTHONDONTWRITEBYTECODE)."""
    import pytest_drcheck.evidence.junit
    import pytest_drcheck.net.ldapbind
    import pytest_drcheck.targets.batch
    import pytest_drcheck.targets.forward  # noqa: F401
    from pytest_drcheck import extensions

    # What extensions' checks import when they first observe (the aws extra may be absent).
    for module in extensions.preload():
        with contextlib.suppress(ImportError):
            importlib.import_module(module)


@dataclass(frozen=True)
class EngineSettings:
    workers: int = 32
    per_host: int = 4
    # --dr-wait: seconds from the start of checking during which failing checks are retried.
    wait: float = 0.0
    backoff: Backoff = field(default_factory=Backoff)


class Engine:
    def __init__(self, plan: Plan, make_target: TargetFactory,
                 settings: EngineSettings | None = None) -> None:
        self.plan = plan
        self.settings = settings or EngineSettings()
        self._make_target = make_target
        self._targets: dict[str, Target] = {}
        # Re-entrant: building a host's target looks up its jump host's target (when the jump
        # is an inventory host) from inside the same call, on the same thread.
        self._targets_lock = threading.RLock()
        # Hosts whose targets are being built right now (jump chains), to name a cycle
        # instead of recursing; the loader refuses cycles, this guards other plan sources.
        self._building: list[str] = []
        self._futures: dict[str, Future[CheckResult]] = {}
        self._scheduled: set[str] = set()
        self._lock = threading.Lock()
        self._queue: queue.Queue[tuple[str, list[PlanItem]] | None] = queue.Queue()
        self._workers: list[threading.Thread] = []
        self._listeners: list[ResultListener] = []
        self._selected: dict[str, list[PlanItem]] = {}
        # Monotonic time until which failures are retried (set when checking starts).
        self._retry_until: float | None = None

    # --- wiring ----------------------------------------------------------------------------

    def add_listener(self, listener: ResultListener) -> None:
        self._listeners.append(listener)

    def select(self, items: Iterable[PlanItem]) -> None:
        """The items this process will report on (after -k / xdist selection)."""
        with self._lock:
            for item in items:
                if item.key not in self._futures:
                    self._futures[item.key] = Future()
                    self._selected.setdefault(item.host, []).append(item)

    def start(self, hosts: Iterable[str] | None = None) -> None:
        """Schedule the selected items of these hosts (all hosts when None); idempotent."""
        _preload()
        with self._lock:
            names = list(self._selected) if hosts is None else list(hosts)
            fresh = [h for h in names if h in self._selected and h not in self._scheduled]
            if fresh and self._retry_until is None:
                self._retry_until = time.monotonic() + self.settings.wait
            self._scheduled.update(fresh)
        # Import check modules and build targets here, in the caller's thread: imports racing
        # in worker threads against pytest's assertion rewriter can trip CPython's compiler.
        for host in fresh:
            for item in self._selected[host]:
                registry.get(item.check)
            self._prepare_target(host)
        with self._lock:
            if fresh and not self._workers:
                for index in range(max(1, self.settings.workers)):
                    thread = threading.Thread(target=self._worker, name=f"drcheck-{index}",
                                              daemon=True)
                    thread.start()
                    self._workers.append(thread)
        for host in fresh:
            self._queue.put((host, list(self._selected[host])))

    def result(self, item: PlanItem) -> CheckResult:
        """Wait for an item's result, starting its host on demand (lazy mode under xdist)."""
        with self._lock:
            future = self._futures.get(item.key)
        if future is None:
            self.select([item])
            future = self._futures[item.key]
        self.start([item.host])
        # The host job enforces every timeout; this bound only guards against an engine bug.
        host = self.plan.hosts[item.host]
        ceiling = (host.connection.connect_timeout + host.connection.command_timeout
                   + item.timeout) * 3 + 60 + self.settings.wait
        try:
            return future.result(timeout=ceiling)
        except TimeoutError:
            return self._stamp(item, Observation(
                Outcome.ERROR, "a result", "none",
                f"no result within {format_duration(ceiling)} (engine stalled)"),
                time.time(), time.monotonic(), "engine")

    def _prepare_target(self, host: str) -> None:
        # A failure here is reported as the host's checks' failure when its job runs.
        with contextlib.suppress(TargetError):
            self.target(host)

    def target(self, host: str) -> Target:
        """The host's one shared target (created on first use; connecting is lazy too)."""
        with self._targets_lock:
            if host not in self._targets:
                spec = self.plan.hosts[host]
                if host in self._building:
                    chain = " -> ".join([*self._building[self._building.index(host):], host])
                    raise TargetError(f"jump hosts form a cycle: {chain}")
                self._building.append(host)
                try:
                    self._targets[host] = self._make_target(spec, self.target)
                finally:
                    self._building.pop()
            return self._targets[host]

    def close(self) -> None:
        for _ in self._workers:
            self._queue.put(None)
        with self._targets_lock:
            targets = list(self._targets.values())
        for target in targets:
            try:
                target.close()
            except Exception:  # closing must never turn a finished drill into an error
                log.debug("closing %s failed", target.name, exc_info=True)

    # --- execution -------------------------------------------------------------------------

    def _worker(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            host, items = job
            try:
                self._run_host(host, items)
            except Exception as exc:  # a bug in one host's job must not lose its results
                log.exception("host job %s crashed", host)
                for item in items:
                    self._finish(item, self._stamp(item, Observation(
                        Outcome.ERROR, "a result", "none",
                        f"internal error: {type(exc).__name__}: {exc}"),
                        time.time(), time.monotonic(), host))

    def _retry_left(self) -> float:
        return 0.0 if self._retry_until is None else self._retry_until - time.monotonic()

    def _connect(self, host: HostSpec) -> tuple[Target | None, str]:
        try:
            target = self.target(host.name)
            call_with_deadline(target.connect, host.connection.connect_timeout * 3
                               + WATCHDOG_SLACK, f"connect-{host.name}")
        except (TargetError, DeadlineExceeded) as exc:
            reason = str(exc) if isinstance(exc, TargetError) else (
                f"connection timed out after {format_duration(host.connection.connect_timeout)}")
            return None, reason.removeprefix(f"{host.name}: ")
        return target, ""

    def _run_host(self, host_name: str, items: list[PlanItem]) -> None:
        host = self.plan.hosts[host_name]
        wall, mono = time.time(), time.monotonic()
        # Checks observed from the runner (cloud APIs) need no connection to the host, and
        # still report (e.g. why a launch failed) when the host cannot be reached.
        remote = [i for i in items if registry.get(i.check).needs_connection(i)]
        try:
            target = self.target(host_name)
        except TargetError as exc:
            self._unreachable(items, host_name, str(exc), wall, mono)
            return
        failed_connects = 0
        if remote:
            connected, reason = self._connect(host)
            attempts = 1
            delays = self.settings.backoff.delays()
            # An instance still booting refuses connections: under --dr-wait, keep knocking.
            while connected is None and self._retry_left() > 0:
                time.sleep(min(next(delays), max(0.0, self._retry_left())))
                connected, reason = self._connect(host)
                attempts += 1
            if connected is None:
                self._unreachable(remote, host_name, reason, wall, mono, attempts)
                items = [i for i in items if i not in remote]
                remote = []
                if not items:
                    return
            failed_connects = attempts - 1
        outputs = self._start_commands(host, target, remote)
        per_host = max(1, min(self.settings.per_host, self.settings.workers))
        for wave in self._waves(items):
            self._run_wave(wave, target, outputs, per_host, wall, mono, failed_connects)

    def _start_commands(self, host: HostSpec, target: Target, items: list[PlanItem]
                        ) -> OutputsOf:
        """Start the host's batch in the background. Checks without commands (streams, API
        calls) start at once, alongside it, instead of waiting one batch round trip; the
        others wait for its outputs."""
        with_commands = {i.key for i in items if registry.get(i.check).commands(i)}
        if not with_commands:
            return lambda item: ()
        batch: Future[dict[str, Sequence[CommandResult]]] = Future()

        def run() -> None:
            try:
                batch.set_result(self._run_commands(host, target, items))
            except BaseException as exc:  # re-raised in every check that waits for it
                batch.set_exception(exc)

        threading.Thread(target=run, name=f"batch-{host.name}", daemon=True).start()

        def outputs_of(item: PlanItem) -> Sequence[CommandResult]:
            if item.key not in with_commands:
                return ()
            return batch.result().get(item.key, ())

        return outputs_of

    def _waves(self, items: list[PlanItem]) -> list[list[PlanItem]]:
        """Items in dependency order: each wave needs only results of earlier waves (or of
        items this run does not report on, which are ignored)."""
        keys = {item.key for item in items}
        done: set[str] = set()
        pending = list(items)
        waves: list[list[PlanItem]] = []
        while pending:
            ready = [i for i in pending
                     if all(k in done or k not in keys for k in i.required_keys)]
            if not ready:  # a requirement cycle: run the rest rather than wait forever
                ready = pending
            waves.append(ready)
            done.update(i.key for i in ready)
            pending = [i for i in pending if i.key not in done]
        return waves

    def _run_wave(self, items: list[PlanItem], target: Target, outputs: OutputsOf,
                  per_host: int, wall: float, mono: float, failed_connects: int) -> None:
        light = [i for i in items if registry.get(i.check).light]
        heavy = [i for i in items if not registry.get(i.check).light]
        threads: list[threading.Thread] = []

        def dispatch(batch: list[PlanItem], slots: threading.Semaphore) -> None:
            for item in batch:
                slots.acquire()
                thread = threading.Thread(
                    target=self._evaluate_and_release, name=f"check-{item.key}", daemon=True,
                    args=(item, target, outputs, slots, wall, mono, failed_connects))
                thread.start()
                threads.append(thread)

        # Light checks mostly wait on the network: they get their own, larger pool so they
        # neither wait behind command checks nor hold them up.
        light_dispatcher = threading.Thread(
            target=dispatch, args=(light, threading.Semaphore(per_host * LIGHT_FACTOR)),
            daemon=True)
        light_dispatcher.start()
        dispatch(heavy, threading.Semaphore(per_host))
        light_dispatcher.join()
        for thread in threads:
            thread.join()

    def _unreachable(self, items: list[PlanItem], host_name: str, reason: str, wall: float,
                     mono: float, attempts: int = 1) -> None:
        reason = reason.removeprefix(f"{host_name}: ")
        # Nothing was observed on the host: an error naming why, never a failed property.
        for item in items:
            self._finish(item, self._stamp(item, Observation(
                Outcome.ERROR, registry.get(item.check).expected(item), "not observed",
                f"cannot reach {host_name}: {reason}"), wall, mono, host_name, attempts))

    def _run_commands(self, host: HostSpec, target: Target, items: list[PlanItem]
                      ) -> dict[str, Sequence[CommandResult]]:
        """One batch for every command of every item; identical commands run once."""
        wanted: dict[str, list[str]] = {}
        unique: dict[str, None] = {}
        for item in items:
            commands = list(registry.get(item.check).commands(item))
            wanted[item.key] = commands
            unique.update(dict.fromkeys(commands))
        if not unique:
            return {}
        commands = list(unique)
        timeout = host.connection.command_timeout
        try:
            results = call_with_deadline(lambda: target.run_batch(commands, timeout),
                                         timeout + 5 + WATCHDOG_SLACK, f"batch-{host.name}")
        except (TargetError, DeadlineExceeded) as exc:
            results = [CommandResult.not_run(c, f"the batch did not complete: {exc}")
                       for c in commands]
        by_command = dict(zip(commands, results, strict=True))
        return {key: [by_command[c] for c in cmds] for key, cmds in wanted.items()}

    def _evaluate_and_release(self, item: PlanItem, target: Target, outputs_of: OutputsOf,
                              slots: threading.Semaphore, batch_wall: float,
                              batch_mono: float, earlier_attempts: int = 0) -> None:
        try:
            try:
                outputs = outputs_of(item)
            except Exception as exc:  # a bug in the batch must not lose this item's result
                log.debug("batch for %s failed", item.host, exc_info=True)
                self._finish(item, self._stamp(item, Observation(
                    Outcome.ERROR, "a result", "none",
                    f"internal error: {type(exc).__name__}: {exc}"),
                    batch_wall, batch_mono, item.host))
                return
            uses_batch = bool(outputs) or earlier_attempts > 0
            wall, mono = (batch_wall, batch_mono) if uses_batch else (time.time(),
                                                                      time.monotonic())
            unmet = self._unmet_requirement(item)
            if unmet is not None:
                self._finish(item, self._stamp(item, unmet, wall, mono, target.vantage))
                return
            observation = self._evaluate(item, target, outputs)
            vantage = (target.vantage if registry.get(item.check).needs_connection(item)
                       else RUNNER_VANTAGE)
            attempts = earlier_attempts + 1
            earlier: list[EarlierAttempt] = []  # the bundle's JUnit shows them (flaky)
            delays = self.settings.backoff.delays()
            # Under --dr-wait an instance still settling is observed again, whether its
            # property was wrong or could not be observed yet.
            while (observation.outcome in (Outcome.FAILED, Outcome.ERROR)
                   and self._retry_left() > 0):
                # Sleeping must not hold one of the host's check slots.
                slots.release()
                try:
                    time.sleep(min(next(delays), max(0.0, self._retry_left())))
                finally:
                    slots.acquire()
                earlier.append(EarlierAttempt(datetime.now(timezone.utc), observation.outcome,
                                              observation.observed, observation.reason))
                observation = self._evaluate(item, target, self._rerun(item, target))
                attempts += 1
            self._finish(item, self._stamp(item, observation, wall, mono, vantage, attempts,
                                           tuple(earlier)))
        finally:
            slots.release()

    def _unmet_requirement(self, item: PlanItem) -> Observation | None:
        """A skip naming the first required test that did not pass (its waves ran first)."""
        for key in item.required_keys:
            with self._lock:
                future = self._futures.get(key)
            if future is None or not future.done():
                continue
            required = future.result()
            if required.outcome is not Outcome.PASSED:
                name = key.split("::", 1)[1]
                why = required.message.split(": ", 1)[-1]
                return Observation.skipped(registry.get(item.check).expected(item),
                                           f"skipped: {name} did not pass ({why})")
        return None

    def _rerun(self, item: PlanItem, target: Target) -> Sequence[CommandResult]:
        """A retry observes afresh: the item's own commands run again (one small batch)."""
        host = self.plan.hosts[item.host]
        if not registry.get(item.check).needs_connection(item):
            # Observed from the runner (cloud APIs): never dial the instance for it.
            return ()
        # The connection may have dropped (an instance rebooting after first boot); if it
        # cannot be reopened, the commands below fail and say why.
        with contextlib.suppress(TargetError, DeadlineExceeded):
            call_with_deadline(target.connect, host.connection.connect_timeout * 3
                               + WATCHDOG_SLACK, f"reconnect-{item.host}")
        return self._run_commands(host, target, [item]).get(item.key, ())

    def _evaluate(self, item: PlanItem, target: Target,
                  outputs: Sequence[CommandResult]) -> Observation:
        check = registry.get(item.check)
        host = self.plan.hosts[item.host]
        context = CheckContext(item, target, outputs, item.timeout, self.target,
                               host.connection.command_timeout)
        try:
            return call_with_deadline(lambda: check.evaluate(context),
                                      item.timeout + WATCHDOG_SLACK, f"check-{item.key}")
        except DeadlineExceeded:
            return Observation.not_observed(
                check.expected(item), f"no answer within {format_duration(item.timeout)} "
                "(the check's timeout)")
        except CouldNotObserve as exc:
            return Observation.not_observed(check.expected(item), str(exc))
        except TargetError as exc:
            return Observation.not_observed(check.expected(item), str(exc))
        except Exception as exc:
            log.debug("check %s raised\n%s", item.key, traceback.format_exc())
            return Observation(Outcome.ERROR, "a result", "none",
                               f"internal error in {item.check} check: "
                               f"{type(exc).__name__}: {exc}")

    @staticmethod
    def _stamp(item: PlanItem, observation: Observation, wall: float, mono: float,
               vantage: str, attempts: int = 1, earlier: tuple[EarlierAttempt, ...] = ()
               ) -> CheckResult:
        return CheckResult.from_observation(
            item, observation, vantage,
            datetime.fromtimestamp(wall, tz=timezone.utc),
            (time.monotonic() - mono) * 1000.0, attempts, earlier)

    def _finish(self, item: PlanItem, result: CheckResult) -> None:
        for listener in self._listeners:
            try:
                listener(result)
            except Exception:  # evidence problems are reported elsewhere, results must land
                log.exception("result listener failed")
        with self._lock:
            future = self._futures.setdefault(item.key, Future())
        if not future.done():
            future.set_result(result)
