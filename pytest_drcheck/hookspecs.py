"""Hooks other plugins implement for pytest-drcheck (registered in ``pytest_addhooks``)."""

from __future__ import annotations

from datetime import datetime

import pytest


@pytest.hookspec(firstresult=True)
def pytest_dr_launched_at(config: pytest.Config) -> datetime | None:
    """When the drill's recovery instances were launched (timezone-aware), or None.

    Anchors the measured RTO when ``--dr-launched-at`` is not given; e.g. the AWS extra
    answers with the launch time of the DRS recovery job. The first non-None answer wins.
    """
