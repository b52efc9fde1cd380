"""The project's own fault matrix: the shipped lab drill (inventories/lab.yaml) run against the
sandbox with real faults injected, one table row per fault.

Every row names the EXACT set of checks that must not pass, each one's outcome (failed, error,
skipped) and its one-line reason (a regex over the part after ``host check subject: ``);
every other check of the drill must pass, nothing may be lost, no traceback may be printed, and
the drill must end within a bound derived from the inventory's own timeouts. Zero false
passes is asserted, not hoped for: e.g. with the DNS server gone, no ``dns`` check of an absent
name through the system resolver may pass ("could not observe" is never a pass).

Faults that touch unrelated checks share one drill (their expected sets are disjoint, so the
assertions stay exact) to keep the matrix's CI time down. One lab serves the whole matrix:
every fault undoes itself, the lab's health check must find it healthy after each drill, and a
green drill before the first fault and after the last proves the repairs.

The expectations are the CORRECT behaviour of issue 14 (the observe/judge contract): where a
check could not observe (a resolver that failed, a stream that could not be opened where the
stream is not itself the property), the outcome is an ERROR "could not observe: <cause>";
a check whose precondition did not pass is SKIPPED ("skipped: <check> did not pass (...)").
``UNOBSERVED`` accepts either of those two for a dependent check (which of the two depends on
the family's ``requires``), never a pass or a failure.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from pytest_drcheck.inventory import load_plan
from pytest_drcheck.lab import Lab, faults
from pytest_drcheck.lab.components.pki import BIND_PASSWORD_FILE
from pytest_drcheck.lab.faults.domain import wait_until_member_works
from pytest_drcheck.lab.site import LAN

pytestmark = [pytest.mark.lab, pytest.mark.xdist_group("drlab")]

REPO = Path(__file__).resolve().parents[2]
INVENTORY = REPO / "inventories" / "lab.yaml"
PLAN = load_plan(INVENTORY)
KEYS = tuple(sorted(item.key for item in PLAN.items))
INSTANCES = ("app01", "app02", "db01")
# The runner's address on the lab LAN (the root namespace's end of the bridge).
RUNNER = str(LAN.gateway)
CONNECTION = PLAN.hosts["app01"].connection
# The longest a single check may take by the inventory, and the SSH connect timeout: a drill's
# wall time beyond the green drill's is bounded by these (checks of a host run concurrently).
CHECK_TIMEOUT = max(item.timeout for item in PLAN.items)
CONNECT_TIMEOUT = CONNECTION.connect_timeout
COMMAND_TIMEOUT = CONNECTION.command_timeout

FAILED, ERROR, SKIPPED = "failed", "error", "skipped"
# A dependent check: error (could not observe) or skipped (its requirement did not pass).
UNOBSERVED = "error|skipped"
# Where the outcome is not settled by issue 14 (the check observed an answer that is itself
# not the property: a proxy's DNS failure page), anything but a pass.
NOT_PASSED = "failed|error|skipped"
# How the contract words an error: the property could not be observed (and why), the host
# could not be reached (and why), or the check never ran.
ERROR_FORM = r"(could not observe|cannot reach \S+|not run): "


@dataclass(frozen=True)
class Expect:
    outcome: str
    reason: str

    def problem(self, record: Mapping[str, Any]) -> str | None:
        outcome = str(record["outcome"])
        reason = reason_of(record)
        if outcome not in self.outcome.split("|"):
            return f"outcome {outcome}, expected {self.outcome}: {reason}"
        if re.fullmatch(self.reason, reason, flags=re.DOTALL) is None:
            return f"reason {reason!r} does not match {self.reason!r}"
        if outcome == ERROR and re.match(ERROR_FORM, reason) is None:
            return f"an error that does not say why in the contract's words: {reason!r}"
        return None


def reason_of(record: Mapping[str, Any]) -> str:
    head = f"{record['host']} {record['check']} {record['subject']}: "
    message = str(record["message"])
    return message[len(head):] if message.startswith(head) else message


def matching(pattern: str) -> list[str]:
    """A check key as is, or the keys an fnmatch pattern selects (``[[]`` for a bracket)."""
    if pattern in KEYS:
        return [pattern]
    found = [key for key in KEYS if fnmatch.fnmatchcase(key, pattern)]
    assert found, f"{pattern} matches no check of {INVENTORY.name}: fix the table"
    return found


def expect(outcome: str, reason: str, *patterns: str) -> dict[str, Expect]:
    return {key: Expect(outcome, reason) for pattern in patterns for key in matching(pattern)}


def could_not_observe(cause: str) -> str:
    return rf"could not observe: .*{cause}.*"


def unobserved(cause: str) -> str:
    """The reason of a dependent check (its own "could not observe", or a skip because what
    it needs did not pass): whichever it is, the cause must be named."""
    return rf".*{cause}.*"


def on(hosts: Sequence[str], *suffixes: str) -> list[str]:
    return [f"{host}::{suffix}" for host in hosts for suffix in suffixes]


# -- what a drill sees -------------------------------------------------------------------------

@dataclass
class Stage:
    """One drill: the inventory it runs (a fault may write a changed copy) and actions a fault
    wants run once the drill has started."""

    directory: Path
    inventory: Path = INVENTORY
    during: list[Callable[[Path, subprocess.Popen[str]], None]] = field(default_factory=list)


@dataclass(frozen=True)
class Drill:
    returncode: int
    output: str
    wall: float
    records: Mapping[str, Mapping[str, Any]]
    evidence: Path


def run_drill(stage: Stage, timeout: float = 600.0) -> Drill:
    evidence = stage.directory / "evidence"
    argv = [sys.executable, "-m", "pytest", f"--dr-inventory={stage.inventory}",
            f"--dr-evidence={evidence}", "-q", "-p", "no:cacheprovider"]
    started = time.monotonic()
    child = subprocess.Popen(argv, cwd=stage.directory, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, start_new_session=True)
    helpers = [threading.Thread(target=action, args=(evidence, child), daemon=True)
               for action in stage.during]
    for helper in helpers:
        helper.start()
    try:
        output, _ = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        output, _ = child.communicate()
        pytest.fail(f"the drill hung for {timeout:g} s:\n{output[-3000:]}")
    wall = time.monotonic() - started
    for helper in helpers:
        helper.join(timeout=60)
    return Drill(child.returncode, output, wall, read_records(evidence), evidence)


def read_records(evidence: Path) -> dict[str, Mapping[str, Any]]:
    path = evidence / "results.jsonl"
    records: dict[str, Mapping[str, Any]] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                record = json.loads(line)
                # The key without any file-name prefix (ids gain the inventory's name).
                records[f"{record['host']}::{record['check']}[{record['subject']}]"] = record
    return records


def records_written(evidence: Path) -> int:
    with contextlib.suppress(OSError):
        return sum(1 for line in (evidence / "results.jsonl").read_text().splitlines()
                   if line.strip())
    return 0


def wall_bound(baseline: float) -> float:
    """A faulty drill may take two check timeouts and one connect timeout longer than the
    green drill did (hosts run concurrently; a check that waits on a dead peer is cut at its
    timeout, and one that depends on it runs in a later wave), with the green drill's own
    time counted twice for a loaded runner. A hang or timeouts stacked one after another
    exceed it."""
    return 2 * baseline + 2 * CHECK_TIMEOUT + CONNECT_TIMEOUT


def problems(drill: Drill, expected: Mapping[str, Expect]) -> list[str]:
    found: list[str] = []
    missing = sorted(set(KEYS) - set(drill.records))
    if missing:
        found.append(f"{len(missing)} checks have no result, e.g. {missing[:3]}")
    for key in KEYS:
        record = drill.records.get(key)
        if record is None:
            continue
        if key in expected:
            problem = expected[key].problem(record)
            if problem is not None:
                found.append(f"{key}: {problem}")
        elif record["outcome"] != "passed":
            found.append(f"{key}: should pass, {record['outcome']}: {reason_of(record)}")
    if "Traceback" in drill.output:
        found.append("a traceback was printed")
    return found


def summary(drill: Drill) -> str:
    lines = [f"exit {drill.returncode}, {drill.wall:.1f} s, {len(drill.records)} results"]
    lines += [f"  {key}: {r['outcome']}: {reason_of(r)}" for key, r in sorted(
        drill.records.items()) if r["outcome"] != "passed"]
    return "\n".join(lines)


# -- the faults --------------------------------------------------------------------------------

Inject = Callable[[Lab, Stage], contextlib.AbstractContextManager[Any]]


@dataclass(frozen=True)
class Fault:
    name: str
    inject: Inject
    expected: Mapping[str, Expect]


def stopped(host: str, daemon: str) -> Inject:
    return lambda lab, stage: faults.stopped(lab, host, daemon)


def stopped_under_the_member(host: str, daemon: str) -> Inject:
    """A daemon the domain member db01 depends on (the AD DC, DNS): undone only once db01's
    winbindd reaches its DC again (it keeps the domain offline for a while after losing it)."""
    @contextlib.contextmanager
    def inject(lab: Lab, stage: Stage) -> Iterator[None]:
        with faults.stopped(lab, host, daemon):
            yield
        wait_until_member_works(lab, "db01")
    return inject


@contextlib.contextmanager
def inventory_changed(stage: Stage, change: Callable[[dict[str, Any]], None]) -> Iterator[None]:
    document = yaml.safe_load(INVENTORY.read_text())
    change(document)
    stage.inventory = stage.directory / "lab.yaml"
    stage.inventory.write_text(yaml.safe_dump(document, sort_keys=False))
    yield


def wrong_expectations(document: dict[str, Any]) -> None:
    hosts = document["hosts"]
    hosts["app01"]["checks"]["dns"][0]["expect"] = "dc02.corp.example"
    db01 = hosts["db01"]["checks"]
    db01["nic"][0]["mtu"] = 9000
    db01["reach"][1]["expect"] = "open"
    document["site"]["dns"]["records"][2]["values"] = ["10.77.0.31"]


def following_ntp01(lab: Lab) -> list[str]:
    """The instances whose chronyd has ntp01 selected right now."""
    return [host for host in INSTANCES if any(
        line.split(",")[1:3] == ["*", "10.77.0.30"]
        for line in lab.exec(host, ["chronyc", "-n", "-c", "sources"]).stdout.splitlines())]


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} did not happen within {timeout:g} s")
        time.sleep(0.5)


@contextlib.contextmanager
def clock_server_gone(lab: Lab, stage: Stage) -> Iterator[None]:
    with faults.stopped(lab, "ntp01", "chronyd"):
        # The instances' chronyd notice a dead server only after a few polls: wait until none
        # of them still has it selected, so the drill sees the fault, not a race.
        wait_until(lambda: not following_ntp01(lab), "the instances losing ntp01")
        yield
    # ... and back: the next drill must not see a clock still catching up.
    wait_until(lambda: following_ntp01(lab) == list(INSTANCES), "the instances following ntp01")


def together(*managers: contextlib.AbstractContextManager[Any]
           ) -> contextlib.AbstractContextManager[None]:
    """Several faults as one (entered in order, undone in reverse)."""

    @contextlib.contextmanager
    def entered() -> Iterator[None]:
        with contextlib.ExitStack() as stack:
            for manager in managers:
                stack.enter_context(manager)
            yield

    return entered()


def accept_and_close_proxy(lab: Lab, stage: Stage) -> contextlib.AbstractContextManager[None]:
    return together(faults.stopped(lab, "proxy01", "squid"),
                    faults.accepting_and_closing(lab, "proxy01", 3128))


DNS_BY_RESOLVER = [key for key in matching("*::dns[[]*") if "@" not in key]
DNS_ONPREM = matching("*::dns[[]*@onprem]")
LDAP_CORP = [f"{h}::ldap[dc01.corp.example/{p}@corp]" for h in INSTANCES
             for p in ("ldaps", "starttls", "search")]
LDAP_AD = matching("*::ldap[[]*@ad]")
# db01 is a member of the AD domain: its membership needs the DC, and (Kerberos, the secure
# channel) DNS; whether it is joined at all is read from its own configuration.
DOMAIN_DC = "db01::domain[ad/dc]"
DOMAIN_NEEDS_DNS = [*matching("db01::domain[[]ad/kerberos]"),
                    *matching("db01::domain[[]ad/secure-channel]"),
                    *matching("db01::domain[[]ad/user/*"), *matching("db01::domain[[]ad/group/*")]
DNS_SERVER = r"(10\.77\.0\.53|DNS|[Rr]esolv|name server|nameserver)"
# The source src01's replication path to DRS goes through the same proxy (replication-path).
DRS_ENDPOINT = "src01::egress[DRS endpoint drs.us-east-1.amazonaws.com:443 via corp]"

FAULTS: tuple[Fault, ...] = (
    Fault("dnsmasq killed", stopped_under_the_member("dns01", "dnsmasq"), {
        # Through the system resolver: a resolver failure, never "does not resolve" (the
        # absent name and the PTR included): could not observe, naming DNS.
        **expect(ERROR, could_not_observe(DNS_SERVER), *DNS_BY_RESOLVER),
        # Asked at the onprem resolver itself: it does not answer, so nothing was resolved
        # or refuted: could not observe, naming the resolver.
        **expect(ERROR, could_not_observe(r"onprem \(10\.77\.0\.53:53\)"), *DNS_ONPREM),
        **expect(FAILED, r"expected open, observed refused", *on(INSTANCES,
                                                                 "reach[10.77.0.53:53]")),
        # Every directory server is found by name: nothing to bind to, named as DNS.
        **expect(UNOBSERVED, unobserved(r"(corp\.example|DNS|[Rr]esolv)"), *LDAP_CORP,
                 *LDAP_AD),
        # The member still reaches its DC (winbindd knows its address), but Kerberos and the
        # secure channel look the realm up in DNS: their commands time out, lookups are skipped.
        **expect(UNOBSERVED, unobserved(r"(timed out|secure-channel)"), *DOMAIN_NEEDS_DNS),
        # The proxy resolves through the same server, but squid keeps the answers of the
        # green drill before in its own cache: a real 200 through the proxy is a pass, and
        # without that cache its DNS failure page (503) is not a pass, not "denied"; nor is a
        # proxy still waiting for its resolver when the check's time is up (squid's own DNS
        # timeout is 30 s): whichever of these the cache's age gives, never "denied".
        **expect(f"passed|{NOT_PASSED}",
                 r".*(DNS|[Rr]esolv|503|connected \(HTTP 200\)|no answer from the proxy).*",
                 *on(INSTANCES, "egress[www.example.com/@corp]",
                     "egress[www.example.com:80@corp]"), DRS_ENDPOINT),
        # The expected source is a name: comparing needs it resolved (issue 14 item 4).
        **expect(ERROR, could_not_observe(r"ntp01\.corp\.example"), *on(INSTANCES,
                                                                        "time[source]")),
    }),
    Fault("slapd killed", stopped("dc01", "slapd"), {
        **expect(UNOBSERVED, unobserved(r"(refused|dc01\.corp\.example)"), *LDAP_CORP),
    }),
    Fault("samba killed", stopped_under_the_member("dc02", "samba"), {
        # Samba is also the AD zone's DNS: SRV lookups and the DC's own name fail.
        **expect(UNOBSERVED, unobserved(r"(ad\.corp\.example|DNS|[Rr]esolv|refused)"),
                 *LDAP_AD),
        # The member's DC is gone: that is the failure; what needs a DC is skipped.
        **expect(FAILED, r"expected a DC among dc02\.ad\.corp\.example, no DC located.*",
                 DOMAIN_DC),
        **expect(UNOBSERVED, unobserved(r"domain\[ad/dc\] did not pass"), *DOMAIN_NEEDS_DNS),
    }),
    Fault("chrony server killed", clock_server_gone, {
        **expect(FAILED, r"expected synchronised .*observed .*not synchronised.*10\.77\.0\.30.*",
                 *on(INSTANCES, "time[sync]")),
        # No selected source to compare with the expected one: a dependent, not a failure.
        **expect(UNOBSERVED, unobserved(r"(not synchronised|time\[sync\])"),
                 *on(INSTANCES, "time[source]")),
    }),
    Fault("rsyslog collector killed", stopped("logs01", "rsyslog"), {
        **expect(FAILED, r".*(refused|unreachable).*", *on(INSTANCES, "logging[central/tcp]")),
        **expect(FAILED, r".*not delivered.*", *on(INSTANCES, "logging[central/udp]")),
    }),
    Fault("clamd agent killed", stopped("app01", "clamd"), {
        **expect(FAILED, r"expected clamav running, observed no clamd process.*",
                 "app01::agent[clamav/running]"),
        # The health probe depends on the agent running: not a second failure.
        **expect(UNOBSERVED, unobserved(r"(clamav|clamd)"), "app01::agent[clamav/health]"),
    }),
    Fault("bacula-fd killed", stopped("db01", "bacula-fd"), {
        **expect(FAILED, r"expected backup agent bacula-fd running, observed no bacula-fd "
                 r"process.*", "db01::backup[agent]"),
        # The backup server finds the agent's port closed: observed (refused) or skipped as a
        # dependent of the agent; never a pass, never "timed out".
        **expect(f"{FAILED}|{SKIPPED}", r".*(refused|bacula-fd|backup\[agent\]).*",
                 "db01::backup[hello]", "db01::backup[reverse]"),
    }),
    Fault("backup path blocked", lambda lab, stage: faults.firewall(
        lab, "app01", 9102, "drop", source="10.77.0.41"), {
        **expect(FAILED, r"expected backup01 -> 10\.77\.0\.11:9102 open, observed timed out.*",
                 "app01::backup[reverse]"),
        **expect(UNOBSERVED, unobserved(r"(timed out|backup\[reverse\])"),
                 "app01::backup[hello]"),
    }),
    Fault("changed host key", lambda lab, stage: faults.rotated_host_key(lab, "app02"), {
        # Nothing can be observed on app02: one cause, named on each of its checks.
        **expect(ERROR, r"cannot reach app02: host key mismatch.*SHA256:.*",
                 *[key for key in KEYS if key.startswith("app02::")]),
    }),
    Fault("proxy too open", lambda lab, stage: faults.proxy_allows(lab, "blocked.example.org"),
          expect(FAILED, r"expected denied.*", *on(INSTANCES,
                                                   "egress[blocked.example.org/@corp]"))),
    Fault("direct egress path", lambda lab, stage: faults.direct_path(lab, "app01"),
          expect(FAILED, r"expected denied.*", "app01::egress[10.99.0.80:80@direct]")),
    Fault("untrusted CA", lambda lab, stage: faults.untrusted_certificate(lab, "dc01"), {
        **expect(FAILED, r".*(certificate|CA|verif).*", *on(
            INSTANCES, "ldap[dc01.corp.example/ldaps@corp]",
            "ldap[dc01.corp.example/starttls@corp]")),
        **expect(UNOBSERVED, unobserved(r"(certificate|CA|verif|ldaps|starttls)"),
                 *on(INSTANCES, "ldap[dc01.corp.example/search@corp]")),
    }),
    # chronyd on app02 follows a source 120 s ahead (on ntp01's address, port 1123) and
    # reports its clock 120 s slow. All namespaces share one real clock, so the measured offset
    # is truly about zero: time[offset] passing is right, time[sync] must fail.
    Fault("clock skewed", lambda lab, stage: faults.skewed_source(lab, "app02"), {
        **expect(FAILED, r"expected synchronised within 1 s of its source, observed .*"
                 r"10\.77\.0\.30.*120(\.\d+)? s slow.*", "app02::time[sync]"),
    }),
    Fault("wrong credentials", lambda lab, stage: faults.wrong_secret(
        lab, BIND_PASSWORD_FILE, "Not-the-password-1"), {
        **expect(FAILED, r".*([Ii]nvalid ?[Cc]redentials|password|refused).*", *on(
            INSTANCES, "ldap[dc01.corp.example/ldaps@corp]",
            "ldap[dc01.corp.example/starttls@corp]", "ldap[dc02.ad.corp.example/ldaps@ad]",
            "ldap[dc02.ad.corp.example/starttls@ad]")),
        **expect(UNOBSERVED, unobserved(r"([Ii]nvalid ?[Cc]redentials|password|ldaps|starttls)"),
                 *on(INSTANCES, "ldap[dc01.corp.example/search@corp]",
                     "ldap[dc02.ad.corp.example/search@ad]")),
    }),
    Fault("hosts-file override", lambda lab, stage: faults.hosts_entry(
        lab, "app01", "dc01.corp.example", "10.77.0.250"), {
        **expect(FAILED, r"expected 10\.77\.0\.20, resolved 10\.77\.0\.250 \(from /etc/hosts\);"
                 r" DNS answers 10\.77\.0\.20", "app01::dns[dc01.corp.example]"),
        # The instance itself resolves the DC to the wrong address: its binds cannot happen.
        **expect(UNOBSERVED, unobserved(r"(10\.77\.0\.250|dc01\.corp\.example|timed out)"),
                 *on(["app01"], "ldap[dc01.corp.example/ldaps@corp]",
                     "ldap[dc01.corp.example/starttls@corp]",
                     "ldap[dc01.corp.example/search@corp]")),
    }),
    Fault("LDAP ports dropped", lambda lab, stage: together(
        faults.firewall(lab, "dc01", 389, "drop"), faults.firewall(lab, "dc01", 636, "drop")), {
        **expect(UNOBSERVED, unobserved(r"(timed out|no TCP connection|dc01\.corp\.example)"),
                 *LDAP_CORP),
    }),
    Fault("collector port dropped", lambda lab, stage: faults.firewall(
        lab, "logs01", 514, "drop"), {
        **expect(FAILED, r".*timed out.*", *on(INSTANCES, "logging[central/tcp]")),
        **expect(FAILED, r".*not delivered.*", *on(INSTANCES, "logging[central/udp]")),
    }),
    Fault("proxy port accepts and closes", accept_and_close_proxy, {
        # An answer nobody gave is never "denied": the policy could not be observed.
        **expect(ERROR, could_not_observe(r"(10\.77\.0\.60:3128|proxy).*(closed|no answer|"
                                          r"without)"), *on(
            INSTANCES, "egress[10.99.0.80/@corp]", "egress[blocked.example.org/@corp]",
            "egress[www.example.com/@corp]", "egress[www.example.com:80@corp]"), DRS_ENDPOINT),
    }),
    Fault("wrong expectations in the inventory", lambda lab, stage: inventory_changed(
        stage, wrong_expectations), {
        **expect(FAILED, r"expected dc02\.corp\.example, .*dc01\.corp\.example.*",
                 "app01::dns[10.77.0.20/PTR]"),
        **expect(FAILED, r"expected eth0 9000, eth1 9000, observed eth0 1500, eth1 1500",
                 "db01::nic[mtu]"),
        **expect(FAILED, r"expected open, observed refused", "db01::reach[10.77.0.11:3306]"),
        **expect(FAILED, r"expected 10\.77\.0\.31, resolved 10\.77\.0\.30.*",
                 *on(INSTANCES, "dns[ntp01.corp.example]")),
        **expect(FAILED, r"expected 10\.77\.0\.31, resolved 10\.77\.0\.30 via onprem.*",
                 *on(INSTANCES, "dns[ntp01.corp.example@onprem]")),
    }),
)
BY_NAME = {fault.name: fault for fault in FAULTS}


# Drills of the matrix: faults in one drill touch disjoint sets of checks.
DRILLS: tuple[tuple[str, ...], ...] = (
    ("dnsmasq killed",),
    ("slapd killed", "samba killed"),
    ("chrony server killed", "wrong credentials"),
    ("rsyslog collector killed", "hosts-file override"),
    ("clamd agent killed", "bacula-fd killed", "backup path blocked", "changed host key"),
    ("untrusted CA", "clock skewed", "proxy too open", "direct egress path"),
    ("LDAP ports dropped", "wrong expectations in the inventory"),
    ("collector port dropped", "proxy port accepts and closes"),
)


def test_the_table_is_consistent() -> None:
    assert sorted(name for drill in DRILLS for name in drill) == sorted(BY_NAME)
    for drill in DRILLS:
        seen: set[str] = set()
        for name in drill:
            overlap = seen & set(BY_NAME[name].expected)
            assert not overlap, f"{name} shares checks with another fault of its drill: {overlap}"
            seen |= set(BY_NAME[name].expected)
    assert len(FAULTS) + 2 >= 18  # and the two mid-run faults below


# -- the matrix --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Baseline:
    wall: float


REPORT: list[str] = []


@pytest.fixture(scope="module")
def baseline(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Baseline]:
    green = run_drill(Stage(tmp_path_factory.mktemp("green")))
    assert (green.returncode, problems(green, {})) == (0, []), summary(green)
    REPORT.append(f"green baseline: {green.wall:.1f} s")
    yield Baseline(green.wall)
    if os.environ.get("DRCHECK_FAULT_REPORT"):
        Path(os.environ["DRCHECK_FAULT_REPORT"]).write_text("\n".join(REPORT) + "\n")


@pytest.mark.parametrize("names", DRILLS, ids=[" + ".join(d) for d in DRILLS])
def test_fault(lab: Lab, baseline: Baseline, tmp_path: Path, names: tuple[str, ...]) -> None:
    stage = Stage(tmp_path)
    expected: dict[str, Expect] = {}
    with contextlib.ExitStack() as stack:
        for name in names:
            stack.enter_context(BY_NAME[name].inject(lab, stage))
            expected |= BY_NAME[name].expected
        drill = run_drill(stage)
    REPORT.append(f"== {' + '.join(names)}\n{summary(drill)}")
    # Every fault undid itself: the lab's own health check finds nothing to repair.
    assert lab.up().action == "already up"
    found = problems(drill, expected)
    assert drill.returncode == 1, summary(drill)
    assert drill.wall < wall_bound(baseline.wall), summary(drill)
    assert found == [], "\n".join(found) + "\n" + summary(drill)


def _wait_for_records(evidence: Path, count: int, child: subprocess.Popen[str],
                      timeout: float = 120.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and child.poll() is None:
        if records_written(evidence) >= count:
            return True
        time.sleep(0.02)
    return False


# How many drills the cut-off test may run before one is cut while app02 is still being checked.
CUT_OFF_ATTEMPTS = 3


def test_runner_cut_off_mid_run(lab: Lab, baseline: Baseline, tmp_path: Path) -> None:
    """The runner's link to app02 dies (every packet between them dropped) once app02's first
    results are in: what app02 had observed stands, everything else on it errors with the
    cause (nothing "fails": nothing was observed), nothing hangs, the other hosts (and the
    backup server's own view of app02) stay green.

    app02's last checks can finish in the moment between its first result and the cut (seen
    under eight CPU hogs): such a drill shows nothing of a cut, and the drill is run again."""
    for attempt in range(CUT_OFF_ATTEMPTS):
        drill = _drill_cut_off_at_app02(lab, tmp_path / f"attempt{attempt}")
        app02 = {k: r for k, r in drill.records.items() if k.startswith("app02::")}
        if any(r["outcome"] != "passed" for r in app02.values()):
            break
    assert any(r["outcome"] != "passed" for r in app02.values()), summary(drill)
    others = {k: r for k, r in drill.records.items() if not k.startswith("app02::")}
    assert set(drill.records) == set(KEYS), summary(drill)
    assert all(r["outcome"] == "passed" for r in others.values()), summary(drill)
    lost = Expect(UNOBSERVED, unobserved(r"(timed out|no answer|connection|unusable)")
                  + "|cannot reach app02: .*")
    wrong = {k: lost.problem(r) for k, r in app02.items() if r["outcome"] != "passed"
             and lost.problem(r) is not None}
    assert wrong == {}, summary(drill)
    assert "Traceback" not in drill.output
    assert drill.wall < wall_bound(baseline.wall), summary(drill)


def _drill_cut_off_at_app02(lab: Lab, directory: Path) -> Drill:
    directory.mkdir()
    stage = Stage(directory)
    done = threading.Event()
    cut: list[contextlib.ExitStack] = []

    def cut_off(evidence: Path, child: subprocess.Popen[str]) -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and child.poll() is None:
            if any(key.startswith("app02::") for key in read_records(evidence)):
                stack = contextlib.ExitStack()
                stack.enter_context(faults.cut_off(lab, "app02", RUNNER))
                cut.append(stack)
                break
            time.sleep(0.02)
        done.set()

    stage.during.append(cut_off)
    try:
        drill = run_drill(stage)
    finally:
        done.wait(60)
        for stack in cut:
            stack.close()
    REPORT.append(f"== runner cut off mid-run\n{summary(drill)}")
    assert cut, "app02 was never cut off: " + summary(drill)
    assert lab.up().action == "already up"
    return drill


def test_sigkill_mid_run_leaves_a_red_junit(lab: Lab, baseline: Baseline, tmp_path: Path) -> None:
    """The drill is SIGKILLed after a tenth of its results: the bundle, finished by
    ``drcheck report``, lists every check; those that never ran are errors in its JUnit
    ("not run: the run was interrupted"), the counts are true, the verdict incomplete."""
    stage = Stage(tmp_path)
    killed: list[int] = []

    def kill(evidence: Path, child: subprocess.Popen[str]) -> None:
        if _wait_for_records(evidence, len(KEYS) // 10, child):
            os.killpg(child.pid, signal.SIGKILL)
            killed.append(records_written(evidence))

    stage.during.append(kill)
    drill = run_drill(stage)
    REPORT.append(f"== SIGKILL mid-run (after {killed} results)\n{summary(drill)}")
    assert killed and drill.returncode == -signal.SIGKILL, summary(drill)
    assert lab.up().action == "already up"
    report = subprocess.run([sys.executable, "-m", "pytest_drcheck.cli", "report",
                             str(drill.evidence)], capture_output=True, text=True,
                            timeout=120, check=False)
    assert "Traceback" not in report.stdout + report.stderr
    ran = set(read_records(drill.evidence))
    assert 0 < len(ran) < len(KEYS)
    root = ET.parse(drill.evidence / "junit.xml").getroot()
    cases = {f"{c.get('classname', '').rsplit('.', 1)[-1]}::{c.get('name')}": c
             for c in root.iter("testcase")}
    assert len(cases) == len(KEYS)
    not_run = [c for key, c in cases.items() if key not in ran]
    assert len(not_run) == len(KEYS) - len(ran)
    for case in not_run:
        error = case.find("error")
        assert error is not None and "not run: the run was interrupted" in (
            error.get("message") or ""), ET.tostring(case, encoding="unicode")
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    assert sum(int(s.get("tests", 0)) for s in suites) == len(KEYS)
    assert sum(int(s.get("errors", 0)) for s in suites) >= len(not_run)
    facts = json.loads((drill.evidence / "drill.json").read_text())
    assert facts["verdict"] == "incomplete"


def test_the_lab_is_green_after_the_matrix(lab: Lab, baseline: Baseline, tmp_path: Path) -> None:
    green = run_drill(Stage(tmp_path))
    REPORT.append(f"green after the matrix: {green.wall:.1f} s")
    assert (green.returncode, problems(green, {})) == (0, []), summary(green)
