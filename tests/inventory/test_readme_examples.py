"""Every inventory example in README.md validates as written: people copy them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pytest_drcheck.inventory import load_plan

REPO = Path(__file__).resolve().parents[2]
# An example that is only some sections of an inventory gets the parts it leaves out.
STUB_HOST = "hosts:\n  readme-host: {address: 10.0.0.1}\n"


def yaml_examples() -> list[tuple[int, str]]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    return [(text[:match.start()].count("\n") + 2, match.group(1))
            for match in re.finditer(r"^```yaml\n(.*?)^```", text, re.MULTILINE | re.DOTALL)]


def as_inventory(example: str) -> str:
    def has(key: str) -> bool:
        return re.search(rf"^{key}:", example, re.MULTILINE) is not None

    return ("" if has("version") else "version: 1\n") + (
        "" if has("drill") else "drill: {name: readme-example}\n") + example + (
        "" if has("hosts") else STUB_HOST)


def test_readme_has_inventory_examples() -> None:
    examples = yaml_examples()
    assert len(examples) >= 5
    assert any(example.startswith("version: 1") for _, example in examples)


@pytest.mark.parametrize(("line", "example"), yaml_examples(),
                         ids=[f"README.md:{line}" for line, _ in yaml_examples()])
def test_readme_example_validates(tmp_path: Path, line: int, example: str) -> None:
    path = tmp_path / "example.yaml"
    path.write_text(as_inventory(example), encoding="utf-8")
    plan = load_plan(path, display_name=f"README.md example at line {line}")
    assert plan.hosts
