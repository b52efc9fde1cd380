"""pytest glue of the OSCAL export: ``--dr-oscal=FILE`` writes the drill's OSCAL
assessment-results once the evidence bundle is sealed (what ``drcheck export --format oscal``
writes from the bundle afterwards)."""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path

import pytest

from pytest_drcheck.plugins import OPTION_GROUP


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup(*OPTION_GROUP)
    group.addoption("--dr-oscal", dest="dr_oscal", metavar="FILE",
                    help="also write the drill's NIST OSCAL assessment-results (JSON) to FILE "
                         "(needs --dr-evidence: it refers to the bundle's files by hash)")


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("dr_oscal") and not config.getoption("dr_evidence"):
        raise pytest.UsageError("--dr-oscal needs --dr-evidence=DIR: the OSCAL file refers to "
                                "the evidence bundle's files by their SHA-256")


# tryfirst makes this the outermost wrapper: its second half runs after the core sealed the
# bundle in its own wrapper (and after the terminal summary, so its line comes last).
@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> Generator[None, None, None]:
    yield
    config = session.config
    target = config.getoption("dr_oscal")
    if not target or hasattr(config, "workerinput") or config.getoption("collectonly"):
        return
    from pytest_drcheck.evidence import oscal
    from pytest_drcheck.evidence.layout import EvidenceError

    output = Path(target)
    try:
        size = oscal.write(oscal.export(Path(config.getoption("dr_evidence"))), output)
        line, red = f"{output}: OSCAL assessment-results, {size} bytes", False
    except EvidenceError as exc:
        line, red = f"--dr-oscal: not written: {exc}", True
    except OSError as exc:
        line, red = f"--dr-oscal: cannot write {output}: {exc.strerror}", True
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(line, red=red)
