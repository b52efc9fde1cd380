"""The shipped suites replication-path and failback-path applied to source hosts: what they
expand to from site.replication, and each mistake as one inventory error where it is fixed."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_drcheck.inventory import InventoryError, load_plan

REPO = Path(__file__).resolve().parents[2]
SITE = """\
site:
  egress: {proxies: {corp: "10.77.0.60:3128"}}
  replication: {region: eu-west-1, via: corp, staging: [10.78.0.80, 10.78.0.81]}
"""
HOSTS = """\
hosts:
  src01: {address: 10.77.0.71, suites: [replication-path, failback-path]}
  app01: {address: 10.77.0.11, source: src01}
"""


def load(tmp_path: Path, site: str = SITE, hosts: str = HOSTS) -> list[str]:
    path = tmp_path / "site.yaml"
    path.write_text(f"version: 1\ndrill: {{name: d}}\n{site}{hosts}")
    return [item.key for item in load_plan(path).items]


def problems(tmp_path: Path, site: str = SITE, hosts: str = HOSTS) -> str:
    with pytest.raises(InventoryError) as caught:
        load(tmp_path, site, hosts)
    return str(caught.value)


def test_both_suites_on_a_source_host(tmp_path: Path) -> None:
    # The DRS endpoint is in both suites: one check of it on the host.
    assert load(tmp_path) == [
        "src01::egress[DRS endpoint drs.eu-west-1.amazonaws.com:443 via corp]",
        "src01::reach[recovery instance app01 10.77.0.11:1500]",
        "src01::reach[staging 10.78.0.80:1500]",
        "src01::reach[staging 10.78.0.81:1500]",
    ]


def test_the_lab_inventory_applies_them_to_src01() -> None:
    keys = {item.key for item in load_plan(REPO / "inventories" / "lab.yaml").items}
    assert {key for key in keys if key.startswith("src01::") and "replication[" not in key} == {
        "src01::egress[DRS endpoint drs.us-east-1.amazonaws.com:443 via corp]",
        "src01::reach[recovery instance app01 10.77.0.11:1500]",
        "src01::reach[staging 10.78.0.80:1500]",
    }


def test_a_site_without_replication_names_the_missing_key(tmp_path: Path) -> None:
    text = problems(tmp_path, site="")
    assert "Traceback" not in text
    # Reported where the inventory applies the shipped suite, once per entry needing it.
    assert "site.yaml:4: hosts.src01.suites[0]: missing site.replication, which the " \
           "replication-path and failback-path suites derive their destinations from; add " \
           "site.replication with region (and staging, via) (in the shipped suite's " \
           "checks.egress[0])" in text
    assert "hosts.src01.suites[1]: missing site.replication" in text


def test_an_unknown_proxy_is_reported_at_site_replication_via(tmp_path: Path) -> None:
    text = problems(tmp_path, site=SITE.replace("via: corp", "via: dmz"))
    assert "site.yaml:5: site.replication.via: proxy 'dmz' is not in site.egress.proxies " \
           "(corp); define it there or leave via out for a direct path" in text


def test_a_schema_mistake_in_site_replication(tmp_path: Path) -> None:
    text = problems(tmp_path, site=SITE.replace("eu-west-1", "Ireland"))
    assert "site.replication.region" in text and "an AWS region name" in text


def test_failback_on_a_host_that_is_not_a_source(tmp_path: Path) -> None:
    text = problems(tmp_path, hosts="""\
hosts:
  src01: {address: 10.77.0.71, suites: [replication-path]}
  app02: {address: 10.77.0.12, suites: [failback-path]}
""")
    assert text.count("\n") == 0, text
    assert text.endswith("hosts.app02.suites[0]: app02 is not a source server: no host names "
                         "it as source:, so there is no recovery instance to fail back from; "
                         "apply failback-path to source hosts only (or add source: app02 to its "
                         "recovery instance) (in the shipped suite's checks.reach[0])"), text


def test_a_recovery_instance_without_an_address(tmp_path: Path) -> None:
    text = problems(tmp_path, hosts=HOSTS.replace(
        "app01: {address: 10.77.0.11, source: src01}",
        "app01: {source: src01, connection: {type: local}}"))
    assert "recovery instance app01 (source: src01) has no address in the inventory to " \
           "dial" in text
