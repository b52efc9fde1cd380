from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pytest_drcheck.cli import main as drcheck
from tests.evidence.drills import local_drill


@pytest.fixture(scope="session")
def sealed_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real drill's finished bundle (3 checks pass, 1 fails); copy it before changing it."""
    return local_drill(tmp_path_factory.mktemp("drill"))


@pytest.fixture
def bundle(sealed_bundle: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "bundle"
    shutil.copytree(sealed_bundle, copy)
    return copy


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Private key paths by owner (each with its public key beside it as PATH.pub)."""
    directory = tmp_path_factory.mktemp("keys")
    made = {}
    for owner in ("ci", "manager", "auditor", "mallory"):
        assert drcheck(["keygen", str(directory / f"{owner}.pem")]) == 0
        made[owner] = directory / f"{owner}.pem"
    return made
