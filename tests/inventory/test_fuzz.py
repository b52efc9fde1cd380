"""Property-based fuzzing of the loader (hypothesis): whatever the text, loading either gives a
plan or refuses with one line per problem, ``site.yaml:LINE: PLACE: PROBLEM; FIX``, in the file
the user wrote, in bounded CPU time and memory. No exception of any other kind escapes.

Cases are mutations of valid inventories (the lab's and the README's), at the level of the
document (a value replaced by a tricky one, a key removed or misspelt) and of the text (a line
dropped, doubled, re-indented, a value replaced by raw YAML such as ``4:00``, ``.inf``, an
anchor, an alias or a tag). The run is derandomized with a fixed number of examples, so CI sees
the same cases every run.
"""

from __future__ import annotations

import re
import time
import tracemalloc
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from pytest_drcheck.inventory import InventoryError, Plan, load_plan

REPO = Path(__file__).resolve().parents[2]
SEEDS = [(REPO / "inventories" / "lab.yaml").read_text(encoding="utf-8"), """\
version: 1
drill: {name: q3-dr-drill, rto: 4h, rpo: 15m}
defaults:
  timeout: 20s
  connection:
    type: ssh
    user: ec2-user
    identity_file: ~/.ssh/dr.pem
    known_hosts: ./known_hosts
    jump: bastion
    connect_timeout: 5s
    password: env:DR_SSH_PASSWORD
site:
  dns:
    resolvers: {onprem: 10.77.0.53}
    records:
      - {name: dc01.corp.example, values: [10.77.0.20]}
    absent: [legacy.corp.example]
  egress:
    proxies: {corp: "10.77.0.60:3128"}
    policy:
      - {destination: "http://www.example.com/", via: corp, expect: allowed}
groups:
  recovery: {suites: [hybrid-dns, egress-policy]}
hosts:
  bastion: {address: 203.0.113.10}
  app01:
    address: 10.77.0.11
    groups: [recovery]
    checks:
      reach:
        - {target: 10.77.0.20:636}
      nic:
        - {count: 2, mode: retain, addresses: [10.77.0.13/24], mtu: 1500}
      time:
        - {reference: "ntp:10.77.0.30", max_offset: 500ms}
waivers:
  - {id: RISK-1, host: app01, check: reach, justification: j, approved_by: a,
     expires: 2030-01-01}
"""]
EXAMPLES = 175  # per property; two properties: 350 inventories a run
# A refused case: its problems, each one line in the file the user wrote.
PROBLEM = re.compile(r"\Asite\.yaml:[1-9][0-9]*: [^ ].*?: .+(; .+|\(did you mean '.+'\?\))\Z")
CPU_SECONDS = 5.0
PEAK_BYTES = 300 * 1024 * 1024

RAW_VALUES = [
    "4:00", "1:30:00", ".inf", "-.inf", ".nan", "022", "0x1f", "0o17", "1_000", "1e999",
    "2024-05-01", "2025-13-01", "2024-05-01T10:00:00Z", "yes", "off", "~", "null", "''",
    '"\\ud800"', '"a\\0b"', '"app01\\n"', "!vault Hunter2", "!!timestamp soon",
    "!!bool perhaps", "!!binary aGVsbG8=", "!!set {a, b}", "!!omap [a: 1]", "!!python/name:os",
    "&anchor x", "*undefined", "[", "{", "}", "]", "'unclosed", '"unclosed', "- a", "a: b: c",
    "x; rm -rf /", "$(reboot)", "`id`", "a && b", "10.0.0.1:99999", "999.1.1.1", "[::1]:53",
    "http://h:99999/", "http://h:x/", "ntp:[fd00::1]:70000", "0", "-1", "514.0", "65536",
    "9999999999999999999999", "0.0000001", "1" + " " * 3000 + "x", "s" * 400, "\t", "é", "😀",
    "<<: {a: 1}", "? complex", "| \n  block", "> folded", "env:", "file:", "file:/dev/zero",
    "aws-ssm:/x", "true", "false", "1.5m", "0s", "9999h", "250ms", "{}", "[]",
]
KEYS = ["version", "drill", "name", "rto", "rpo", "defaults", "timeout", "connection", "jump",
        "password", "port", "address", "hosts", "groups", "suites", "checks", "site", "dns",
        "resolvers", "records", "egress", "proxies", "policy", "via", "destination", "reach",
        "target", "nic", "count", "mtu", "time", "max_offset", "reference", "logging",
        "collectors", "tcp", "agents", "backup", "waivers", "expires", "aws", "region", "drs",
        "source_server_id", "hostz", "adress", "<<", "", "a b", "app01\n", "x" * 300]

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(RAW_VALUES),
    st.text(max_size=40), st.dates().map(str))
