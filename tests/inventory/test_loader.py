import gc
import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from pytest_drcheck.inventory import InventoryError, load_plan
from pytest_drcheck.inventory.schema import inventory_schema, suite_schema
from pytest_drcheck.model import thaw

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "site.yaml"
    path.write_text(text)
    return path


def test_lab_inventory_expands_to_sorted_stable_items() -> None:
    plan = load_plan(REPO / "inventories" / "lab.yaml")
    keys = [item.key for item in plan.items]
    assert keys == sorted(keys)
    assert "app01::dns[dc01.corp.example]" in keys
    assert "app01::dns[ntp01.corp.example@onprem]" in keys
    assert "app01::dns[_ldap._tcp.dc._msdcs.corp.example/SRV@onprem]" in keys
    assert "db01::reach[10.77.0.11:3306]" in keys
    item = next(i for i in plan.items if i.key == "app02::dns[legacy.corp.example]")
    assert item.params["absent"] is True
    assert item.source.file.endswith("suites/hybrid-dns.yaml")
    assert plan.hosts["db01"].connection.known_hosts == "/var/tmp/drcheck-lab/ssh/known_hosts"
    assert len(plan.sha256) == 64


def test_host_checks_override_group_and_suite_entries(tmp_path: Path) -> None:
    plan = load_plan(write(tmp_path, """\
version: 1
drill: {name: t}
defaults: {timeout: 7s, connection: {user: dr, connect_timeout: 2}}
groups:
  web:
    connection: {user: web}
    checks:
      reach: [{target: "db:5432"}]
hosts:
  app01:
    address: 10.0.0.1
    groups: [web]
    connection: {port: 2222}
    checks:
      reach: [{target: "db:5432", expect: closed, timeout: 1m}]
"""))
    (item,) = plan.items
    assert item.params["expect"] == "closed" and item.timeout == 60.0
    connection = plan.hosts["app01"].connection
    assert (connection.user, connection.port, connection.connect_timeout) == ("web", 2222, 2.0)


def test_plan_is_immutable(tmp_path: Path) -> None:
    plan = load_plan(REPO / "inventories" / "lab.yaml")
    with pytest.raises(TypeError):
        plan.items[0].params["name"] = "x"  # type: ignore[index]


def test_secret_reference_kept_as_reference(tmp_path: Path) -> None:
    plan = load_plan(write(tmp_path, """\
version: 1
drill: {name: t}
hosts:
  app01: {address: 10.0.0.1, connection: {password: "env:DR_PW"}}
"""))
    password = plan.hosts["app01"].connection.password
    assert password is not None and str(password) == "env:DR_PW"
    assert "DR_PW" in repr(password)


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    with pytest.raises(InventoryError) as info:
        load_plan(write(tmp_path, """\
version: 1
drill: {name: t}
hosts:
  app01: {address: 10.0.0.1, groups: [a, b]}
"""))
    assert [p.place for p in info.value.problems] == ["hosts.app01.groups[0]",
                                                      "hosts.app01.groups[1]"]


def test_schemas_are_valid_json_schema() -> None:
    Draft202012Validator.check_schema(inventory_schema())
    Draft202012Validator.check_schema(suite_schema())


def test_jump_host_does_not_inherit_its_own_jump_and_null_opts_out(tmp_path: Path) -> None:
    plan = load_plan(write(tmp_path, """\
version: 1
drill: {name: t}
defaults: {connection: {jump: bastion}}
groups:
  direct: {connection: {jump: null}}
hosts:
  bastion: {address: 203.0.113.10}
  app01: {address: 10.0.0.1}
  app02: {address: 10.0.0.2, groups: [direct]}
  db01: {address: 10.0.0.3, groups: [direct], connection: {jump: app01}}
"""))
    jumps = {name: host.connection.jump for name, host in plan.hosts.items()}
    assert jumps == {"bastion": None, "app01": "bastion", "app02": None, "db01": "app01"}


