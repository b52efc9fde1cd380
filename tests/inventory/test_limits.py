"""Resource bounds of the loader: each refusal is one line, in bounded CPU and memory."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pytest_drcheck.inventory import InventoryError, load_plan
from pytest_drcheck.inventory.yamldoc import MAX_ALIAS_NODES, MAX_DEPTH, MAX_FILE_BYTES

HEAD = "version: 1\ndrill: {name: t}\nhosts:\n  app01:\n    address: 10.0.0.1\n"


def refusal(tmp_path: Path, text: str | bytes) -> str:
    path = tmp_path / "site.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    with pytest.raises(InventoryError) as caught:
        load_plan(path, display_name="site.yaml")
    lines = str(caught.value).splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_file_past_the_size_bound_is_refused_unread(tmp_path: Path) -> None:
    line = refusal(tmp_path, HEAD + "# padding\n" * (MAX_FILE_BYTES // 10 + 1))
    assert line == ("site.yaml:1: document: the file is larger than 2 MiB; split it (suites "
                    "hold shared checks) or check that it is the right file")


def test_billion_laughs_is_refused_within_bounded_memory(tmp_path: Path) -> None:
    levels = ["      l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    for level in range(1, 9):
        levels.append(f"      l{level}: &l{level} [" + ", ".join([f"*l{level - 1}"] * 10) + "]")
    line = refusal(tmp_path, HEAD + "    attributes:\n" + "\n".join(levels) + "\n")
    assert f"aliases expand to more than {MAX_ALIAS_NODES} values" in line
    assert line.startswith("site.yaml:")


def test_nesting_past_the_bound_is_refused_not_a_recursion_error(tmp_path: Path) -> None:
    line = refusal(tmp_path, HEAD + "    attributes: " + "[" * 5000 + "]" * 5000 + "\n")
    assert line == (f"site.yaml:6: document: nested more than {MAX_DEPTH} levels deep; flatten "
                    "the structure")


def test_an_anchor_containing_itself_is_refused(tmp_path: Path) -> None:
    line = refusal(tmp_path, HEAD + "    attributes: &me {again: *me}\n")
    assert line == ("site.yaml:6: hosts.app01.attributes.again: an anchor contains an alias of "
                    "itself (an endless value); write the value out")


def test_undecodable_bytes_are_refused_with_their_line(tmp_path: Path) -> None:
    line = refusal(tmp_path, (HEAD + "    description: caf\xe9\n").encode("latin-1"))
    assert line == "site.yaml:6: document: byte 0xe9 is not UTF-8; save the file as UTF-8"


def test_duration_pattern_is_linear_time() -> None:
    """The old pattern backtracked quadratically ('1' + 60000 blanks + 'x': 25 s of CPU). CPU
    time, not wall-clock time, is bounded here: a loaded machine does not change it."""
    program = textwrap.dedent("""
        import re, resource, sys
        resource.setrlimit(resource.RLIMIT_CPU, (20, 20))
        from pytest_drcheck.durations import DURATION_PATTERN
        from pytest_drcheck.inventory.vocabulary import DURATION_TEXT
        text = "1" + " " * 400000 + "x"
        for pattern in (DURATION_PATTERN, DURATION_TEXT):
            assert re.search(pattern, text) is None
        print(resource.getrusage(resource.RUSAGE_SELF).ru_utime)
    """)
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    assert float(done.stdout) < 20


def test_refusals_stay_within_a_memory_bound(tmp_path: Path) -> None:
    """A maximal file (just under the size bound, all aliases) peaks well under 300 MB."""
    program = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from pytest_drcheck.inventory import InventoryError, load_plan
        path = Path(sys.argv[1])
        body = "    attributes:\\n      a: &a [x, x, x, x, x, x, x, x, x, x]\\n"
        body += "".join(f"      k{{i}}: [*a, *a, *a, *a, *a, *a, *a, *a]\\n" for i in range(5000))
        path.write_text({HEAD!r} + body)
        try:
            load_plan(path)
        except InventoryError as exc:
            assert len(str(exc).splitlines()) == 1
        # VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec from the forking parent
        # (an xdist worker of several hundred MB), VmHWM belongs to this program alone.
        status = Path("/proc/self/status").read_text()
        print(next(l.split()[1] for l in status.splitlines() if l.startswith("VmHWM:")))
    """)
    done = subprocess.run([sys.executable, "-c", program, str(tmp_path / "big.yaml")],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) < 300 * 1024  # kilobytes
