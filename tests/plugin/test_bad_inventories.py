"""Every inventory mistake is one line (file:line: place: problem and fix), a usage error, and
never a traceback. Each row is a distinct mistake a user has made or will make."""

from __future__ import annotations

import textwrap

import pytest

HEAD = """\
version: 1
drill: {name: t}
"""
HOST = """\
hosts:
  app01:
    address: 10.0.0.1
"""

CASES: list[tuple[str, str, str]] = [
    ("not-yaml", "version: 1\ndrill: [\n",
     "site.yaml:3: document: not valid YAML: the file ends inside an unclosed [...], {...} or "
     "quote; close it"),
    ("not-a-mapping", "- just\n- a list\n",
     "site.yaml:1: document: an inventory must be a mapping; write version, drill and hosts at "
     "the top level"),
    ("missing-version", "drill: {name: t}\n" + HOST,
     "site.yaml:1: document: missing required key 'version'; add it"),
    ("wrong-version", "version: 2\ndrill: {name: t}\n" + HOST,
     "site.yaml:1: version: 2 is not valid here; expected 1 (the only inventory version so far)"),
    ("typo-top-level", HEAD + "hostz:\n  app01: {address: 10.0.0.1}\n",
     "site.yaml:3: hostz: unknown key 'hostz' (did you mean 'hosts'?)"),
    ("unknown-check-type", HEAD + HOST + "    checks:\n      dsn: []\n",
     "site.yaml:7: hosts.app01.checks.dsn: unknown check type 'dsn' (did you mean 'dns'?)"),
    ("typo-in-entry", HEAD + HOST + "    checks:\n      dns:\n        - name: a.example\n"
                                    "          expct: [10.0.0.9]\n",
     "site.yaml:9: hosts.app01.checks.dns[0].expct: unknown key 'expct' "
     "(did you mean 'expect'?)"),
    ("wrong-type", HEAD + HOST + "    checks:\n      dns:\n        - name: a.example\n"
                                 "          expect: 5\n",
     "site.yaml:9: hosts.app01.checks.dns[0].expect: 5 is not valid here; expected an answer "
     "or a list of answers, e.g. 10.77.0.20"),
    ("checks-not-a-list", HEAD + HOST + "    checks:\n      dns:\n        name: a.example\n",
     "site.yaml:7: hosts.app01.checks.dns: a mapping is not valid here; expected a list of dns "
     "check entries"),
    ("endpoint-without-port", HEAD + HOST + "    checks:\n      reach:\n        - target: dc01\n",
     "site.yaml:8: hosts.app01.checks.reach[0].target: 'dc01' is not valid here; expected "
     "host:port"),
    ("undefined-group", HEAD + HOST + "    groups: [webz]\ngroups:\n  web: {}\n",
     "site.yaml:6: hosts.app01.groups[0]: group 'webz' is not defined under groups:; define "
     "it or fix the name (did you mean 'web'?)"),
    ("missing-suite", HEAD + HOST + "    suites: [no-such-suite]\n",
     "site.yaml:6: hosts.app01.suites[0]: suite 'no-such-suite' not found"),
    ("duplicate-key", HEAD + HOST + "    address: 10.0.0.2\n",
     "site.yaml:6: hosts.app01.address: duplicate key 'address' (first at line 5); remove "
     "one of them"),
    ("bad-duration", HEAD + "defaults:\n  timeout: 5 minutes\n" + HOST,
     "site.yaml:4: defaults.timeout: '5 minutes' is not valid here; expected a duration such "
     "as 30s, 15m or 4h (more than 0, at most 24h)"),
    ("bad-enum", HEAD + "defaults:\n  connection: {host_key_policy: ignore}\n" + HOST,
     "site.yaml:4: defaults.connection.host_key_policy: 'ignore' is not one of strict, "
     "accept-new"),
    ("contradiction", HEAD + HOST + "    checks:\n      dns:\n        - name: a.example\n"
                                    "          absent: true\n          expect: 10.0.0.1\n",
     "site.yaml:9: hosts.app01.checks.dns[0].absent: 'absent: true' and 'expect' contradict "
     "each other; keep one"),
    ("unknown-resolver", HEAD + HOST + "    checks:\n      dns:\n        - name: a.example\n"
                                       "          resolver: onprem\n",
     "site.yaml:9: hosts.app01.checks.dns[0].resolver: resolver 'onprem' is neither 'system', "
     "a name in site.dns.resolvers (none defined) nor an IP address"),
    ("ssh-host-without-address", HEAD + "hosts:\n  app01:\n    description: x\n",
     "site.yaml:4: hosts.app01: missing required key 'address'"),
    ("unknown-jump", HEAD + HOST + "    connection: {jump: bastoin}\n  bastion:\n"
                                   "    address: 10.0.0.9\n",
     "hosts.app01.connection.jump: jump 'bastoin' is neither a host of this inventory "
     "(did you mean 'bastion'?)"),
    ("invalid-host-name", HEAD + "hosts:\n  app 01: {address: 10.0.0.1}\n",
     "site.yaml:3: hosts: 'app 01' is not valid here; expected a name of letters, digits"),
    ("port-out-of-range", HEAD + HOST + "    connection: {port: 70000}\n",
     "site.yaml:6: hosts.app01.connection.port: 70000 is not valid here; expected a port "
     "number from 1 to 65535"),
    ("duplicate-subject", HEAD + HOST + "    checks:\n      reach:\n"
                                        "        - target: 10.0.0.5:22\n"
                                        "        - target: 10.0.0.5:22\n",
     "site.yaml:9: hosts.app01.checks.reach[1]: reach '10.0.0.5:22' is already checked by "
     "hosts.app01.checks.reach[0]; remove one of them"),
    ("no-hosts", HEAD + "hosts: {}\n", "site.yaml:3: hosts: must not be empty"),
    ("waiver-impossible-date", HEAD + HOST + "waivers:\n  - {check: reach, justification: j, "
                                             "approved_by: a, expires: 2025-13-01}\n",
     "site.yaml:7: waivers[0].expires: '2025-13-01' is not a date; write the expiry date "
     "like 2025-12-31"),
    ("waiver-not-a-date", HEAD + HOST + "waivers:\n  - {check: reach, justification: j, "
                                        "approved_by: a, expires: next week}\n",
     "site.yaml:7: waivers[0].expires: 'next week' is not a date; write the expiry date like "
     "2025-12-31"),
    ("waiver-selects-everything", HEAD + HOST + "waivers:\n  - {justification: j, "
                                                "approved_by: a, expires: 2030-01-01}\n",
     "site.yaml:7: waivers[0]: a waiver must select checks with at least one of host, group, "
     "check, subject"),
    ("waiver-unknown-check", HEAD + HOST + "waivers:\n  - {check: rech, justification: j, "
                                           "approved_by: a, expires: 2030-01-01}\n",
     "site.yaml:7: waivers[0].check: unknown check type 'rech' (did you mean 'reach'?)"),
    ("waiver-without-approval", HEAD + HOST + "waivers:\n  - {check: reach, justification: j, "
                                              "expires: 2030-01-01}\n",
     "site.yaml:7: waivers[0]: missing required key 'approved_by'"),
    ("site-all-without-records", HEAD + HOST + "    checks:\n      dns:\n        - site: true\n",
     "site.yaml:8: hosts.app01.checks.dns[0].site: 'site: true' needs site.dns.records"),
]


