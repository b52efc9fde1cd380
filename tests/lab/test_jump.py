"""A jump host that is itself an inventory host: app01 reached through logs01, green.

Before issue 10 this hung pytest at start (the engine re-entered its own lock building the
jump host's target), and the README's own pattern (a default jump that the jump host
inherits) did not even validate.
"""

from __future__ import annotations

import pytest

from pytest_drcheck.lab import Lab
from pytest_drcheck.lab.inventory_text import ssh_defaults

pytestmark = pytest.mark.lab

# jump: logs01 is the README's pattern: not applied to logs01 itself.
INVENTORY = """\
version: 1
drill: {name: lab-jump}
""" + ssh_defaults(timeout="20s", connect_timeout="5s", jump="logs01") + """\
site:
  dns:
    resolvers: {onprem: 10.77.0.53}
hosts:
  logs01:
    address: 10.77.0.40
    checks:
      reach: [{target: "10.77.0.11:22"}]
  app01:
    address: 10.77.0.11
    checks:
      dns:
        - {name: dc01.corp.example, expect: 10.77.0.20}
        - {name: dc01.corp.example, expect: 10.77.0.20, resolver: onprem}
      reach:
        - {target: "10.77.0.53:53"}
      agent:
        # app01's sshd names the client of this very session: logs01, not the runner.
        - name: reached-through-logs01
          process: sshd
          health: {command: 'test "${SSH_CONNECTION%% *}" = 10.77.0.40'}
"""


def test_app01_through_inventory_host_logs01_is_green(lab: Lab,
                                                       pytester: pytest.Pytester) -> None:
    (pytester.path / "site.yaml").write_text(INVENTORY)
    result = pytester.runpytest("--dr-inventory=site.yaml", "-p", "no:cacheprovider",
                                "-p", "no:randomly", "-rA")
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed") == 6, result.stdout.str()
    assert "failed" not in outcomes and "error" not in outcomes, result.stdout.str()
    passed = result.stdout.str()
    assert "PASSED site.yaml::app01::agent[reached-through-logs01/health]" in passed
    assert "PASSED site.yaml::logs01::reach[10.77.0.11:22]" in passed
