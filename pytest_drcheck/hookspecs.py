"""Hooks of pytest-drcheck (registered in ``pytest_addhooks``): how its plugin parts (the core,
the aws extra, the evidence bundle) and other plugins take part in a drill."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pytest_drcheck.runtime import DrillRun


@pytest.hookspec(firstresult=True)
def pytest_dr_launched_at(config: pytest.Config) -> datetime | None:
    """When the drill's recovery instances were launched (timezone-aware), or None.

    Anchors the measured RTO when ``--dr-launched-at`` is not given; e.g. the AWS extra
    answers with the launch time of the DRS recovery job. The first non-None answer wins.
    """


@pytest.hookspec
def pytest_dr_run_configured(config: pytest.Config, run: DrillRun) -> None:
    """The drill run was built from the inventory (in every process, xdist workers too),
    before anything is collected or checked: attach providers to it (the aws extra does), or
    refuse options that do not fit the inventory with ``pytest.UsageError``."""


@pytest.hookspec
def pytest_dr_checking_starts(config: pytest.Config, hosts: list[str]) -> None:
    """Checking of these selected hosts starts now (controller only, after collection):
    start slow lookups for all of them at once (the aws extra's discovery)."""


@pytest.hookspec
def pytest_dr_suite_properties(config: pytest.Config) -> list[tuple[str, str]]:
    """Extra ``(name, value)`` facts for the JUnit suite of pytest's ``--junitxml`` file
    (controller, end of run): each implementation's list is added in order."""
    raise NotImplementedError  # a specification: plugins implement it
