"""Ways to break the sandbox on purpose: each is a context manager that undoes itself.

Tests use them directly (``with faults.stopped(lab, "dns01", "dnsmasq"): ...``) or through the
``Lab`` methods of the same names. While a fault is in force it is recorded in the lab's state
(``drcheck lab status`` shows it; ``up`` rebuilds a lab whose fault outlived its process).
"""

from pytest_drcheck.lab.faults.base import in_force, nft, nft_table
from pytest_drcheck.lab.faults.credentials import wrong_secret
from pytest_drcheck.lab.faults.daemons import dns_record, rotated_host_key, stopped
from pytest_drcheck.lab.faults.directory import untrusted_certificate
from pytest_drcheck.lab.faults.logs import discarding
from pytest_drcheck.lab.faults.network import (
    accepting_and_closing,
    cut_off,
    firewall,
    hosts_entry,
    isolate,
)
from pytest_drcheck.lab.faults.posture import direct_path, extra_address, nic_missing, proxy_allows
from pytest_drcheck.lab.faults.replication import (
    failback_blocked,
    proxy_denies,
    staging_down,
    stalled_replication,
)
from pytest_drcheck.lab.faults.timesync import skewed_source

__all__ = [
    "accepting_and_closing", "cut_off", "direct_path", "discarding", "dns_record", "extra_address",
    "failback_blocked", "firewall", "hosts_entry", "in_force", "isolate", "nft", "nft_table",
    "nic_missing", "proxy_allows", "proxy_denies", "rotated_host_key", "skewed_source",
    "staging_down", "stalled_replication", "stopped", "untrusted_certificate", "wrong_secret",
]
