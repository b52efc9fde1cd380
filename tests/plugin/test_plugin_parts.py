"""The pytest glue in parts (DESIGN.md, "Plugins in parts"): the core plugin registers the
aws extra's plugin and talks to it only through drcheck hooks; it mentions AWS nowhere."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import pytest_drcheck.plugin
from pytest_drcheck.plugins import PARTS


def test_the_core_plugin_mentions_aws_nowhere() -> None:
    source = Path(pytest_drcheck.plugin.__file__).read_text()
    assert not re.search("aws|drs", source, re.IGNORECASE)


def test_the_parts_are_registered_and_share_the_option_group(pytester: pytest.Pytester) -> None:
    pytester.makeconftest("""
        def pytest_configure(config):
            print("registered:", sorted(name for name, _ in
                  config.pluginmanager.list_name_plugin() if name.startswith("pytest_drcheck")))
        """)
    result = pytester.runpytest("--help")
    assert result.ret == 0
    result.stdout.fnmatch_lines([f"registered: {sorted(PARTS)!r}"])
    help_text = result.stdout.str()
    group = help_text.index("disaster-recovery drill checks (pytest-drcheck):")
    for option in ("--dr-inventory", "--dr-evidence", "--dr-drs-job", "--dr-allow-non-drill"):
        assert help_text.index(option) > group, option


def test_the_aws_extra_is_one_plugin_module_registered_by_its_entry_point(
        pytester: pytest.Pytester) -> None:
    # Before: two AWS modules (pytest_drcheck.plugins.aws via PARTS, aws.plugin via drcheck-aws).
    pytester.makeconftest("""
        def pytest_configure(config):
            print("aws:", sorted((name, getattr(plugin, "__name__", "")) for name, plugin in
                  config.pluginmanager.list_name_plugin()
                  if "aws" in getattr(plugin, "__name__", "")))
        """)
    result = pytester.runpytest("--help")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["aws: [('drcheck-aws', 'pytest_drcheck.aws.plugin')]"])
    for option in ("--dr-launch-drill", "--dr-recovery-plan", "--dr-terminate-drill"):
        assert option in result.stdout.str(), option
