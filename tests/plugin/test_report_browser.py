"""The drill report of a real local drill, opened in headless chromium with no network: the
rendered DOM says what the drill did, and the screenshot shows it in the outcome colours."""

from __future__ import annotations

import textwrap
import time

import pytest

from pytest_drcheck.cli import main as drcheck
from tests.browser import ARTIFACTS, chromium, colour_share, hex_colour, render
from tests.plugin.sockets import Listener

pytestmark = pytest.mark.skipif(chromium() is None, reason="needs chromium (apt install chromium)")

PASSED, FAILED, WAIVED = hex_colour("#1a7f37"), hex_colour("#cf222e"), hex_colour("#b35900")


def test_report_in_a_real_browser(pytester: pytest.Pytester, listener: Listener,
                                  closed_port: int, capsys: pytest.CaptureFixture[str]) -> None:
    up, down = f"127.0.0.1:{listener.port}", f"127.0.0.1:{closed_port}"
    (pytester.path / "site.yaml").write_text(textwrap.dedent(f"""\
        version: 1
        drill: {{name: browser-drill, description: Quarterly DR test of the web tier, rto: 4h}}
        defaults: {{timeout: 5s, connection: {{type: local}}}}
        hosts:
          web01:
            checks:
              reach: [{{target: "{up}"}}, {{target: "{down}"}}]
              dns: [{{name: localhost, expect: 127.0.0.1, allow_hosts_file: true}}]
          web02:
            checks:
              reach: [{{target: "{up}"}}, {{target: "{down}"}}]
        waivers:
          - id: RISK-3
            host: web02
            subject: "127.0.0.1:{closed_port}"
            justification: the admin port stays closed in DR by design
            approved_by: J. Doe
            expires: 2099-01-01
        """))
    pytester.runpytest("--dr-inventory=site.yaml", "--dr-evidence=ev").assert_outcomes(
        passed=3, failed=1, xfailed=1)
    report = pytester.path / "ev" / "report.html"
    started = time.perf_counter()
    assert drcheck(["report", str(pytester.path / "ev")]) == 0  # re-render from the bundle
    rendered_in = time.perf_counter() - started
    assert "rendered in" in capsys.readouterr().out
    assert drcheck(["verify", str(pytester.path / "ev")]) == 0
    assert rendered_in < 5
    screenshot = ARTIFACTS / "report-local-drill.png"
    dom = render(report, screenshot)

    assert "<title>DR drill browser-drill: FAILED</title>" in dom
    assert '<section class="verdict failed" id="verdict">' in dom
    assert "Quarterly DR test of the web tier" in dom
    assert "1 check(s) failed" in dom
    for host, check, outcome in [("web01", "reach", "failed"), ("web01", "dns", "passed"),
                                 ("web02", "reach", "waived")]:
        row = dom.split(f'<tr data-host="{host}">', 1)[1].split("</tr>", 1)[0]
        assert f'data-check="{check}" data-outcome="{outcome}"' in row
    failure = dom.split('<section id="failures">', 1)[1].split("</section>", 1)[0]
    assert f"web01::reach[127.0.0.1:{closed_port}]" in failure
    assert '<td class="expected">open</td>' in failure and "refused" in failure
    assert "the admin port stays closed in DR by design" in dom
    assert "target met" not in dom  # a failed check: the RTO is not reached
    # What a person sees: a red verdict banner, green and amber cells.
    assert colour_share(screenshot, FAILED, box=(80, 30, 400, 120)) > 0.5
    assert colour_share(screenshot, PASSED) > 0.001
    assert colour_share(screenshot, WAIVED) > 0.0005
