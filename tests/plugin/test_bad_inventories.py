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
    # Issue 10, item by item: each row failed (hang, traceback, silent misreading) before.
    ("jump-cycle", HEAD + "hosts:\n  a: {address: 10.0.0.1, connection: {jump: b}}\n"
                          "  b: {address: 10.0.0.2, connection: {jump: a}}\n",
     "site.yaml:4: hosts.a.connection.jump: jump hosts form a cycle: a -> b -> a; one of them "
     "must be reached directly (jump: null)"),
    ("address-shell-injection", HEAD + "hosts:\n  app01:\n    address: 'x; touch /tmp/p'\n",
     "site.yaml:5: hosts.app01.address: 'x; touch /tmp/p' is not valid here; expected a host "
     "name (app01.corp.example) or an IP address (10.0.0.1), without a port"),
    ("address-command-substitution", HEAD + "hosts:\n  app01:\n    address: '$(reboot)'\n",
     "site.yaml:5: hosts.app01.address: '$(reboot)' is not valid here"),
    ("user-shell-injection", HEAD + HOST + "    connection: {user: 'root;id'}\n",
     "site.yaml:6: hosts.app01.connection.user: 'root;id' is not valid here; expected a user "
     "name"),
    ("address-with-port", HEAD + "hosts:\n  app01:\n    address: '10.0.0.1:99999'\n",
     "site.yaml:5: hosts.app01.address: '10.0.0.1:99999' is not valid here"),
    ("address-blank", HEAD + "hosts:\n  app01:\n    address: ' '\n",
     "site.yaml:5: hosts.app01.address: ' ' is not valid here"),
    ("address-trailing-newline", HEAD + "hosts:\n  app01:\n    address: \"app01\\n\"\n",
     "site.yaml:5: hosts.app01.address: 'app01\\n' is not valid here"),
    ("host-name-trailing-newline", HEAD + "hosts:\n  \"app01\\n\": {address: 10.0.0.1}\n",
     "site.yaml:4: hosts: a key contains a control character (\\n); remove it"),
    ("rto-without-unit", "version: 1\ndrill: {name: t, rto: 4}\n" + HOST,
     "site.yaml:2: drill.rto: 4 is not valid here; expected a duration with its unit, e.g. 4h "
     "or 15m"),
    ("rto-base-60", "version: 1\ndrill: {name: t, rto: 4:00}\n" + HOST,
     "site.yaml:2: drill.rto: '4:00' is not valid here; expected a duration with its unit"),
    ("rpo-infinite", "version: 1\ndrill: {name: t, rpo: .inf}\n" + HOST,
     "site.yaml:2: drill.rpo: '.inf' is not valid here; expected a duration with its unit"),
    ("timeout-nan", HEAD + "defaults: {timeout: .nan}\n" + HOST,
     "site.yaml:3: defaults.timeout: '.nan' is not valid here; expected a duration"),
    ("timeout-zero", HEAD + "defaults: {connection: {connect_timeout: 0}}\n" + HOST,
     "site.yaml:3: defaults.connection.connect_timeout: 0 is not valid here; expected a "
     "duration such as 30s, 15m or 4h (more than 0, at most 24h)"),
    ("timeout-unbounded", HEAD + HOST + "    checks:\n      reach:\n"
                                        "        - {target: '10.0.0.5:22', timeout: 9999h}\n",
     "site.yaml:8: hosts.app01.checks.reach[0].timeout: '9999h' is not valid here"),
    ("duration-quadratic-regex", HEAD + "defaults: {timeout: '1" + " " * 60000 + "x'}\n" + HOST,
     "site.yaml:3: defaults.timeout: '1" + " " * 55 + "... is not valid here"),
    ("date-in-text-field", "version: 1\ndrill: {name: t}\n" + HOST + "    description: "
                                                                     "!!timestamp soon\n",
     "site.yaml:6: hosts.app01.description: the value is not a valid timestamp; write a "
     "timestamp or remove the tag"),
    ("bool-tag-on-text", HEAD + HOST + "    description: !!bool perhaps\n",
     "site.yaml:6: hosts.app01.description: the value is not a valid bool"),
    ("nesting-too-deep", HEAD + HOST + "    attributes: " + "[" * 600 + "]" * 600 + "\n",
     "site.yaml:6: document: nested more than 64 levels deep; flatten the structure"),
    ("anchor-contains-itself", HEAD + HOST + "    attributes: &a {x: *a}\n",
     "site.yaml:6: hosts.app01.attributes.x: an anchor contains an alias of itself"),
    ("billion-laughs", HEAD + HOST + "    attributes:\n"
     "      a: &a [x,x,x,x,x,x,x,x,x,x]\n      b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
     "      c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\n      d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
     "      e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\n      f: [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]\n",
     "aliases expand to more than 10000 values; write the values out"),
    ("resolver-not-an-ip", HEAD + "site:\n  dns:\n    resolvers: {onprem: 999.1.1.1}\n" + HOST,
     "site.yaml:5: site.dns.resolvers.onprem: '999.1.1.1' is not valid here; expected an IP "
     "address, optionally with :port (1-65535)"),
    ("resolver-port-out-of-range", HEAD + "site:\n  dns:\n    resolvers: {onprem: "
                                          "'10.0.0.53:99999'}\n" + HOST,
     "site.yaml:5: site.dns.resolvers.onprem: '10.0.0.53:99999' is not valid here"),
    ("egress-url-bad-port", HEAD + HOST + "    checks:\n      egress:\n        - {destination: "
                                          "'http://example.com:99999/', expect: denied}\n",
     "site.yaml:8: hosts.app01.checks.egress[0].destination: 'http://example.com:99999/' is "
     "not valid here"),
    ("route53-target-port-not-a-number", HEAD + "aws: {region: eu-west-1}\nhosts:\n  app01:\n"
     "    drs: {source_server_id: s-1234567890abcdef0}\n    checks:\n      route53_resolver: "
     "[{zone: corp.example, targets: ['10.0.0.53:dns'], vpc: vpc-01234567}]\n",
     "site.yaml:8: hosts.app01.checks.route53_resolver[0].targets: '10.0.0.53:dns' is neither "
     "an IP address nor a name under site.dns.resolvers"),
    ("suite-name-too-long", HEAD + HOST + "    suites: [" + "s" * 300 + "]\n",
     "site.yaml:6: hosts.app01.suites[0]: 'sssss"),
    ("lone-surrogate", 'version: 1\ndrill: {name: "\\ud800"}\n' + HOST,
     "site.yaml:2: drill.name: the value contains a lone surrogate (\\ud800); remove it"),
    ("vault-tag-secret", HEAD + HOST + "    connection: {password: !vault Hunter2-canary}\n",
     "site.yaml:6: hosts.app01.connection.password: YAML tag '!vault' is not supported; remove "
     "the tag"),
    ("float-port", HEAD + HOST + "    connection: {port: 22.0}\n",
     "site.yaml:6: hosts.app01.connection.port: 22.0 is not valid here; expected a port"),
    ("octal-port", HEAD + HOST + "    connection: {port: 022}\n",
     "site.yaml:6: hosts.app01.connection.port: '022' is not valid here"),
    ("collector-float-port", HEAD + "site:\n  logging:\n    collectors:\n      c: {address: "
     "10.0.0.9, tcp: 514.0, verify: {host: app01, command: 'grep {marker} x'}}\n" + HOST,
     "site.yaml:6: site.logging.collectors.c.tcp: 514.0 is not valid here"),
    ("nic-count-unbounded", HEAD + HOST + "    checks:\n      nic: [{count: 100000}]\n",
     "site.yaml:7: hosts.app01.checks.nic[0].count: 100000 is out of range; must be at most "
     "1024"),
    ("site-mistake-found-through-shipped-suite", HEAD + "site:\n  egress:\n    policy:\n"
     "      - {destination: 'http://a.example/', via: corporate, expect: denied}\n" + HOST
     + "    suites: [egress-policy]\n",
     "site.yaml:6: site.egress.policy[0].via: proxy 'corporate' is not in site.egress.proxies "
     "(none defined); define it there or use via: direct"),
    ("site-mistake-no-check-uses", HEAD + "site:\n  egress:\n    proxies: {corp: "
     "'10.0.0.60:3128'}\n    policy:\n      - {destination: 'http://a.example/', via: corporat, "
     "expect: denied}\n" + HOST,
     "site.yaml:7: site.egress.policy[0].via: proxy 'corporat' is not in site.egress.proxies "
     "(corp)"),
    ("second-document", HEAD + HOST + "---\n" + HEAD,
     "site.yaml:7: document: a second YAML document ('---') starts here"),
    ("nul-character", HEAD + HOST + "    description: a\x00b\n",
     "site.yaml:6: document: the character '\\x00' is not allowed in YAML; remove it"),
    ("missing-colon-after-key", HEAD + "hosts:\n  app01\n    address: 10.0.0.1\n",
     "site.yaml:5: document: not valid YAML: a ':' YAML did not expect here; check that the "
     "line above ends its key with ':'"),
    ("indentation", HEAD + "hosts:\n  app01:\n    address: 10.0.0.1\n   groups: [a]\n",
     "site.yaml:6: document: not valid YAML: the indentation of this line does not match the "
     "lines above"),
    ("tab-indentation", HEAD + "hosts:\n\tapp01: {address: 10.0.0.1}\n",
     "site.yaml:4: document: not valid YAML: a tab character; indent with spaces only"),
    ("no-space-after-colon", HEAD + "hosts:\n  app01:\n    address:10.0.0.1\n",
     "site.yaml:4: hosts.app01: 'address:10.0.0.1' is not valid here (a space is missing after "
     "the ':'?); expected a mapping"),
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
