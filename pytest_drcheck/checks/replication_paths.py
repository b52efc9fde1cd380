"""The replication and failback paths of a source server, described once in ``site.replication``.

The shipped suites ``replication-path`` and ``failback-path`` are observed from each source
server's own position with the existing families: ``egress`` (the DRS regional endpoint on 443,
through the proxy the replication agent uses or direct) and ``reach`` (the staging area's
replication servers, and the recovery instance for failback, on TCP 1500). Their entries name
which path they are (``replication: endpoint``, ``staging``, ``recovery-instance``); this
module turns the site's facts into destinations, so that a suite holds no address.

    site:
      replication:
        region: us-east-1             # drs.us-east-1.amazonaws.com:443
        endpoint: drs.example:443     # optional override (a VPC endpoint, a FIPS name)
        via: corp                     # a proxy of site.egress.proxies; omitted: direct
        staging: [10.78.0.80]         # replication servers (host or host:port)
        port: 1500                    # optional: the replication port (staging, failback)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pytest_drcheck.checks.base import ExpansionError
from pytest_drcheck.checks.tcp_probe import parse_endpoint
from pytest_drcheck.inventory import vocabulary

# The port DRS's replication servers (staging, and the recovery instance during failback)
# receive replication on.
REPLICATION_PORT = 1500
HTTPS_PORT = 443
SUITES = "the replication-path and failback-path suites"
# AWS partitions by region prefix, longest first, and their DNS suffix (botocore's
# endpoints.json "partitions": dnsSuffix and regionRegex).
_PARTITION_SUFFIXES: tuple[tuple[str, str], ...] = (
    ("us-isob-", "sc2s.sgov.gov"),
    ("us-isof-", "csp.hci.ic.gov"),
    ("eu-isoe-", "cloud.adc-e.uk"),
    ("us-iso-", "c2s.ic.gov"),
    ("cn-", "amazonaws.com.cn"),
)
DEFAULT_SUFFIX = "amazonaws.com"

REGION: dict[str, Any] = {
    "type": "string", "pattern": r"\A[a-z]{2}(?:-[a-z]{1,12}){1,3}-[0-9]{1,2}\Z",
    "x-expect": "an AWS region name, e.g. us-east-1 or eu-west-2",
}
STAGING_SERVER: dict[str, Any] = {
    "anyOf": [vocabulary.HOST_ADDRESS, vocabulary.ENDPOINT],
    "x-expect": "a replication server's address (10.78.0.80) or host:port",
}
SITE_SCHEMA: dict[str, Any] = {
    "type": "object", "additionalProperties": False,
    "required": ["region"],
    "properties": {
        "region": REGION,
        "endpoint": {"anyOf": [vocabulary.ENDPOINT, vocabulary.HOST_ADDRESS],
                     "x-expect": "the DRS endpoint's host or host:port (default "
                                 "drs.<region>.amazonaws.com:443)"},
        "via": vocabulary.NAME,
        "staging": {"type": "array", "items": STAGING_SERVER, "minItems": 1},
        "port": vocabulary.PORT,
    },
}


def section(site: Mapping[str, Any], key: str | None = None) -> Mapping[str, Any]:
    """``site.replication`` (and its ``key``), or the entry's mistake naming what is missing."""
    replication: Mapping[str, Any] | None = site.get("replication")
    if replication is None:
        raise ExpansionError(f"missing site.replication, which {SUITES} derive their "
                             "destinations from; add site.replication with region (and "
                             "staging, via)")
    if key is not None and key not in replication:
        raise ExpansionError(f"missing site.replication.{key}; add it (the replication "
                             "servers' addresses)", "", ("replication",))
    return replication


def drs_host(region: str) -> str:
    """DRS's regional endpoint host, as the replication agent dials it."""
    suffix = next((suffix for prefix, suffix in _PARTITION_SUFFIXES
                   if region.startswith(prefix)), DEFAULT_SUFFIX)
    return f"drs.{region}.{suffix}"


def endpoint(site: Mapping[str, Any]) -> tuple[str, int]:
    """(host, port) of the DRS endpoint: the override, else the region's."""
    replication = section(site)
    override = replication.get("endpoint")
    if override is None:
        return drs_host(replication["region"]), HTTPS_PORT
    parsed = parse_endpoint(override)
    return parsed if parsed is not None else (override, HTTPS_PORT)


def replication_port(site: Mapping[str, Any]) -> int:
    return int(section(site).get("port", REPLICATION_PORT))


def staging(site: Mapping[str, Any]) -> list[tuple[str, int]]:
    """The staging area's replication servers, each (host, port)."""
    replication = section(site, "staging")
    port = replication_port(site)
    servers: list[tuple[str, int]] = []
    for text in replication["staging"]:
        parsed = parse_endpoint(text)
        servers.append(parsed if parsed is not None else (text, port))
    return servers


def recovery_instances(host_context: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """(name, address) of the recovery instances whose ``source:`` is this host; an inventory
    mistake if there is none, or one has no address to dial."""
    context = host_context or {}
    recovered: Sequence[Sequence[Any]] = context.get("recovered_by") or ()
    host = context.get("host", "this host")
    if not recovered:
        raise ExpansionError(f"{host} is not a source server: no host names it as source:, so "
                             "there is no recovery instance to fail back from; apply "
                             "failback-path to source hosts only (or add source: " f"{host} to "
                             "its recovery instance)")
    instances: list[tuple[str, str]] = []
    for name, address in recovered:
        if not address:
            raise ExpansionError(f"recovery instance {name} (source: {host}) has no address "
                                 "in the inventory to dial; add its address:, or check the "
                                 "path with reach: {target: <address>:1500}")
        instances.append((str(name), str(address)))
    return instances


def format_endpoint(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
