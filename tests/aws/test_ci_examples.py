"""The scheduled-drill CI examples: their YAML loads, and every drcheck and pytest command they
run exists with the options they pass (a renamed option breaks this test, not a drill)."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from pytest_drcheck.cli import build_parser

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "ci"


def _scripts(document: Any) -> Iterator[str]:
    """Every shell script of a GitHub workflow (run:) or a GitLab pipeline (script:)."""
    if isinstance(document, dict):
        for key, value in document.items():
            if key == "run" and isinstance(value, str):
                yield value
            elif key in ("script", "before_script") and isinstance(value, list):
                yield from (str(v) for v in value)
            else:
                yield from _scripts(value)
    elif isinstance(document, list):
        for value in document:
            yield from _scripts(value)


def commands(path: Path) -> list[list[str]]:
    """The drcheck/pytest command lines, variables replaced by a placeholder word."""
    found = []
    for script in _scripts(yaml.safe_load(path.read_text())):
        text = re.sub(r"\$\{\{[^}]*\}\}", "X", script.replace("\\\n", " "))
        for line in text.splitlines():
            line = re.sub(r"\$\{?[A-Za-z_][A-Za-z0-9_]*\}?", "X", line).split(">")[0]
            words = shlex.split(line)
            if words and words[0] in ("drcheck", "pytest"):
                found.append(words)
    return found


@pytest.fixture(scope="module")
def pytest_options() -> set[str]:
    help_text = subprocess.run([sys.executable, "-m", "pytest", "--help"], capture_output=True,
                               text=True, check=True).stdout
    return set(re.findall(r"(--[a-z][a-z0-9-]+)", help_text))


@pytest.mark.parametrize("name", ["github-actions-drill.yml", "gitlab-ci-drill.yml"])
def test_example_runs_existing_commands(name: str, pytest_options: set[str]) -> None:
    found = commands(EXAMPLES / name)
    kinds = [(words[0], words[1] if words[0] == "drcheck" else "") for words in found]
    # The whole lifecycle: launch, sharded verify, merge and verify the bundle, terminate.
    assert kinds == [("drcheck", "drill"), ("pytest", ""), ("drcheck", "merge"),
                     ("drcheck", "verify"), ("drcheck", "drill")]
    assert found[0][:3] == ["drcheck", "drill", "launch"]
    assert found[-1][:3] == ["drcheck", "drill", "terminate"]
    parser = build_parser()
    for words in found:
        if words[0] == "drcheck":
            parser.parse_args(words[1:])  # SystemExit (a test error) on an unknown option
            continue
        options = {w.split("=")[0] for w in words[1:] if w.startswith("--")}
        assert options <= pytest_options, options - pytest_options
        assert {"--dr-drs-job", "--dr-launched-at", "--dr-shard", "--dr-evidence",
                "--dr-wait"} <= options


def test_github_terminates_always_and_uses_oidc() -> None:
    workflow = yaml.safe_load((EXAMPLES / "github-actions-drill.yml").read_text())
    assert workflow["permissions"]["id-token"] == "write"
    assert workflow["jobs"]["terminate"]["if"].startswith("always()")
    assert "schedule" in workflow[True]  # YAML 1.1 reads the key 'on' as True
    assert workflow["jobs"]["verify"]["strategy"]["matrix"]["shard"] == [1, 2, 3]


def test_gitlab_terminates_always() -> None:
    pipeline = yaml.safe_load((EXAMPLES / "gitlab-ci-drill.yml").read_text())
    assert pipeline["terminate"]["when"] == "always"
    assert pipeline["launch"]["artifacts"]["reports"]["dotenv"] == "drill.env"
    assert pipeline["verify"]["parallel"] == 3
