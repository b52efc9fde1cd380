"""The sandbox DR site itself: its networks, hosts and what runs on each (the one ``LAB``).

The types it is made of live in ``topology.py``; everything else (namespace, bridge and veth
names, /etc/netns files, the DNS data) is derived from ``LAB``. A new host is one
``Host(...)`` line; a new daemon is a module in ``components/`` and an instance of it here.
"""

from __future__ import annotations

from pytest_drcheck.lab.components.bacula import BaculaFd, BaculaSd
from pytest_drcheck.lab.components.base import Component
from pytest_drcheck.lab.components.clamav import Clamd
from pytest_drcheck.lab.components.dns import Dnsmasq, Srv, Unbound, Zone
from pytest_drcheck.lab.components.domain_member import WinbindMember
from pytest_drcheck.lab.components.ldap import Slapd
from pytest_drcheck.lab.components.ntp import Chronyd, SkewedNtp
from pytest_drcheck.lab.components.proxy import Squid
from pytest_drcheck.lab.components.replication import ReplicationSimulator, SourceLoad
from pytest_drcheck.lab.components.replication_server import ReplicationServer
from pytest_drcheck.lab.components.samba import SambaDc
from pytest_drcheck.lab.components.sshd import Sshd
from pytest_drcheck.lab.components.syslog import RsyslogCollector, SignatureMirror
from pytest_drcheck.lab.components.web import WebServer
from pytest_drcheck.lab.topology import PREFIX, Host, Network, Nic, Topology

LAN = Network(f"{PREFIX}0", "10.77.0.0/24", gateway="10.77.0.1")
BACKEND = Network(f"{PREFIX}1", "10.78.0.0/24", gateway="10.78.0.1")
# The "fake internet": no gateway, so neither the root namespace nor any instance can reach it;
# only proxy01 has a NIC on it.
INTERNET = Network(f"{PREFIX}2", "10.99.0.0/24", gateway=None)

CORP = Zone(
    domain="corp.example",
    addresses=(
        ("app01", "10.77.0.11"), ("app02", "10.77.0.12"), ("db01", "10.77.0.13"),
        ("dns01", "10.77.0.53"), ("dc01", "10.77.0.20"), ("dc02", "10.77.0.21"),
        ("ntp01", "10.77.0.30"), ("logs01", "10.77.0.40"), ("backup01", "10.77.0.41"),
        ("proxy01", "10.77.0.60"),
    ),
    cnames=(("files", "app02"),),
    srv=(Srv("_ldap._tcp.dc._msdcs.corp.example", "dc01.corp.example", 389, 0, 100),),
)

# Directory and time (issue 3): the recovery instances are known to both directories, and
# follow ntp01 with chrony. The AD zone lives in Samba's DNS; dns01 forwards it there.
INSTANCES = ("app01", "app02", "db01")
AD_REALM = "AD.CORP.EXAMPLE"
TIME_CLIENT = Chronyd(servers=("10.77.0.30",))

DRS_ENDPOINT = "drs.us-east-1.amazonaws.com"
INTERNET_NAMES = (
    ("www.example.com", "10.99.0.80"),
    ("repo.example.net", "10.99.0.81"),
    # Served by the same web server: only the proxy's allow-list keeps it out.
    ("blocked.example.org", "10.99.0.80"),
    # DRS's regional endpoint (site.replication in inventories/lab.yaml): a lab web server
    # behind the proxy. unbound never recurses, so the name resolves to nothing else.
    (DRS_ENDPOINT, "10.99.0.90"),
)

# Operations agents on every recovery instance: endpoint protection and the backup agent.
OPS_AGENTS: tuple[Component, ...] = (Clamd(), BaculaFd())

LAB = Topology(
    networks=(LAN, BACKEND, INTERNET),
    hosts=(
        Host("resolver01", (Nic(LAN, "10.77.0.54"),),
             (Unbound(INTERNET_NAMES, allow=("10.77.0.0/16", "10.78.0.0/16")),)),
        Host("dns01", (Nic(LAN, "10.77.0.53"),), (Dnsmasq(
            CORP, upstream="10.77.0.54", forward=((AD_REALM.lower(), "10.77.0.21"),)),)),
        Host("dc01", (Nic(LAN, "10.77.0.20"),), (Slapd(
            "dc=corp,dc=example", ("dc01.corp.example",), computers=INSTANCES),)),
        Host("dc02", (Nic(LAN, "10.77.0.21"),), (SambaDc(
            AD_REALM, "AD", ("dc02.ad.corp.example", "dc02.corp.example"),
            computers=INSTANCES),)),
        Host("ntp01", (Nic(LAN, "10.77.0.30"),), (Chronyd(serve=("10.77.0.0/16", "10.78.0.0/16")),
                                                   SkewedNtp(port=1123, offset=120.0))),
        # app01 also receives replication back from src01 when failing back (TCP 1500).
        Host("app01", (Nic(LAN, "10.77.0.11"),), (Sshd(), TIME_CLIENT, *OPS_AGENTS,
                                                   ReplicationServer())),
        Host("app02", (Nic(LAN, "10.77.0.12"),), (Sshd(), TIME_CLIENT, *OPS_AGENTS)),
        Host("db01", (Nic(LAN, "10.77.0.13"), Nic(BACKEND, "10.78.0.13")),
             (Sshd(), TIME_CLIENT, *OPS_AGENTS,
              # Joined to the AD domain with winbind (issue 13): the drill's domain checks.
              WinbindMember(AD_REALM, "AD"))),
        Host("proxy01", (Nic(LAN, "10.77.0.60"), Nic(INTERNET, "10.99.0.1")),
             (Squid(allow=(".example.com", ".example.net", DRS_ENDPOINT),
                    nameserver="10.77.0.53"),)),
        Host("web01", (Nic(INTERNET, "10.99.0.80"),), (WebServer(),), search=(),
             nameservers=(), domain="example.com"),
        Host("logs01", (Nic(LAN, "10.77.0.40"),), (Sshd(), RsyslogCollector(), SignatureMirror())),
        Host("backup01", (Nic(LAN, "10.77.0.41"),), (Sshd(), BaculaSd())),
        # On-premises source of app01 (issue 15): a beacon, a known write load, real sshd.
        # It reaches the staging area over the backend segment (the replication network).
        Host("src01", (Nic(LAN, "10.77.0.71"), Nic(BACKEND, "10.78.0.71")),
             (Sshd(), SourceLoad(), ReplicationSimulator(replica_of="app01"))),
        # The staging area's replication server (DRS's staging subnet), on the backend only.
        Host("staging01", (Nic(BACKEND, "10.78.0.80"),), (ReplicationServer(),)),
        Host("drs01", (Nic(INTERNET, "10.99.0.90"),), (WebServer(port=443),), search=(),
             nameservers=(), domain="amazonaws.com"),
    ),
)
