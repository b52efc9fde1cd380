"""drcheck validate and drcheck schema as a person uses them in a terminal or a pipe."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from pytest_drcheck.cli import main

DRCHECK = [sys.executable, "-c", "import sys; from pytest_drcheck.cli import main; "
                                 "sys.exit(main())"]


def test_schema_into_a_pipe_closed_early_ends_quietly() -> None:
    done = subprocess.run(" ".join(f"'{a}'" for a in DRCHECK) + " schema | head -n 1",
                          shell=True, capture_output=True, text=True, timeout=300)
    assert done.stdout == "{\n"
    assert "Traceback" not in done.stderr and "BrokenPipeError" not in done.stderr
    assert done.stderr == ""


def test_validate_names_a_jump_cycle(tmp_path: Path, capsys: object) -> None:
    path = tmp_path / "site.yaml"
    path.write_text("version: 1\ndrill: {name: t}\nhosts:\n"
                    "  a: {address: 10.0.0.1, connection: {jump: b}}\n"
                    "  b: {address: 10.0.0.2, connection: {jump: c}}\n"
                    "  c: {address: 10.0.0.3, connection: {jump: a}}\n")
    done = subprocess.run([*DRCHECK, "validate", str(path)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 1
    assert done.stderr == (f"{path}:4: hosts.a.connection.jump: jump hosts form a cycle: "
                           "a -> b -> c -> a; one of them must be reached directly "
                           "(jump: null)\n")


def test_validate_accepts_the_jump_host_exempt_from_its_default_jump(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text("version: 1\ndrill: {name: t}\ndefaults: {connection: {jump: bastion}}\n"
                    "hosts:\n  bastion: {address: 203.0.113.10}\n  app01: {address: 10.0.0.1}\n"
                    "  db01: {address: 10.0.0.2, connection: {jump: null}}\n")
    assert main(["validate", str(path)]) == 0
