"""Runs the plan concurrently: hosts in parallel, a few checks at a time per host, one batched
remote execution per host for every command-based check, every wait bounded.

Execution starts when collection ends; pytest items then only wait for their result, so the
run's wall time approaches the slowest host's instead of the sum of all checks.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import queue
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from pytest_drcheck.checks import registry
from pytest_drcheck.checks.base import CheckContext
from pytest_drcheck.concurrency import AdaptiveLimit, HostGate
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
from pytest_drcheck.pool import DeadlinePool
from pytest_drcheck.recoverypoint import RecoveryPoint
from pytest_drcheck.retry import Backoff
from pytest_drcheck.targets.base import CommandResult, Target, TargetError
from pytest_drcheck.timer import DeadlineExceeded, shared_timer

log = logging.getLogger("pytest_drcheck.engine")

ResultListener = Callable[[CheckResult], None]
TargetFactory = Callable[[HostSpec, Callable[[str], Target]], Target]
# Extra seconds a watchdog allows beyond a target's own timeouts before giving up on it.
WATCHDOG_SLACK = 2.0
# Vantage of checks that observe through APIs from the machine running pytest.
RUNNER_VANTAGE = "runner"
# Light checks (streams only) per host at once, as a multiple of --dr-per-host: a direct-tcpip
# channel costs the host almost nothing, and waiting out timeouts one by one would not scale.
LIGHT_FACTOR = 8
# Threads that run checks, connects and batches for every host: twice what --dr-workers hosts
# times --dr-per-host command checks need, within these bounds. Calls beyond wait their turn
# (their deadlines start when a thread takes them); the checks mostly wait on the network.
MIN_POOL = 4
MAX_POOL = 128


def pool_size(settings: EngineSettings) -> int:
    return max(MIN_POOL, min(MAX_POOL, 2 * settings.workers * settings.per_host))


def handshake_limit() -> int:
    """SSH handshakes in progress at once: the client's key exchange is CPU-bound, so more
    than a few per core only makes every handshake slower (and the default --dr-workers
    slower than a smaller setting); a few per core keep the cores busy across round trips."""
    return max(2, 4 * (os.cpu_count() or 1))


def host_gate(settings: EngineSettings) -> HostGate:
    """Hosts checked at once: adaptive, with --dr-workers as the ceiling. It starts at what the
    handshakes can take at once (more hosts would only queue for them) and never goes below
    one host per core (fewer cannot keep the client busy across round trips)."""
    ceiling = max(1, settings.workers)
    return HostGate(AdaptiveLimit(ceiling, initial=handshake_limit(),
                                  floor=os.cpu_count() or 1))


def _preload(check_types: set[str]) -> None:
    """The rest of what host threads and result reporting import lazily (check modules and
    targets are prepared in ``start``), imported on the caller's thread for the same reason:
    the main thread imports evidence.junit for the first result while host threads import
    targets.batch (every batch) and targets.forward (ldap), which can race the same way when
    there is no bytecode cache (PYTHONDONTWRITEBYTECODE). The LDAP machinery (ldap3,
    cryptography: ~110 ms) only for a drill that binds."""
    import pytest_drcheck.evidence.junit
    import pytest_drcheck.targets.batch
    from pytest_drcheck import extensions

    if "ldap" in check_types:
        import pytest_drcheck.net.ldapbind
        import pytest_drcheck.targets.forward  # noqa: F401

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
    # The drill's launch time, when one was given: the rpo check's recovery point.
    drill_launch: RecoveryPoint | None = None


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
        self._preloaded = False
        self._lock = threading.Lock()
        self._queue: queue.Queue[tuple[str, list[PlanItem]] | None] = queue.Queue()
        self._workers: list[threading.Thread] = []
        self._listeners: list[ResultListener] = []
        self._selected: dict[str, list[PlanItem]] = {}
        # Monotonic time until which failures are retried (set when checking starts).
        self._retry_until: float | None = None
        # Every check, batch and connect runs on this pool, each under its deadline.
        self._pool = DeadlinePool(pool_size(self.settings), "drcheck-check")
        # Connection starts are paced to the CPU the handshakes need, not to --dr-workers.
        self._handshakes = threading.Semaphore(handshake_limit())
        # Hosts checked at once, up to --dr-workers: follows how fast their batches answer.
        self.gate = host_gate(self.settings)

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
        if not self._preloaded:  # once: every result() comes through here
            _preload({item.check for item in self.plan.items})
            self._preloaded = True
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
            # A thread per host job up to --dr-workers: no idle threads for a small drill.
            wanted = min(max(1, self.settings.workers), len(self._scheduled))
            for index in range(len(self._workers), wanted):
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
        if self._workers:
            log.info("%s", self.gate.summary())
        for _ in self._workers:
            self._queue.put(None)
        self._pool.close()
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
            admitted = self.gate.enter()
            try:
                self._run_host(host, items, admitted)
            except Exception as exc:  # a bug in one host's job must not lose its results
                log.exception("host job %s crashed", host)
                for item in items:
                    self._finish(item, self._stamp(item, Observation(
                        Outcome.ERROR, "a result", "none",
                        f"internal error: {type(exc).__name__}: {exc}"),
                        time.time(), time.monotonic(), host))
            finally:
                self.gate.leave()

    def _retry_left(self) -> float:
        return 0.0 if self._retry_until is None else self._retry_until - time.monotonic()

    def _connect(self, host: HostSpec) -> tuple[Target | None, str]:
        try:
            target = self.target(host.name)
            with self._handshakes:
                self._pool.submit(target.connect, self._connect_deadline(host),
                                  f"connect-{host.name}").result()
        except (TargetError, DeadlineExceeded) as exc:
            reason = str(exc) if isinstance(exc, TargetError) else (
                f"connection timed out after {format_duration(host.connection.connect_timeout)}")
            return None, reason.removeprefix(f"{host.name}: ")
        return target, ""

    def _run_host(self, host_name: str, items: list[PlanItem], admitted: int = 0) -> None:
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
            # Between knocks the host is not being checked: its place at the host gate goes
            # to a host that is (it would otherwise hold back hosts that are up).
            while connected is None and self._retry_left() > 0:
                self.gate.leave()
                try:
                    time.sleep(min(next(delays), max(0.0, self._retry_left())))
                finally:
                    admitted = self.gate.enter()
                connected, reason = self._connect(host)
                attempts += 1
            if connected is None:
                self._unreachable(remote, host_name, reason, wall, mono, attempts)
                items = [i for i in items if i not in remote]
                remote = []
                if not items:
                    return
            failed_connects = attempts - 1
        per_host = max(1, min(self.settings.per_host, self.settings.workers))
        _HostChecks(self, host, target, items, remote, per_host, wall, mono,
                    failed_connects, admitted).run()

    @staticmethod
    def _connect_deadline(host: HostSpec) -> float:
        return host.connection.connect_timeout * 3 + WATCHDOG_SLACK

    @staticmethod
    def _requirements(items: list[PlanItem]) -> list[tuple[_ItemRun, set[str]]]:
        """Each item's run and the keys of this run's items it must wait for. Requirements
        outside the run are ignored; items caught in a requirement cycle (and those behind
        it) wait for nothing rather than forever."""
        keys = {item.key for item in items}
        needs = {item.key: {k for k in item.required_keys if k in keys and k != item.key}
                 for item in items}
        settled: set[str] = set()
        pending = [item.key for item in items]
        while pending:
            ready = [key for key in pending if needs[key] <= settled]
            if not ready:  # a cycle: release what is left
                for key in pending:
                    needs[key] = set()
                break
            settled.update(ready)
            pending = [key for key in pending if key not in settled]
        return [(_ItemRun(item, registry.get(item.check).light), needs[item.key])
                for item in items]

    def _unreachable(self, items: list[PlanItem], host_name: str, reason: str, wall: float,
                     mono: float, attempts: int = 1) -> None:
        reason = reason.removeprefix(f"{host_name}: ")
        # Nothing was observed on the host: an error naming why, never a failed property.
        for item in items:
            self._finish(item, self._stamp(item, Observation(
                Outcome.ERROR, registry.get(item.check).expected(item), "not observed",
                f"cannot reach {host_name}: {reason}"), wall, mono, host_name, attempts))

    @staticmethod
    def _batch_of(items: Sequence[PlanItem]) -> tuple[dict[str, list[str]], list[str]]:
        """Every command of every item, and the commands to run: identical ones run once."""
        wanted: dict[str, list[str]] = {}
        unique: dict[str, None] = {}
        for item in items:
            commands = list(registry.get(item.check).commands(item))
            wanted[item.key] = commands
            unique.update(dict.fromkeys(commands))
        return wanted, list(unique)

    def _start_batch(self, host: HostSpec, target: Target, commands: list[str],
                     paced: tuple[str, int] | None = None) -> Future[Sequence[CommandResult]]:
        """One batch for all the commands, on the pool, under its deadline. A ``paced`` batch
        (its kind and its host's admission epoch) tells the host gate how long it took."""
        timeout = host.connection.command_timeout
        started: list[float] = []

        def run() -> Sequence[CommandResult]:
            started.append(time.monotonic())  # when a thread takes it: queueing is ours
            return target.run_batch(commands, timeout)

        batch = self._pool.submit(run, timeout + 5 + WATCHDOG_SLACK, f"batch-{host.name}")
        if paced is not None:
            kind, admitted = paced
            batch.add_done_callback(
                lambda done: self._paced(host.name, kind, admitted, started, done))
        return batch

    def _paced(self, host: str, kind: str, admitted: int, started: list[float],
               batch: Future[Sequence[CommandResult]]) -> None:
        """Feeds a finished batch to the host gate; never touches what the batch reports."""
        error = batch.exception()
        before = self.gate.limit
        if isinstance(error, DeadlineExceeded) or (
                error is None and _whole_batch_timed_out(batch.result())):
            decision = self.gate.timed_out(admitted)
            seconds = time.monotonic() - started[0] if started else 0.0
        elif error is None and started:
            seconds = time.monotonic() - started[0]
            decision = self.gate.round_trip(kind, seconds, admitted)
        else:  # lost connection, refused exec: says nothing about load
            return
        after = self.gate.limit
        if after != before:
            log.debug("host gate: %d -> %d hosts at once after %s's batch (%s, %.2f s)",
                      before, after, host, decision.value, seconds)

    @staticmethod
    def _outputs(wanted: dict[str, list[str]], commands: list[str],
                 batch: Future[Sequence[CommandResult]]) -> dict[str, Sequence[CommandResult]]:
        """Each item's outputs from the finished batch; any other exception than a target's
        or a deadline's is a bug, raised for the items to report."""
        try:
            results = batch.result()
        except (TargetError, DeadlineExceeded) as exc:
            results = [CommandResult.not_run(c, f"the batch did not complete: {exc}")
                       for c in commands]
        by_command = dict(zip(commands, results, strict=True))
        return {key: [by_command[c] for c in cmds] for key, cmds in wanted.items()}

    def _unmet_requirement(self, item: PlanItem) -> Observation | None:
        """A skip naming the first required test that did not pass (it finished first)."""
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

    def _observe(self, item: PlanItem, target: Target,
                 outputs: Sequence[CommandResult]) -> Observation:
        """Evaluates the item (on a pool thread, under its deadline)."""
        check = registry.get(item.check)
        host = self.plan.hosts[item.host]
        context = CheckContext(item, target, outputs, item.timeout, self.target,
                               host.connection.command_timeout, self.settings.drill_launch)
        try:
            return check.evaluate(context)
        except CouldNotObserve as exc:
            return Observation.not_observed(check.expected(item), str(exc))
        except TargetError as exc:
            return Observation.not_observed(check.expected(item), str(exc))
        except Exception as exc:
            log.debug("check %s raised\n%s", item.key, traceback.format_exc())
            return self._internal_error(item.check, exc)

    @staticmethod
    def _internal_error(check: str, exc: BaseException) -> Observation:
        return Observation(Outcome.ERROR, "a result", "none",
                           f"internal error in {check} check: {type(exc).__name__}: {exc}")

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


def _whole_batch_timed_out(results: Sequence[CommandResult]) -> bool:
    """The batch as a whole ran out of time (not one of its commands under its own timeout)."""
    return bool(results) and all(r.timed_out and r.batch_failure is not None for r in results)


def _batch_kind(items: Iterable[PlanItem]) -> str:
    """Batches with the same check types do comparable work: their round trips compare."""
    return "batch:" + ",".join(sorted({item.check for item in items}))


@dataclass(eq=False)
class _ItemRun:
    """One item on its way through its attempts."""

    item: PlanItem
    light: bool
    wall: float = 0.0
    mono: float = 0.0
    vantage: str = ""
    attempts: int = 0
    earlier: list[EarlierAttempt] = field(default_factory=list)
    last: Observation | None = None  # the attempt a retry follows
    delays: Iterator[float] | None = None


class _HostChecks:
    """One host's checks, each once its requirements have results, within the per-host
    limits. The host's job thread starts what fits and takes each completion as a step (posted
    by the pool or the timer); every check, batch and reconnect runs on the engine's pool
    under its deadline, so no thread is started or kept waiting per check."""

    def __init__(self, engine: Engine, host: HostSpec, target: Target, items: list[PlanItem],
                 remote: list[PlanItem], per_host: int, wall: float, mono: float,
                 failed_connects: int, admitted: int = 0) -> None:
        self.engine = engine
        self.host = host
        self.target = target
        self.items = items
        self.wall, self.mono = wall, mono
        self.failed_connects = failed_connects
        self.admitted = admitted
        # Light checks mostly wait on the network: they get their own, larger share so they
        # neither wait behind command checks nor hold them up.
        self.limits = {False: per_host, True: per_host * LIGHT_FACTOR}
        self.running = {False: 0, True: 0}
        self.ready: dict[bool, deque[_ItemRun]] = {False: deque(), True: deque()}
        self.steps: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self.wanted, self.commands = engine._batch_of(remote)
        self.kind = _batch_kind(i for i in remote if self.wanted[i.key])
        self.needs_batch = {key for key, commands in self.wanted.items() if commands}
        # Each item's outputs once the batch has finished (None while it runs).
        self.outputs: dict[str, Sequence[CommandResult]] | None = None if self.commands else {}
        self.batch_error: Exception | None = None
        self.parked: list[_ItemRun] = []  # first looks waiting for the batch's outputs
        # Checks waiting for required results: key -> (its run, the keys it still needs),
        # and each required key -> the keys waiting on it.
        self.waiting: dict[str, tuple[_ItemRun, set[str]]] = {}
        self.dependents: dict[str, list[str]] = {}
        self.unfinished = 0

    def run(self) -> None:
        if self.commands:
            # Checks without commands (streams, API calls) start at once, alongside it.
            batch = self.engine._start_batch(self.host, self.target, self.commands,
                                             (self.kind, self.admitted))
            self._then(batch, self._batch_done)
        # Each check starts as soon as the checks it requires have results: a dependent waits
        # for its own requirement, never for unrelated slow checks (a clock sampled over a
        # 20 ms link, an LDAP bind) as a wave barrier made it.
        for run, needs in self.engine._requirements(self.items):
            if needs:
                self.waiting[run.item.key] = (run, needs)
                for key in needs:
                    self.dependents.setdefault(key, []).append(run.item.key)
            else:
                self.ready[run.light].append(run)
        self.unfinished = len(self.items)
        self._start_what_fits()
        while self.unfinished:
            self.steps.get()()
            self._start_what_fits()

    def _then(self, future: Future[Any], step: Callable[[Future[Any]], None]) -> None:
        future.add_done_callback(lambda done: self.steps.put(lambda: step(done)))

    def _start_what_fits(self) -> None:
        for light in (False, True):
            ready = self.ready[light]
            while ready and self.running[light] < self.limits[light]:
                run = ready.popleft()
                if run.attempts:
                    self._look_again(run)
                elif run.item.key in self.needs_batch and self.outputs is None:
                    self.parked.append(run)
                else:
                    self._first_look(run)

    def _batch_done(self, batch: Future[Sequence[CommandResult]]) -> None:
        try:
            self.outputs = self.engine._outputs(self.wanted, self.commands, batch)
        except Exception as exc:  # a bug in the batch must not lose its items' results
            log.debug("batch for %s failed", self.host.name, exc_info=True)
            self.batch_error = exc
            self.outputs = {}
        for run in reversed(self.parked):
            self.ready[run.light].appendleft(run)
        self.parked.clear()

    def _first_look(self, run: _ItemRun) -> None:
        item = run.item
        if self.batch_error is not None and item.key in self.needs_batch:
            exc = self.batch_error
            self._done(run, Engine._stamp(item, Observation(
                Outcome.ERROR, "a result", "none",
                f"internal error: {type(exc).__name__}: {exc}"),
                self.wall, self.mono, item.host))
            return
        outputs = (self.outputs or {}).get(item.key, ()) if item.key in self.needs_batch else ()
        uses_batch = bool(outputs) or self.failed_connects > 0
        run.wall, run.mono = ((self.wall, self.mono) if uses_batch
                              else (time.time(), time.monotonic()))
        unmet = self.engine._unmet_requirement(item)
        if unmet is not None:
            self._done(run, Engine._stamp(item, unmet, run.wall, run.mono,
                                          self.target.vantage))
            return
        run.vantage = (self.target.vantage if registry.get(item.check).needs_connection(item)
                       else RUNNER_VANTAGE)
        run.attempts = self.failed_connects
        run.delays = self.engine.settings.backoff.delays()
        self.running[run.light] += 1
        self._look(run, outputs)

    def _look(self, run: _ItemRun, outputs: Sequence[CommandResult]) -> None:
        item, engine, target = run.item, self.engine, self.target
        look = engine._pool.submit(lambda: engine._observe(item, target, outputs),
                                   item.timeout + WATCHDOG_SLACK, f"check-{item.key}")
        self._then(look, lambda done: self._looked(run, done))

    def _looked(self, run: _ItemRun, look: Future[Observation]) -> None:
        item = run.item
        try:
            observation = look.result()
        except DeadlineExceeded:
            observation = Observation.not_observed(
                registry.get(item.check).expected(item),
                f"no answer within {format_duration(item.timeout)} (the check's timeout)")
        run.attempts += 1
        self.running[run.light] -= 1
        retry_left = self.engine._retry_left()
        # Under --dr-wait an instance still settling is observed again, whether its property
        # was wrong or could not be observed yet; waiting holds none of the host's slots.
        if observation.outcome in (Outcome.FAILED, Outcome.ERROR) and retry_left > 0:
            run.last = observation
            assert run.delays is not None
            delay = min(next(run.delays), max(0.0, retry_left))
            shared_timer().call_later(
                delay, lambda: self.steps.put(lambda: self.ready[run.light].append(run)))
            return
        self._done(run, Engine._stamp(item, observation, run.wall, run.mono, run.vantage,
                                      run.attempts, tuple(run.earlier)))

    def _look_again(self, run: _ItemRun) -> None:
        """A retry observes afresh: the item's own commands run again (one small batch)."""
        last = run.last
        assert last is not None
        run.earlier.append(EarlierAttempt(datetime.now(timezone.utc), last.outcome,
                                          last.observed, last.reason))
        self.running[run.light] += 1
        if not registry.get(run.item.check).needs_connection(run.item):
            # Observed from the runner (cloud APIs): never dial the instance for it.
            self._look(run, ())
            return
        # The connection may have dropped (an instance rebooting after first boot); if it
        # cannot be reopened, the commands below fail and say why.
        reconnect = self.engine._pool.submit(self.target.connect,
                                             Engine._connect_deadline(self.host),
                                             f"reconnect-{self.host.name}")
        self._then(reconnect, lambda done: self._rerun(run))

    def _rerun(self, run: _ItemRun) -> None:
        wanted, commands = self.engine._batch_of([run.item])
        if not commands:
            self._look(run, ())
            return
        batch = self.engine._start_batch(self.host, self.target, commands)
        self._then(batch, lambda done: self._rerun_done(run, wanted, commands, done))

    def _rerun_done(self, run: _ItemRun, wanted: dict[str, list[str]], commands: list[str],
                    batch: Future[Sequence[CommandResult]]) -> None:
        try:
            outputs = self.engine._outputs(wanted, commands, batch).get(run.item.key, ())
        except Exception as exc:  # a bug in the batch: this attempt reports it
            log.debug("batch for %s failed", self.host.name, exc_info=True)
            self.running[run.light] -= 1
            run.attempts += 1
            self._done(run, Engine._stamp(run.item, Engine._internal_error(run.item.check, exc),
                                          run.wall, run.mono, run.vantage, run.attempts,
                                          tuple(run.earlier)))
            return
        self._look(run, outputs)

    def _done(self, run: _ItemRun, result: CheckResult) -> None:
        self.engine._finish(run.item, result)
        self.unfinished -= 1
        # Its result has landed (a dependent's skip reads it): release what waited on it.
        for key in self.dependents.pop(run.item.key, ()):
            waiter, needs = self.waiting[key]
            needs.discard(run.item.key)
            if not needs:
                del self.waiting[key]
                self.ready[waiter.light].append(waiter)
