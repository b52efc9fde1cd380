"""Every pattern of the inventory's schema: anchored with \\A and \\Z (``$`` lets a trailing
newline through: ``app01\\n`` became a host and a bundle that failed ``drcheck verify``), and
linear-time on adversarial text (the old duration pattern took 25 s of CPU on 60,000 blanks)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest

from pytest_drcheck.inventory import vocabulary
from pytest_drcheck.inventory.schema import inventory_schema, suite_schema


def patterns(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "pattern" and isinstance(value, str):
                yield value
            else:
                yield from patterns(value)
    elif isinstance(node, list):
        for value in node:
            yield from patterns(value)


ALL = sorted(set(patterns(inventory_schema())) | set(patterns(suite_schema())))


def test_the_schema_has_patterns() -> None:
    assert len(ALL) >= 15


@pytest.mark.parametrize("pattern", ALL)
def test_pattern_is_anchored_at_both_ends(pattern: str) -> None:
    assert pattern.startswith("\\A") and pattern.endswith("\\Z"), pattern


def test_no_pattern_accepts_a_trailing_newline() -> None:
    samples = ["app01", "10.0.0.1", "10.0.0.1:53", "http://h/", "env:X", "30s", "4h",
               "s-1234567890abcdef0", "eu-west-1", "(cn=x)", "s3:GetObject", "runner",
               "vpc-01234567", "corp.example", "i-0123456789abcdef0", "arn:aws:s3:::b"]
    for pattern in ALL:
        for sample in samples:
            if re.search(pattern, sample):
                assert not re.search(pattern, sample + "\n"), (pattern, sample)


def test_every_pattern_is_linear_time() -> None:
    """CPU time, not wall-clock time, is bounded: a loaded machine does not change it."""
    program = textwrap.dedent("""
        import json, re, resource, sys
        resource.setrlimit(resource.RLIMIT_CPU, (60, 60))
        size = 100000
        texts = [" " * size + "x", "1" + " " * size + "x", "a" * size + "\\n", "0" * size + "x",
                 "a." * size + "!", "a-" * size + "-", "1." * size + "x", ":" * size + "x",
                 "[" + "0:" * size + "x", "http://" + "a." * size + "/ x", "(" * size]
        for pattern in json.loads(sys.argv[1]):
            compiled = re.compile(pattern)
            for text in texts:
                compiled.search(text)
        print(resource.getrusage(resource.RUSAGE_SELF).ru_utime)
    """)
    done = subprocess.run([sys.executable, "-c", program, json.dumps(ALL)],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]


def test_vocabulary_values() -> None:
    def ok(schema: dict[str, Any], value: Any) -> bool:
        from jsonschema import FormatChecker

        from pytest_drcheck.inventory.validation import InventoryValidator
        return bool(InventoryValidator(schema, format_checker=FormatChecker(
            formats=("ipv4", "ipv6"))).is_valid(value))

    assert ok(vocabulary.HOST_ADDRESS, "fd00::11") and not ok(vocabulary.HOST_ADDRESS, "999.1.1.1")
    assert ok(vocabulary.ENDPOINT, "[fd00::1]:53") and not ok(vocabulary.ENDPOINT, "h:65536")
    assert ok(vocabulary.URL, "https://h:8443/x?y") and not ok(vocabulary.URL, "http://h:0/")
    assert ok(vocabulary.TIMEOUT, "250ms") and not ok(vocabulary.TIMEOUT, "25h")
    assert not ok(vocabulary.TIMEOUT, 0) and not ok(vocabulary.TIMEOUT, float("nan"))
    assert ok(vocabulary.OBJECTIVE, "4h") and not ok(vocabulary.OBJECTIVE, 4)
    assert ok(vocabulary.PORT, 22) and not ok(vocabulary.PORT, 22.0)
