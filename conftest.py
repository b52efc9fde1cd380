"""Repository-only pytest configuration (not shipped in the wheel).

Running the drill from the repository root (`pytest --dr-inventory=inventories/lab.yaml`)
must run the drill only, not this project's own test suite, which pytest would otherwise add
from `testpaths`.
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    if (config.getoption("dr_inventory", None)
            and config.args_source is pytest.Config.ArgsSource.TESTPATHS):
        own = {str(config.rootpath / p) for p in config.getini("testpaths")}
        config.args[:] = [a for a in config.args if str(Path(a).resolve()) not in own]