values: st.SearchStrategy[Any] = st.recursive(
    scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                     st.dictionaries(st.sampled_from(KEYS), inner, max_size=4)),
    max_leaves=12)


def places(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(node, dict):
        for key, value in node.items():
            found += places(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += places(value, (*path, index))
    return found


def edit(document: Any, path: tuple[Any, ...], action: str, value: Any, key: str) -> Any:
    if not path:
        return value if action == "replace" else document
    parent = document
    for part in path[:-1]:
        parent = parent[part]
    last = path[-1]
    if action == "replace":
        parent[last] = value
    elif action == "delete":
        del parent[last]
    elif action == "rename" and isinstance(parent, dict):
        parent[key] = parent.pop(last)
    elif action == "add" and isinstance(parent[last], dict):
        parent[last][key] = value
    return document


def check_case(tmp_path: Path, text: str) -> None:
    path = tmp_path / "site.yaml"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    tracemalloc.reset_peak()
    started = time.process_time()
    try:
        outcome: Plan | InventoryError = load_plan(path, display_name="site.yaml")
    except InventoryError as exc:
        outcome = exc
    cpu = time.process_time() - started
    _, peak = tracemalloc.get_traced_memory()
    assert cpu < CPU_SECONDS, f"{cpu:.1f} s of CPU for:\n{text[:2000]}"
    assert peak < PEAK_BYTES, f"{peak / 2**20:.0f} MB peak for:\n{text[:2000]}"
    if isinstance(outcome, InventoryError):
        assert outcome.problems, text
        for problem in outcome.problems:
            line = str(problem)
            assert PROBLEM.match(line), f"{line!r} for:\n{text[:2000]}"
    else:
        # A plan is printable and serialisable as drcheck validate and the bundle need it.
        str(outcome.drill.name).encode("utf-8")


# No shrinking: a failure prints its case as generated, and the budget stays bounded.
FUZZ = settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
                phases=(Phase.explicit, Phase.generate),
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])


def setup_module() -> None:
    tracemalloc.start()


def teardown_module() -> None:
    tracemalloc.stop()


@FUZZ
@given(seed=st.sampled_from(SEEDS), data=st.data())
def test_document_mutations(tmp_path: Path, seed: str, data: st.DataObject) -> None:
    document = yaml.safe_load(seed)
    for _ in range(data.draw(st.integers(1, 3), label="edits")):
        path = data.draw(st.sampled_from(places(document)), label="path")
        action = data.draw(st.sampled_from(["replace", "delete", "rename", "add"]))
        document = edit(document, path, action, data.draw(values, label="value"),
                        data.draw(st.sampled_from(KEYS), label="key"))
    text = yaml.safe_dump(document, allow_unicode=True, sort_keys=False, width=1000)
    check_case(tmp_path, text)


@FUZZ
@given(seed=st.sampled_from(SEEDS), data=st.data())
def test_text_mutations(tmp_path: Path, seed: str, data: st.DataObject) -> None:
    lines = seed.splitlines()
    for _ in range(data.draw(st.integers(1, 4), label="edits")):
        index = data.draw(st.integers(0, len(lines) - 1), label="line")
        action = data.draw(st.sampled_from(
            ["value", "value", "value", "drop", "double", "indent", "dedent", "tab", "text",
             "colon", "document"]), label="action")
        line = lines[index]
        if action == "value" and ":" in line:
            head = line.split(":", 1)[0]
            lines[index] = f"{head}: {data.draw(st.sampled_from(RAW_VALUES), label='raw')}"
        elif action == "drop" and len(lines) > 1:
            del lines[index]
        elif action == "double":
            lines.insert(index, line)
        elif action == "indent":
            lines[index] = " " * data.draw(st.integers(1, 3)) + line
        elif action == "dedent":
            lines[index] = line[data.draw(st.integers(1, 3)):]
        elif action == "tab":
            lines[index] = "\t" + line.lstrip()
        elif action == "text":
            lines.insert(index, data.draw(st.text(max_size=30), label="text"))
        elif action == "colon":
            lines[index] = line.replace(": ", ":", 1)
        elif action == "document":
            lines.insert(index, "---")
        if not lines:
            lines = [""]
    check_case(tmp_path, "\n".join(lines) + "\n")
