"""pytest glue only: options, items collected from the inventory, fixtures, JUnit properties.

Everything else lives in layers that do not import pytest. State lives in ``config.stash``.
The evidence side (launch anchor, bundle, sealing, summary) is its own plugin part,
``pytest_drcheck.plugins.evidence``.
"""

from __future__ import annotations

import functools
import gc
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_drcheck import __version__
from pytest_drcheck.gcpause import collector_paused
from pytest_drcheck.plugins import OPTION_GROUP
from pytest_drcheck.plugins.evidence import EVIDENCE_KEY, drill_launch, open_evidence

if TYPE_CHECKING:
    from pytest_drcheck.evidence.records import Record
    from pytest_drcheck.model import PlanItem
    from pytest_drcheck.runtime import DrillRun
    from pytest_drcheck.targets.base import Target

RUN_KEY = pytest.StashKey["DrillRun"]()
# EVIDENCE_KEY stays importable from here (other parts read the evidence session by it).
__all__ = ["EVIDENCE_KEY", "RUN_KEY"]
# The first part of every check's node id: the inventory's path under rootdir, else its name.
INVENTORY_ID_KEY = pytest.StashKey[str]()


def inventory_node_id(rootpath: Path, inventory: Path) -> str:
    """``site.yaml`` in ``site.yaml::app01::dns[x]``. pytest would use the path relative to
    rootdir and, for a file outside it, nothing at all (``::app01::...``); the file name is
    what the README promises, the same on every xdist worker."""
    resolved = inventory.resolve()
    try:
        return resolved.relative_to(rootpath.resolve()).as_posix()
    except ValueError:
        return resolved.name


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    import importlib

    from pytest_drcheck import hookspecs
    from pytest_drcheck.plugins import PARTS

    pluginmanager.add_hookspecs(hookspecs)
    # The other parts of the glue, each its own plugin, talking to this one through hooks.
    for name in PARTS:
        if pluginmanager.get_plugin(name) is None:
            pluginmanager.register(importlib.import_module(name), name)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup(*OPTION_GROUP)
    group.addoption("--dr-inventory", dest="dr_inventory", metavar="FILE",
                    help="inventory of the drill: collect and run the checks it implies")
    group.addoption("--dr-workers", dest="dr_workers", type=int, metavar="N",
                    help="most hosts checked at the same time; fewer while their batches "
                         "answer slowly (default 32)")
    group.addoption("--dr-per-host", dest="dr_per_host", type=int, metavar="N",
                    help="checks run at the same time on one host (default 4)")
    group.addoption("--dr-streams-per-destination", dest="dr_streams_per_destination",
                    type=int, metavar="N",
                    help="TCP streams open at once to one address:port across all hosts "
                         "(default 64): a shared resolver or DC is not flooded")
    group.addoption("--dr-suites", dest="dr_suites", action="append", default=[],
                    metavar="DIR", help="extra directory to look for suites in (repeatable)")
    parser.addini("dr_inventory", "default for --dr-inventory")
    group.addoption("--dr-wait", dest="dr_wait", metavar="DURATION",
                    help="retry failing checks until they pass or this long has passed "
                         "(e.g. 10m: instances still booting); records time to green")
    group.addoption("--dr-shard", dest="dr_shard", metavar="K/N",
                    help="run the K-th of N deterministic shares of the hosts (CI matrix); "
                         "combine the bundles with 'drcheck merge'")
    parser.addini("dr_wait", "default for --dr-wait")
    parser.addini("dr_workers", "default for --dr-workers")
    parser.addini("dr_per_host", "default for --dr-per-host")
    parser.addini("dr_streams_per_destination", "default for --dr-streams-per-destination")


