"""``source:`` on a host: the protected server, named or with a connection of its own, read-only."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_drcheck.inventory import InventoryError, load_plan
from pytest_drcheck.targets.factory import TargetFactory
from pytest_drcheck.targets.readonly import ReadOnlyTarget


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "site.yaml"
    path.write_text(text)
    return path


def test_a_named_source_is_marked_read_only(tmp_path: Path) -> None:
    plan = load_plan(write(tmp_path, """
version: 1
drill: {name: d}
hosts:
  app01: {address: 10.0.0.1, source: app01-src}
  app01-src: {address: 192.0.2.1, connection: {user: reader}}
"""))
    assert plan.hosts["app01"].source == "app01-src"
    assert plan.hosts["app01-src"].read_only is True
    assert plan.hosts["app01"].read_only is False
    assert plan.hosts["app01-src"].connection.user == "reader"


def test_a_source_with_its_own_connection_becomes_a_read_only_host(tmp_path: Path) -> None:
    plan = load_plan(write(tmp_path, """
version: 1
drill: {name: d}
defaults: {connection: {user: ops, port: 2222}}
hosts:
  app01:
    address: 10.0.0.1
    source: {address: 192.0.2.7, connection: {user: reader}}
"""))
    source = plan.hosts["app01.source"]
    assert plan.hosts["app01"].source == "app01.source"
    assert (source.address, source.read_only) == ("192.0.2.7", True)
    # Defaults apply under the source's own connection, key by key.
    assert (source.connection.user, source.connection.port) == ("reader", 2222)
    assert not plan.items_of("app01.source")


@pytest.mark.parametrize(("source", "message"), [
    ("app02", "source 'app02' is not a host of this inventory (did you mean 'app01'?)"),
    ("app01", "a host cannot be its own source"),
])
def test_a_source_that_is_not_a_host_is_refused(tmp_path: Path, source: str,
                                                message: str) -> None:
    with pytest.raises(InventoryError) as caught:
        load_plan(write(tmp_path, f"""
version: 1
drill: {{name: d}}
hosts:
  app01: {{address: 10.0.0.1, source: {source}}}
"""))
    assert str(caught.value).endswith(f"hosts.app01.source: {message}; name another host or "
                                      "write {address, connection}")


def test_a_check_that_would_run_commands_on_a_source_is_refused_at_load(tmp_path: Path
                                                                       ) -> None:
    with pytest.raises(InventoryError) as caught:
        load_plan(write(tmp_path, """
version: 1
drill: {name: d}
hosts:
  app01: {address: 10.0.0.1, source: src}
  src:
    address: 192.0.2.1
    checks:
      agent: [{name: sshd, process: sshd}]
      reach: [{target: 192.0.2.9:443}]
"""))
    lines = str(caught.value).splitlines()
    assert len(lines) == 1  # reach only opens a stream from the source: allowed
    assert "hosts.src.checks.agent[0]: src is a source server (read-only) and agent" in lines[0]


def test_the_factory_wraps_a_source_in_the_read_only_target(tmp_path: Path) -> None:
    plan = load_plan(write(tmp_path, """
version: 1
drill: {name: d}
hosts:
  app01: {address: 10.0.0.1, source: src}
  src: {connection: {type: local}}
"""))

    def no_other(name: str) -> ReadOnlyTarget:
        raise KeyError(name)

    factory = TargetFactory()
    assert isinstance(factory(plan.hosts["src"], no_other), ReadOnlyTarget)
    assert not isinstance(factory(plan.hosts["app01"], no_other), ReadOnlyTarget)
