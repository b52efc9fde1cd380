"""Repository-only pytest configuration (not shipped in the wheel).

Running the drill from the repository root (`pytest --dr-inventory=inventories/lab.yaml`)
must run the drill only, not this project's own test suite that sits in testpaths.
"""

from __future__ import annotations

from pathlib import Path

import pytest

_OWN_SUITES = {"tests", "benchmarks"}


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if (config.getoption("dr_inventory", None)
            and config.args_source is not pytest.Config.ArgsSource.ARGS
            and collection_path.name in _OWN_SUITES
            and collection_path.parent == config.rootpath):
        return True
    return None