@pytest.mark.parametrize(("name", "inventory", "expected"), CASES, ids=[c[0] for c in CASES])
def test_bad_inventory_is_one_clear_line(pytester: pytest.Pytester, name: str, inventory: str,
                                          expected: str) -> None:
    pytester.path.joinpath("site.yaml").write_text(textwrap.dedent(inventory))
    result = pytester.runpytest("--dr-inventory=site.yaml", "--collect-only")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = result.stderr.str()
    assert expected in errors
    assert "Traceback" not in errors + result.stdout.str()
    problem_lines = [line for line in errors.splitlines() if line.startswith("site.yaml")]
    assert len(problem_lines) == 1, errors


def test_cases_are_distinct() -> None:
    assert len({c[0] for c in CASES}) == len(CASES) >= 15
    assert len({c[2] for c in CASES}) == len(CASES)


def test_secret_written_in_clear_is_not_echoed(pytester: pytest.Pytester) -> None:
    pytester.path.joinpath("site.yaml").write_text(
        HEAD + HOST + "    connection: {password: Hunter2-canary}\n")
    result = pytester.runpytest("--dr-inventory=site.yaml", "--collect-only")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert ("site.yaml:6: hosts.app01.connection.password: the value (not shown) is not valid "
            "here; expected a secret reference") in result.stderr.str()
    assert "Hunter2-canary" not in result.stderr.str() + result.stdout.str()


def test_suite_file_mistakes_name_the_suite_file(pytester: pytest.Pytester) -> None:
    suites = pytester.mkdir("suites")
    suites.joinpath("web.yaml").write_text("suite: webb\nchecks:\n  reach:\n    - targt: x:1\n")
    pytester.path.joinpath("site.yaml").write_text(HEAD + HOST + "    suites: [web]\n")
    result = pytester.runpytest("--dr-inventory=site.yaml", "--collect-only")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert ("suites/web.yaml:4: checks.reach[0].targt: unknown key 'targt' (did you mean "
            "'target'?)") in result.stderr.str()


def test_missing_inventory_file(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--dr-inventory=nowhere.yaml", "--collect-only")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "nowhere.yaml: file not found; check the path" in result.stderr.str()