def _setting(config: pytest.Config, name: str, default: int) -> int:
    value = config.getoption(name) or config.getini(name) or default
    try:
        number = int(value)
    except ValueError:
        raise pytest.UsageError(f"{name} must be a whole number, got '{value}'") from None
    if number < 1:
        raise pytest.UsageError(f"--{name.replace('_', '-')} must be at least 1, got {number}")
    return number


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "dr_group(*names): run a dr_host test only on inventory hosts in these groups")
    config.addinivalue_line("markers", "dr_check(type): an inventory check of this type")
    inventory = config.getoption("dr_inventory") or config.getini("dr_inventory")
    if not inventory:
        for name in ("dr_evidence", "dr_wait", "dr_launched_at", "dr_shard"):
            if config.getoption(name):
                raise pytest.UsageError(f"--{name.replace('_', '-')} needs an inventory: add "
                                        "--dr-inventory=FILE")
        return
    # What is made from here on lives for the session (modules, the plan): the cyclic
    # collector's passes over it find nothing; paused until it is frozen out of their way.
    with collector_paused():
        _configure_run(config, inventory)
    _freeze_what_lives_for_the_session(config)


def _configure_run(config: pytest.Config, inventory: str) -> None:
    from pytest_drcheck.engine import EngineSettings
    from pytest_drcheck.inventory import InventoryError, load_plan
    from pytest_drcheck.runtime import DrillRun

    try:
        plan = load_plan(inventory, config.getoption("dr_suites"), display_name=str(inventory))
    except InventoryError as exc:
        raise pytest.UsageError(f"invalid inventory:\n{exc}") from None
    from pytest_drcheck.lab.guard import refusal

    if (lab_down := refusal(plan.document)) is not None:
        raise pytest.UsageError(lab_down)
    config.stash[INVENTORY_ID_KEY] = inventory_node_id(config.rootpath, Path(inventory))
    # The evidence part (pytest_drcheck.plugins.evidence) takes it from here: it attaches
    # the result stream when the run is configured.
    evidence = open_evidence(config, plan, config.stash[INVENTORY_ID_KEY])
    settings = EngineSettings(workers=_setting(config, "dr_workers", 32),
                              per_host=_setting(config, "dr_per_host", 4),
                              wait=evidence.options.wait,
                              drill_launch=drill_launch(evidence))
    from pytest_drcheck.targets import destinations

    destinations.configure(_setting(config, "dr_streams_per_destination",
                                    destinations.DEFAULT_STREAMS_PER_DESTINATION))
    run = config.stash[RUN_KEY] = DrillRun(plan, settings)
    config.hook.pytest_dr_run_configured(config=config, run=run)
    # The inventory becomes a collection argument like a test file, so pytest collects, counts,
    # selects (-k) and reports its items as any other; xdist workers inherit the argument.
    resolved = Path(inventory).resolve()
    if not any(Path(arg.split("::")[0]).resolve() == resolved for arg in config.args):
        config.args.append(str(resolved))


def _freeze_what_lives_for_the_session(config: pytest.Config) -> None:
    """The plan, pytest's own state and every module live until the session ends: the cyclic
    garbage collector's passes over them (a large drill's hundreds of thousands of objects)
    find nothing, and cost more than collecting the items did (0.3 s of CPU for 10,000
    checks). They are kept out of its sight until the session's cleanup; objects made later
    are collected as ever. Not when someone froze objects already (theirs to unfreeze)."""
    if gc.get_freeze_count() == 0:
        gc.freeze()
        config.add_cleanup(gc.unfreeze)


def pytest_unconfigure(config: pytest.Config) -> None:
    run = config.stash.get(RUN_KEY, None)
    if run is not None:
        run.close()


def pytest_report_header(config: pytest.Config) -> str | None:
    run = config.stash.get(RUN_KEY, None)
    if run is None:
        return None
    plan = run.plan
    return (f"drcheck {__version__}: drill '{plan.drill.name}' from {plan.display_name} "
            f"({len(plan.hosts)} hosts, {len(plan.items)} checks, sha256 {plan.sha256[:12]})")


