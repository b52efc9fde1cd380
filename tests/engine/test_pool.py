"""Checks run on a bounded pool of reused threads and every deadline fires from one timer
thread: a stuck check gets its timeout error while the others finish, the stuck thread is
replaced (the pool never shrinks) and what it returns late is discarded."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future
from typing import Any, ClassVar

import pytest

from pytest_drcheck import engine as engine_module
from pytest_drcheck.checks import registry
from pytest_drcheck.checks.base import Check, CheckContext, Subject
from pytest_drcheck.deadline import DeadlineExceeded, call_with_deadline
from pytest_drcheck.engine import Engine, EngineSettings, pool_size
from pytest_drcheck.inventory.plan import ConnectionSpec, DrillSpec, HostSpec, Plan
from pytest_drcheck.model import CheckResult, Location, Observation, Outcome, PlanItem
from pytest_drcheck.pool import DeadlinePool
from pytest_drcheck.targets.factory import TargetFactory
from pytest_drcheck.targets.local import LocalTarget
from pytest_drcheck.timer import Scheduled, Timer

# Generous: only ever waited for by calls that do finish (never a measured duration).
SETTLE = 60.0
RELEASE = threading.Event()
STUCK_THREADS: list[threading.Thread] = []


class StuckCheck(Check[str]):
    """Never answers until the test releases it; then it would pass."""

    type_name: ClassVar[str] = "stuck"
    entry_schema: ClassVar[Mapping[str, Any]] = {}

    def expand(self, entry: Mapping[str, Any], site: Mapping[str, Any]) -> list[Subject]:
        return [Subject(entry["name"], entry)]

    def expected(self, item: PlanItem) -> str:
        return "an answer"

    def observe(self, ctx: CheckContext) -> str:
        STUCK_THREADS.append(threading.current_thread())
        RELEASE.wait()
        return "late"

    def judge(self, item: PlanItem, value: str) -> Observation:
        return Observation.passed("an answer", value)


class QuickCheck(Check[str]):
    """No command, no stream: passes at once (``light`` when asked)."""

    type_name: ClassVar[str] = "quick"
    entry_schema: ClassVar[Mapping[str, Any]] = {}

    def expand(self, entry: Mapping[str, Any], site: Mapping[str, Any]) -> list[Subject]:
        return [Subject(entry["name"], entry)]

    def observe(self, ctx: CheckContext) -> str:
        return "ok"

    def judge(self, item: PlanItem, value: str) -> Observation:
        return Observation.passed("ok", value)


class QuickLightCheck(QuickCheck):
    type_name: ClassVar[str] = "quicklight"
    light: ClassVar[bool] = True


@pytest.fixture(autouse=True)
def checks_registered(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, cls in (("stuck", "StuckCheck"), ("quick", "QuickCheck"),
                      ("quicklight", "QuickLightCheck")):
        monkeypatch.setitem(registry.BUILTIN_CHECKS, name, f"{__name__}:{cls}")
    registry.available.cache_clear()
    registry.get.cache_clear()
    RELEASE.clear()
    STUCK_THREADS.clear()
    yield
    RELEASE.set()  # never leave a thread stuck behind a failed test
    registry.available.cache_clear()
    registry.get.cache_clear()


@pytest.fixture
def started_threads(monkeypatch: pytest.MonkeyPatch) -> list[threading.Thread]:
    """Every thread started from here on (a patched ``Thread.start``)."""
    started: list[threading.Thread] = []
    original = threading.Thread.start

    def start(thread: threading.Thread) -> None:
        started.append(thread)
        original(thread)

    monkeypatch.setattr(threading.Thread, "start", start)
    return started


class ManualTimer(Timer):
    """Fires when the test says so (on the test's thread)."""

    def __init__(self) -> None:
        super().__init__("manual")
        self.entries: list[Scheduled] = []
        self.armed = threading.Semaphore(0)

    def call_later(self, seconds: float, function: Callable[[], None]) -> Scheduled:
        entry = Scheduled(function)
        self.entries.append(entry)
        self.armed.release()
        return entry

    def fire_all(self) -> None:
        for entry in self.entries:
            entry._fire()


def _item(check: str, subject: str, timeout: float = 30.0) -> PlanItem:
    return PlanItem("h1", check, subject, {"name": subject},
                    Location("site.yaml", 1, f"hosts.h1.checks.{check}[{subject}]"), timeout)


def _engine(items: list[PlanItem], settings: EngineSettings) -> Engine:
    host = HostSpec("h1", None, ConnectionSpec(type="local"), ())
    plan = Plan("site.yaml", "site.yaml", "0" * 64, DrillSpec("t"), {"h1": host}, tuple(items),
                {})
    return Engine(plan, TargetFactory(), settings)


def test_a_stuck_check_gets_its_timeout_error_and_its_late_answer_is_discarded() -> None:
    items = [_item("stuck", "hung", timeout=1.0),
             *(_item("quick", f"q{n}") for n in range(6))]
    engine = _engine(items, EngineSettings(workers=1, per_host=1))
    delivered: list[CheckResult] = []
    engine.add_listener(delivered.append)
    try:
        engine.select(items)
        engine.start()
        results = {item.subject: engine.result(item) for item in items}
        assert results["hung"].outcome is Outcome.ERROR
        assert results["hung"].message == ("h1 stuck hung: could not observe: no answer "
                                           "within 1 s (the check's timeout)")
        # per_host=1: the quick checks ran after the stuck one, on the pool's other threads.
        assert {results[f"q{n}"].outcome for n in range(6)} == {Outcome.PASSED}
        assert engine._pool.abandoned == 1
        RELEASE.set()
        [stuck] = STUCK_THREADS
        stuck.join(SETTLE)
        assert not stuck.is_alive()
        assert engine.result(items[0]).message == results["hung"].message
        assert sorted(r.subject for r in delivered) == sorted(i.subject for i in items)
    finally:
        engine.close()


def test_a_late_result_is_discarded_and_the_pool_never_shrinks() -> None:
    pool = DeadlinePool(2, "test-pool", timer=Timer("test-timer"))
    late = threading.Event()

    def stuck() -> str:
        STUCK_THREADS.append(threading.current_thread())
        RELEASE.wait()
        late.set()
        return "late"

    futures = [pool.submit(stuck, 0.2) for _ in range(2)]
    for future in futures:
        with pytest.raises(DeadlineExceeded, match=r"^no answer within 0.2 s$"):
            future.result(SETTLE)
    # Both threads are stuck: only replacements can meet at the barrier.
    barrier = threading.Barrier(2, timeout=SETTLE)
    both = [pool.submit(barrier.wait, SETTLE) for _ in range(2)]
    assert sorted(f.result(SETTLE) for f in both) == [0, 1]
    RELEASE.set()
    for thread in STUCK_THREADS:
        thread.join(SETTLE)
    assert late.is_set()
    for future in futures:
        assert isinstance(future.exception(), DeadlineExceeded)
    assert (pool.started, pool.abandoned) == (4, 2)
    pool.close()


def test_500_checks_start_no_more_threads_than_the_pool(
        started_threads: list[threading.Thread]) -> None:
    items = [_item("quicklight" if n % 2 else "quick", f"c{n:03d}") for n in range(500)]
    settings = EngineSettings(workers=2, per_host=4)
    engine = _engine(items, settings)
    try:
        engine.select(items)
        engine.start()
        outcomes = {engine.result(item).outcome for item in items}
    finally:
        engine.close()
    assert outcomes == {Outcome.PASSED}
    # The pool, the host job threads and at most the timer thread: nothing per check.
    assert pool_size(settings) == 16
    assert len(started_threads) <= pool_size(settings) + settings.workers + 1, (
        sorted({t.name.rsplit("-", 1)[0] for t in started_threads}))


def test_deadlines_fire_from_one_timer_thread_and_calls_reuse_their_threads(
        started_threads: list[threading.Thread]) -> None:
    timer = Timer("one-timer")
    fired_on: list[str] = []
    done = threading.Semaphore(0)

    def record() -> None:
        fired_on.append(threading.current_thread().name)
        done.release()

    for n in range(50):
        timer.call_later(n / 1000, record)
    for _ in range(50):
        assert done.acquire(timeout=SETTLE)
    assert set(fired_on) == {"one-timer"}

    # A pool's expired call is failed by whichever thread fires the timer, and no thread
    # waits per call: here the test fires a timer it holds.
    manual = ManualTimer()
    pool = DeadlinePool(1, "expiring", timer=manual)
    before = len(started_threads)
    expired: Future[bool] = pool.submit(RELEASE.wait, 5.0)
    assert manual.armed.acquire(timeout=SETTLE)
    failed_on: list[str] = []
    expired.add_done_callback(lambda _: failed_on.append(threading.current_thread().name))
    assert not expired.done()
    manual.fire_all()
    assert failed_on == [threading.current_thread().name]
    with pytest.raises(DeadlineExceeded, match=r"^no answer within 5 s$"):
        expired.result(SETTLE)
    assert [t.name for t in started_threads[before:]] == ["expiring-0"]
    RELEASE.set()
    pool.close()

    before = len(started_threads)
    # call_with_deadline's public behaviour, without a thread per call.
    assert [call_with_deadline(functools.partial(pow, n, 2), SETTLE) for n in range(200)] == [
        n * n for n in range(200)]
    assert len(started_threads) - before <= 1
    with pytest.raises(ValueError, match="bad"):
        call_with_deadline(lambda: int("bad"), SETTLE)


class PairedConnects(LocalTarget):
    """A connect that is only let through with another one in progress (a barrier of two),
    and that records how many were in progress at once."""

    lock = threading.Lock()
    barrier = threading.Barrier(2, timeout=SETTLE)
    in_progress = 0
    peak = 0

    def connect(self) -> None:
        cls = PairedConnects
        with cls.lock:
            cls.in_progress += 1
            cls.peak = max(cls.peak, cls.in_progress)
        try:
            cls.barrier.wait()
        finally:
            with cls.lock:
                cls.in_progress -= 1


def test_connection_starts_are_paced_not_set_by_the_worker_count(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine_module, "handshake_limit", lambda: 2)
    hosts = {f"h{n}": HostSpec(f"h{n}", None, ConnectionSpec(type="local"), ())
             for n in range(8)}
    items = [PlanItem(name, "quick", "q", {"name": "q"},
                      Location("site.yaml", 1, f"hosts.{name}.checks.quick[q]"), 30.0)
             for name in hosts]
    plan = Plan("site.yaml", "site.yaml", "0" * 64, DrillSpec("t"), hosts, tuple(items), {})
    engine = Engine(plan, lambda host, _: PairedConnects(host.name),
                    EngineSettings(workers=8, per_host=1))
    try:
        engine.select(items)
        engine.start()
        outcomes = [engine.result(item).outcome for item in items]
    finally:
        engine.close()
    assert outcomes == [Outcome.PASSED] * 8
    # Eight hosts at once, two handshakes at once (pairs met at the barrier).
    assert PairedConnects.peak == 2
