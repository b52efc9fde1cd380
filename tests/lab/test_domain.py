"""domain against a real member: db01 joined to the lab's Samba AD with winbind.

The shipped lab drill's domain checks are green; each breaker a restored, domain-joined server
meets fails exactly its properties with its one-line reason (dependents skipped), and every
other check of db01 stays as it was.
"""

from __future__ import annotations

import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import paramiko
import pytest

from pytest_drcheck.lab import Lab
from pytest_drcheck.lab.faults import domain as faults

pytestmark = pytest.mark.lab
REPO = Path(__file__).resolve().parents[2]
DOMAIN_TESTS = ("domain[ad/joined]", "domain[ad/dc]", "domain[ad/secure-channel]",
                "domain[ad/kerberos]", "domain[ad/user/drcheck]",
                "domain[ad/group/Domain Users]")


def db01_verdicts(tmp_path: Path) -> dict[str, str]:
    """db01's tests in the shipped lab drill: 'check[subject]' -> 'passed' or
    '<outcome>: <one-line message>'."""
    xml = tmp_path / "db01.xml"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--dr-inventory=inventories/lab.yaml", "-k", "db01",
         f"--junitxml={xml}", "-q", "-p", "no:cacheprovider"],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert xml.exists(), done.stdout[-2000:] + done.stderr[-2000:]
    shown: dict[str, str] = {}
    for case in ET.parse(xml).getroot().iter("testcase"):
        props = {p.get("name"): p.get("value") or "" for p in case.iter("property")}
        if props.get("dr.host") != "db01":
            continue
        key = f"{props['dr.check']}[{props['dr.subject']}]"
        outcome = props["dr.outcome"]
        if outcome == "passed":
            shown[key] = "passed"
            continue
        element = next((e for e in case if e.tag in ("failure", "error", "skipped")), None)
        message = (element.get("message") or "") if element is not None else ""
        shown[key] = f"{outcome}: {message.splitlines()[0] if message else ''}"
    return shown


