"""Collection's own costs: what lives for the whole session is kept out of the cyclic garbage
collector's passes while the session runs, and given back to it at the session's cleanup."""

from __future__ import annotations

import gc
import re

import pytest

INVENTORY = """\
version: 1
drill: {name: t}
defaults: {connection: {type: local}}
hosts:
  app01:
    checks:
      reach: [{target: '127.0.0.1:1'}, {target: '127.0.0.1:2'}]
"""
REPORTER = """
import gc

def pytest_collection_finish(session):
    print(f"frozen during collection: {gc.get_freeze_count()}")
"""


def frozen_during_collection(result: pytest.RunResult) -> int:
    found = re.search(r"frozen during collection: (\d+)", result.stdout.str())
    assert found is not None, result.stdout.str()
    return int(found.group(1))


def test_session_long_objects_are_frozen_until_the_cleanup(pytester: pytest.Pytester) -> None:
    pytester.path.joinpath("site.yaml").write_text(INVENTORY)
    pytester.makeconftest(REPORTER)
    assert gc.get_freeze_count() == 0
    result = pytester.runpytest_inprocess("--dr-inventory=site.yaml", "--collect-only", "-q",
                                          "-s")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["site.yaml::app01::reach[127.0.0.1:1]",
                                 "site.yaml::app01::reach[127.0.0.1:2]"])
    assert frozen_during_collection(result) > 1000
    assert gc.get_freeze_count() == 0, "given back to the collector at the cleanup"
    assert gc.isenabled()
    # Without an inventory, pytest is left as it is.
    result = pytester.runpytest_inprocess("--collect-only", "-q", "-s")
    assert frozen_during_collection(result) == 0


def test_a_refused_inventory_leaves_the_collector_as_it_was(pytester: pytest.Pytester) -> None:
    pytester.path.joinpath("site.yaml").write_text(INVENTORY.replace("version: 1", "version: 2"))
    result = pytester.runpytest_inprocess("--dr-inventory=site.yaml", "--collect-only")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "site.yaml:1: version: 2 is not valid here" in result.stderr.str()
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0


def test_objects_someone_else_froze_stay_theirs(pytester: pytest.Pytester) -> None:
    pytester.path.joinpath("site.yaml").write_text(INVENTORY)
    pytester.makeconftest(REPORTER)
    gc.freeze()
    try:
        before = gc.get_freeze_count()
        result = pytester.runpytest_inprocess("--dr-inventory=site.yaml", "--collect-only",
                                              "-q", "-s")
        assert result.ret == pytest.ExitCode.OK
        # Not frozen again (the count would grow by the session's objects), not unfrozen
        # (it would drop to 0); some of theirs were freed meanwhile.
        assert before // 2 < frozen_during_collection(result) <= before
        assert before // 2 < gc.get_freeze_count() <= before
    finally:
        gc.unfreeze()