# --- collection ------------------------------------------------------------------------------


class InventoryFile(pytest.File):
    def collect(self) -> Iterator[pytest.Item | pytest.Collector]:
        run = self.config.stash[RUN_KEY]
        hosts = sorted({item.host for item in run.plan.items})
        for host in hosts:
            yield HostNode.from_parent(self, name=host)


class HostNode(pytest.Collector):
    def collect(self) -> Iterator[pytest.Item | pytest.Collector]:
        run = self.config.stash[RUN_KEY]
        for plan_item in run.plan.items_of(self.name):
            yield CheckItem.from_parent(self, name=f"{plan_item.check}[{plan_item.subject}]",
                                        plan_item=plan_item)


class CheckFailed(Exception):
    """The check observed a wrong value: a pytest failure whose report is the message."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# pytest.fail's exception: raised without a traceback (pytrace=False), pytest reports its
# value alone and never parses the plugin's source for one, work that is wasted here and that
# can trip CPython 3.11's compiler while check threads import modules. (A variable, because
# pytest offers the class only as an attribute of pytest.fail.)
_FAIL_WITHOUT_TRACEBACK: type[BaseException] = pytest.fail.Exception


class CheckError(_FAIL_WITHOUT_TRACEBACK):  # type: ignore[misc,valid-type]
    """The property could not be observed: a pytest *error* (raised while setting the item
    up), never a failure, whose report is the one-line cause."""

    def __init__(self, message: str) -> None:
        super().__init__(message, pytrace=False)
        self.message = message


@functools.cache
def _check_marker(check: str) -> pytest.MarkDecorator:
    """One marker per check type, shared by its items (marks are immutable): building it per
    item was a tenth of collecting a large drill."""
    return pytest.mark.dr_check(check)


class CheckItem(pytest.Item):
    def __init__(self, *, plan_item: PlanItem, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plan_item = plan_item
        self.add_marker(_check_marker(plan_item.check))
        # The check's result record (the verdict step's, shared with the evidence).
        self._record: Record | None = None

    def setup(self) -> None:
        """Waits for the result. pytest counts only exceptions outside the call phase as
        errors, so "could not observe" is raised here and a wrong value in ``runtest``."""
        from pytest_drcheck.model import Outcome

        evidence = self.config.stash[EVIDENCE_KEY]
        evidence.claim(self.plan_item.key)
        result = self.config.stash[RUN_KEY].engine.result(self.plan_item)
        record = self._record = evidence.record(result)
        self.user_properties.extend(evidence.properties(record))
        if record["outcome"] == Outcome.ERROR.value:
            raise CheckError(evidence.item_message(record))
        if record["outcome"] == Outcome.SKIPPED.value:
            # Located at the inventory entry, not at this line (-rs shows where).
            raise pytest.skip.Exception(record["message"], _use_item_location=True)

    def runtest(self) -> None:
        from pytest_drcheck.model import Outcome

        record = self._record
        assert record is not None, "setup() sets the record"
        if record["outcome"] == "waived":
            # xfail: reported as waived (an accepted failure), never as passed.
            pytest.xfail(f"{record['message']} [{record['waiver']['note']}]")
        if record["outcome"] != Outcome.PASSED.value:
            raise CheckFailed(self.config.stash[EVIDENCE_KEY].item_message(record))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException],
                     style: Any = None) -> str:
        if isinstance(excinfo.value, CheckFailed | CheckError):
            return excinfo.value.message
        return str(super().repr_failure(excinfo, style=style))

    def reportinfo(self) -> tuple[Path, int | None, str]:
        source = self.plan_item.source
        return Path(source.file), (source.line or 1) - 1, self.plan_item.key


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A setup-phase CheckError is reported as its one-line cause (pytest would show a
    traceback of the plugin for an exception outside the call phase)."""
    report = yield
    if (isinstance(item, CheckItem) and call.excinfo is not None
            and isinstance(call.excinfo.value, CheckError)):
        report.longrepr = call.excinfo.value.message
    return report


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> InventoryFile | None:
    run = parent.config.stash.get(RUN_KEY, None)
    if run is not None and file_path.resolve() == Path(run.plan.path).resolve():
        node: InventoryFile = InventoryFile.from_parent(
            parent, path=file_path, nodeid=parent.config.stash[INVENTORY_ID_KEY])
        return node
    return None


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config,
                                   items: list[pytest.Item]) -> None:
    """--dr-shard: keep this shard's hosts (inventory checks and dr_host tests alike)."""
    evidence = config.stash.get(EVIDENCE_KEY, None)
    if evidence is None or evidence.shard_hosts is None:
        return
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    for item in items:
        host: str | None
        if isinstance(item, CheckItem):
            host = item.plan_item.host
        else:
            callspec = getattr(item, "callspec", None)
            host = callspec.params.get("dr_host_name") if callspec is not None else None
        (drop if host is not None and host not in evidence.shard_hosts else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def pytest_collection_finish(session: pytest.Session) -> None:
    """Execution starts here, not during collection: --collect-only touches no network."""
    run = session.config.stash.get(RUN_KEY, None)
    if run is None or session.config.getoption("collectonly"):
        return
    selected = [i.plan_item for i in session.items if isinstance(i, CheckItem)]
    run.engine.select(i.plan_item for i in session.items if isinstance(i, CheckItem))
    # Under xdist a worker does not know which items it will get: hosts start on demand.
    if not hasattr(session.config, "workerinput"):
        session.config.hook.pytest_dr_checking_starts(
            config=session.config, hosts=sorted({p.host for p in selected}))
        run.engine.start()


# --- fixtures for hand-written tests --------------------------------------------------------


def _run_or_usage_error(config: pytest.Config) -> DrillRun:
    run = config.stash.get(RUN_KEY, None)
    if run is None:
        raise pytest.UsageError("this test uses dr_inventory/dr_host: run pytest with "
                                "--dr-inventory=FILE")
    return run


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if not {"dr_host", "dr_target"} & set(metafunc.fixturenames):
        return
    run = metafunc.config.stash.get(RUN_KEY, None)
    if run is None:
        metafunc.parametrize("dr_host_name", [pytest.param(
            None, marks=pytest.mark.skip(reason="needs --dr-inventory=FILE"))],
            ids=["no-inventory"])
        return
    groups = {g for mark in metafunc.definition.iter_markers("dr_group") for g in mark.args}
    hosts = [name for name, host in sorted(run.plan.hosts.items())
             if not groups or groups & set(host.groups)]
    metafunc.parametrize("dr_host_name", hosts, ids=hosts)


@pytest.fixture(scope="session")
def dr_inventory(pytestconfig: pytest.Config) -> Any:
    """The loaded inventory plan (hosts, site services, expanded checks)."""
    return _run_or_usage_error(pytestconfig).plan


@pytest.fixture
def dr_host_name(request: pytest.FixtureRequest) -> str:
    """Name of the inventory host this test instance runs against."""
    name: str = request.param
    return name


@pytest.fixture
def dr_target(pytestconfig: pytest.Config, dr_host_name: str) -> Target:
    """The drcheck target of the host (commands with timeouts, streams from the host)."""
    from pytest_drcheck.targets.base import TargetError

    target = _run_or_usage_error(pytestconfig).engine.target(dr_host_name)
    try:
        target.connect()
    except TargetError as exc:
        pytest.fail(f"cannot reach {dr_host_name}: {exc}", pytrace=False)
    return target


@pytest.fixture
def dr_host(dr_target: Target) -> Any:
    """A testinfra Host bound to the inventory host, over the drill's shared connection."""
    from pytest_drcheck.testinfra_bridge import testinfra_host

    return testinfra_host(dr_target)