@pytest.fixture(scope="module")
def healthy(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    # An earlier test may have stopped the DC: winbindd then stays offline for a while.
    faults.wait_until_member_works(lab, "db01")
    return db01_verdicts(tmp_path_factory.mktemp("healthy"))


def test_the_joined_member_is_green(healthy: dict[str, str]) -> None:
    assert {key: healthy.get(key) for key in DOMAIN_TESTS} == dict.fromkeys(DOMAIN_TESTS,
                                                                            "passed")
    assert all(verdict == "passed" for verdict in healthy.values()), healthy


def broken(lab: Lab, tmp_path: Path, fault: AbstractContextManager[None],
           healthy: dict[str, str]) -> dict[str, str]:
    """db01's verdicts under ``fault``, only those that differ from the healthy drill."""
    with fault:
        seen = db01_verdicts(tmp_path)
    assert set(seen) == set(healthy)
    return {key: verdict for key, verdict in seen.items() if verdict != healthy[key]}


def skipped_for(subject: str, required: str) -> str:
    return f"skipped: db01 domain ad/{subject}: skipped: domain[ad/{required}] did not pass ("


def test_machine_password_reset_on_the_dc_breaks_channel_and_ticket(
        lab: Lab, tmp_path: Path, healthy: dict[str, str]) -> None:
    changed = broken(lab, tmp_path, faults.machine_password_reset(lab), healthy)
    assert set(changed) == {"domain[ad/secure-channel]", "domain[ad/kerberos]",
                            "domain[ad/user/drcheck]", "domain[ad/group/Domain Users]"}
    assert changed["domain[ad/secure-channel]"] == (
        "failed: db01 domain ad/secure-channel: secure channel broken (net ads testjoin: "
        "kerberos_kinit_password DB01$@AD.CORP.EXAMPLE failed: Preauthentication failed; "
        "Join to domain is not valid: LDAP_INVALID_CREDENTIALS)")
    assert changed["domain[ad/kerberos]"] == (
        "failed: db01 domain ad/kerberos: expected a machine ticket from AD.CORP.EXAMPLE, "
        "kinit -k DB01$@AD.CORP.EXAMPLE failed: kinit: Preauthentication failed while "
        "getting initial credentials")
    for account in ("user/drcheck", "group/Domain Users"):
        assert changed[f"domain[ad/{account}]"].startswith(
            skipped_for(account, "secure-channel"))


def test_removed_keytab_breaks_only_the_machine_ticket(
        lab: Lab, tmp_path: Path, healthy: dict[str, str]) -> None:
    changed = broken(lab, tmp_path, faults.keytab_removed(lab), healthy)
    assert changed == {"domain[ad/kerberos]": (
        "failed: db01 domain ad/kerberos: expected a machine ticket from AD.CORP.EXAMPLE, no "
        "machine key in FILE:/etc/krb5.keytab: klist: Key table file '/etc/krb5.keytab' not "
        "found while starting keytab scan")}


def test_unreachable_dc_fails_the_dc_once_and_skips_what_needs_it(
        lab: Lab, tmp_path: Path, healthy: dict[str, str]) -> None:
    changed = broken(lab, tmp_path, faults.dc_unreachable(lab), healthy)
    # The DC is unreachable for everything on db01: its LDAP binds to dc02 fail too, truly.
    others = {key: verdict for key, verdict in changed.items() if not key.startswith("domain[")}
    assert all(key.startswith("ldap[dc02.ad.corp.example/") for key in others), others
    assert set(changed) - set(others) == {
        "domain[ad/dc]", "domain[ad/secure-channel]", "domain[ad/kerberos]",
        "domain[ad/user/drcheck]", "domain[ad/group/Domain Users]"}
    assert changed["domain[ad/dc]"].startswith(
        "failed: db01 domain ad/dc: expected a DC among dc02.ad.corp.example, no DC located "
        "(wbinfo --ping-dc: ")
    for name in ("secure-channel", "kerberos"):
        assert changed[f"domain[ad/{name}]"].startswith(skipped_for(name, "dc")), changed
    for account in ("user/drcheck", "group/Domain Users"):
        assert f"ad/{account}: skipped: domain[ad/" in changed[f"domain[ad/{account}]"], changed


def test_clock_skew_past_five_minutes_breaks_the_machine_ticket(
        lab: Lab, tmp_path: Path, healthy: dict[str, str]) -> None:
    changed = broken(lab, tmp_path, faults.clock_skewed(lab), healthy)
    assert changed.pop("domain[ad/kerberos]") == (
        "failed: db01 domain ad/kerberos: expected a machine ticket from AD.CORP.EXAMPLE, "
        "kinit -k DB01$@AD.CORP.EXAMPLE failed: kinit: Clock skew too great while getting "
        "initial credentials")
    # The skew itself is what the time family measures: its failures are the same truth.
    assert all(key.startswith("time[") for key in changed), changed


def in_session(lab: Lab, host: str, command: str) -> str:
    """``command``'s stdout in an SSH session on ``host``, as the drill's commands run."""
    client = paramiko.SSHClient()
    client.load_host_keys(str(lab.known_hosts))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        client.connect(lab.address(host), username="root", key_filename=str(lab.client_key),
                       look_for_keys=False, allow_agent=False, timeout=30, banner_timeout=30,
                       auth_timeout=30)
        _, stdout, stderr = client.exec_command(command, timeout=30)
        out, err = stdout.read().decode(), stderr.read().decode()
        assert stdout.channel.recv_exit_status() == 0, err
        return out.strip()
    finally:
        client.close()


def faketime_objects(lab: Lab, host: str) -> set[str]:
    done = lab.exec(host, ["ls", "/dev/shm"])
    assert done.returncode == 0, done.stderr
    return {name for name in done.stdout.split() if "faketime" in name}


def test_a_skewed_session_keeps_libfaketime_state_when_its_subshells_end(lab: Lab) -> None:
    # The drill's resolver helper runs each lookup in a subshell: when one ended, libfaketime
    # in it unlinked the session's state, and programs started later (getent, base64) could
    # die of libfaketime before main ("sem_open failed and recreation attempts failed"), seen
    # by the drill as a name that does not resolve.
    with faults.clock_skewed(lab):
        before = time.time()
        said = in_session(lab, "db01", (
            '(true); (true); s=${FAKETIME_SHARED%% *}; '
            'if [ -e "/dev/shm/sem.${s#/}" ]; then echo kept; else echo "gone: $s"; fi; '
            "date +%s"))
        after = time.time()
    kept, clock = said.splitlines()
    assert kept == "kept"
    # The skew itself still holds for the programs the session starts (date's whole seconds:
    # one either side).
    skew = faults.DEFAULT_SKEW_SECONDS
    assert before + skew - 1 <= int(clock) <= after + skew + 1


def test_skewed_sessions_leave_nothing_behind_in_dev_shm(lab: Lab) -> None:
    # Each session shell under libfaketime made a state of its own, and one that exec'd never
    # removed it: /dev/shm filled with PID-named states that later processes on the host,
    # reusing those PIDs, collided with.
    before = faketime_objects(lab, "db01")
    with faults.clock_skewed(lab):
        for _ in range(3):
            assert in_session(lab, "db01", "exec date +%Y")
    assert faketime_objects(lab, "db01") - before == set()


@pytest.fixture(autouse=True)
def member_recovered(lab: Lab) -> Iterator[None]:
    """Each test leaves the member as it found it (the faults undo themselves and wait)."""
    yield
    faults.wait_until_member_works(lab, "db01")