def test_a_host_naming_itself_as_jump_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InventoryError) as caught:
        load_plan(write(tmp_path, "version: 1\ndrill: {name: t}\nhosts:\n"
                                  "  a: {address: 10.0.0.1, connection: {jump: a}}\n"))
    assert str(caught.value).endswith("site.yaml:4: hosts.a.connection.jump: a host cannot be "
                                      "its own jump host; remove jump here or set jump: null")


def test_date_looking_text_stays_text(tmp_path: Path) -> None:
    """YAML reads 2024-05-01 as a date; a drill named so broke drill.json (date is not JSON
    serializable). Waivers still read their expiry date."""
    plan = load_plan(write(tmp_path, """\
version: 1
drill: {name: 2024-05-01, description: 2024-05-01T10:00:00Z}
hosts:
  app01: {address: 10.0.0.1, attributes: {since: 2020-01-01}}
waivers:
  - {host: app01, justification: j, approved_by: a, expires: 2030-01-31}
"""))
    assert plan.drill.name == "2024-05-01"
    assert json.loads(json.dumps(thaw(plan.document)))["hosts"]["app01"]["attributes"] == {
        "since": "2020-01-01"}
    assert str(plan.waivers[0].expires) == "2030-01-31"


def test_a_site_record_listed_twice_is_reported_in_the_site_section(tmp_path: Path) -> None:
    """Found by the fuzz test: it was reported at a line of the shipped hybrid-dns suite."""
    with pytest.raises(InventoryError) as caught:
        load_plan(write(tmp_path, """\
version: 1
drill: {name: t}
site:
  dns:
    resolvers: {onprem: 10.77.0.53}
    records:
      - {name: dc01.corp.example, values: [10.77.0.20]}
      - {name: dc01.corp.example, values: [10.77.0.20]}
hosts:
  app01: {address: 10.0.0.1, suites: [hybrid-dns]}
"""), display_name="site.yaml")
    assert str(caught.value) == ("site.yaml:4: site.dns: dns 'dc01.corp.example' is listed twice "
                                 "in site.dns; remove one of them")


def test_a_precondition_two_entries_share_is_one_test(tmp_path: Path) -> None:
    """nic entries (from a suite and from the host, say) each bring nic[interfaces]: the same
    test, run once; a real duplicate (same subject, other parameters) is still refused."""
    plan = load_plan(write(tmp_path, """\
version: 1
drill: {name: t}
hosts:
  app01:
    address: 10.0.0.1
    checks:
      nic: [{count: 2}, {mtu: 1500}]
"""))
    keys = [item.key for item in plan.items]
    assert keys == ["app01::nic[count]", "app01::nic[interfaces]", "app01::nic[mtu]"]
    with pytest.raises(InventoryError, match=r"nic 'count' is already checked by "):
        load_plan(write(tmp_path, """\
version: 1
drill: {name: t}
hosts:
  app01:
    address: 10.0.0.1
    checks:
      nic: [{count: 2}, {count: 3}]
"""))


def test_loading_leaves_the_garbage_collector_as_it_was(tmp_path: Path) -> None:
    """Loading turns the cyclic collector off for its own allocations only (and never turns
    on a collector the caller had turned off), whether it loads or refuses."""
    good = tmp_path / "good.yaml"
    good.write_text("version: 1\ndrill: {name: t}\nhosts:\n  app01:\n    address: 10.0.0.1\n"
                    "    checks: {reach: [{target: '10.0.0.2:22'}]}\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\ndrill: {name: t}\nhosts: {app01: {adress: 10.0.0.1}}\n")
    was = gc.isenabled()
    try:
        for enabled in (True, False):
            (gc.enable if enabled else gc.disable)()
            assert len(load_plan(good).items) == 1
            assert gc.isenabled() is enabled
            with pytest.raises(InventoryError, match="unknown key 'adress'"):
                load_plan(bad)
            assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()
