"""An indexed ssh_config answers every lookup as paramiko does reading the whole file, while
reading only the blocks that can apply to the host."""

from __future__ import annotations

import paramiko
import pytest

from pytest_drcheck.targets.ssh.config_index import INDEX_FROM_BLOCKS, IndexedConfig

CONFIG = "".join([
    "User everyone\n",
    "IdentityFile ~/.ssh/global\n",
    "Host bastion-*\n  User jump\n  Port 2200\n",
    "Host !app2 app*\n  IdentityFile ~/.ssh/apps\n",
    *(f"Host app{i} app{i}.corp\n  HostName 10.1.0.{i}\n  IdentityFile ~/.ssh/app{i}\n"
      for i in range(1, 41)),
    "Match host app3\n  Port 2203\n",
    "Host app1\n  HostName ignored-second-value\n  User second\n",
    "Host \"db 1\" app4\n  User dba\n",
    "Host *\n  Port 22\n  User last\n",
])
HOSTS = ["app1", "app2", "app3", "app4", "app40", "app1.corp", "app41", "bastion-eu",
         "db 1", "APP1", "other"]


@pytest.mark.parametrize("host", HOSTS)
def test_a_lookup_equals_paramikos_reading_of_the_whole_file(host: str) -> None:
    indexed = IndexedConfig(CONFIG)
    assert indexed.indexed
    assert indexed.lookup(host) == dict(paramiko.SSHConfig.from_text(CONFIG).lookup(host))


def test_only_the_blocks_that_can_apply_are_read() -> None:
    indexed = IndexedConfig(CONFIG)
    read = [indexed.blocks[i].splitlines()[0] for i in indexed.blocks_for("app7")]
    assert read == ["User everyone", "Host bastion-*", "Host !app2 app*", "Host app7 app7.corp",
                    "Match host app3", "Host *"]


def test_a_small_file_or_one_that_canonicalizes_is_read_whole() -> None:
    small = IndexedConfig("Host a\n  User x\n")
    assert not small.indexed and small.blocks_for("b") == [0, 1]
    canonical = IndexedConfig("CanonicalizeHostname yes\n" + "".join(
        f"Host h{i}\n  Port {1000 + i}\n" for i in range(INDEX_FROM_BLOCKS)))
    # (not looked up: canonicalization resolves names with this machine's resolver)
    assert not canonical.indexed
    assert canonical.blocks_for("h3") == list(range(INDEX_FROM_BLOCKS + 1))
