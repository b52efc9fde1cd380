"""A real Active Directory domain controller: Samba 4 provisioned for the lab's AD realm.

Provisioning (a few seconds) makes the domain with its internal DNS, which serves the SRV
records (``_ldap._tcp.dc._msdcs.<domain>``, ``_kerberos._tcp.<domain>``) that instances find
through the lab's dnsmasq (it forwards the AD zone here). LDAPS and StartTLS use a certificate
from the lab CA; simple binds without TLS are refused (strongerAuthRequired), as AD does.
Besides the drill's bind account the domain holds accounts the DC refuses (disabled, expired,
must change password) and a computer account per recovery instance.
"""

from __future__ import annotations

import os
import secrets
import shutil
from dataclasses import dataclass
from typing import ClassVar

from pytest_drcheck.lab import probes
from pytest_drcheck.lab.commands import run
from pytest_drcheck.lab.components import pki
from pytest_drcheck.lab.components.base import Component, HostContext
from pytest_drcheck.lab.components.ldap import ldap_answers
from pytest_drcheck.lab.paths import LabPaths

# Run by the system python3, which has Samba's bindings: one process for every account
# instead of one samba-tool per account. The password comes on stdin, never in argv.
_ACCOUNTS_SCRIPT = """
import sys
from samba.auth import system_session
from samba.param import LoadParm
from samba.samdb import SamDB

conf, sam, user = sys.argv[1:4]
computers = sys.argv[4:]
password = sys.stdin.readline().rstrip("\\n")
lp = LoadParm()
lp.load(conf)
db = SamDB(url=sam, session_info=system_session(), lp=lp)
db.newuser(user, password)
db.newuser("disabled", password)
db.disable_account("(sAMAccountName=disabled)")
db.newuser("expired", password)
db.setexpiry("(sAMAccountName=expired)", 0)
db.newuser("mustchange", password, force_password_change_at_next_login_req=True)
for name in computers:
    db.newcomputer(name)
"""
# Accounts the DC refuses, and the AD sub-code it answers with (the lab tests read these).
REFUSED_ACCOUNTS = {"disabled": "533", "expired": "701", "mustchange": "773"}
# The domain administrator's password, in the lab's secrets: the lab's domain member joins with
# it (through an authentication file, never argv).
ADMIN_PASSWORD_FILE = "ad-admin-password"


def admin_password(paths: LabPaths) -> str:
    """The lab domain's administrator password (made at the first provision of this lab)."""
    path = paths.secrets_dir / ADMIN_PASSWORD_FILE
    if path.exists():
        return path.read_text().rstrip("\n")
    paths.secrets_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    value = f"Adm-{secrets.token_urlsafe(18)}-9z"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    return value


@dataclass(frozen=True)
class SambaDc(Component):
    name: ClassVar[str] = "samba"
    binary: ClassVar[str] = "samba"
    package: ClassVar[str] = "samba-ad-dc"

    realm: str
    netbios_domain: str
    # DNS names the DC's certificate carries; the first is its AD name (what SRV records say).
    names: tuple[str, ...]
    bind_user: str = "drcheck"
    computers: tuple[str, ...] = ()

    @property
    def domain(self) -> str:
        return self.realm.lower()

    def upn(self, user: str | None = None) -> str:
        return f"{user or self.bind_user}@{self.domain}"

    def config(self, ctx: HostContext) -> str:
        return str(ctx.dir / "samba" / "etc" / "smb.conf")

    def prepare(self, ctx: HostContext) -> None:
        base = ctx.dir / "samba"
        shutil.rmtree(base, ignore_errors=True)
        (base / "tls").mkdir(parents=True)
        (base / "run").mkdir()
        ca = pki.lab_ca(ctx.paths)
        cert = pki.issue(ca, base / "tls", "server", self.names)
        options = {
            # Only the lab NIC(s), never anything the root namespace has.
            "interfaces": "lo " + " ".join(ctx.host.ifname(i)
                                           for i in range(len(ctx.host.nics))),
            "bind interfaces only": "yes",
            "log file": f"{base}/log.%m",
            "tls enabled": "yes",
            "tls certfile": str(cert.cert),
            "tls keyfile": str(cert.key),
            "tls cafile": str(ca.cert),
            # Provisioning would copy the runner's resolver here: the DC must not forward
            # anywhere outside the lab (and needs to forward nothing: its zones are its own).
            "dns forwarder": "",
            # Everything Samba would put under /run and /var/lib stays in the lab's tree.
            "pid directory": f"{base}/run",
            "ncalrpc dir": f"{base}/run/ncalrpc",
            # winbindd's socket stays where smbd's libwbclient looks (/run/samba/winbindd, in
            # the host's private /run): elsewhere, every SMB session setup (a member's join,
            # its winbind) fails with NT_STATUS_INTERNAL_ERROR (measured, Samba 4.17).
            "ntp signd socket directory": f"{base}/run/ntp_signd",
        }
        run(["samba-tool", "domain", "provision", f"--realm={self.realm}",
             f"--domain={self.netbios_domain}", "--server-role=dc",
             "--dns-backend=SAMBA_INTERNAL", f"--host-name={ctx.host.name}",
             f"--host-ip={ctx.host.address}", f"--targetdir={base}",
             # The lab edits the directory offline; its domain member joins with this account.
             f"--adminpass={admin_password(ctx.paths)}",
             *(f"--option={key}={value}" for key, value in options.items())],
            timeout=120.0)
        run(["/usr/bin/python3", "-c", _ACCOUNTS_SCRIPT, self.config(ctx),
             str(base / "private" / "sam.ldb"), self.bind_user, *self.computers],
            input=pki.bind_password(ctx.paths) + "\n", timeout=60.0)

    def argv(self, ctx: HostContext, binary: str) -> list[str]:
        # -M single: every AD service in one process (12 processes instead of about 35, ready
        # in 0.4 s instead of 0.9 s, measured); a lab DC serves a handful of clients.
        # Through a shell that makes winbindd's socket parent, then execs samba (same PID).
        return ["/bin/sh", "-c", 'mkdir -p /run/samba && exec "$0" "$@"', binary,
                "--foreground", "--no-process-group", "--debug-stdout", "--model=single",
                "-s", self.config(ctx)]

    def probe(self, ctx: HostContext, timeout: float) -> str | None:
        why = ldap_answers(ctx.host.address, timeout)
        if why is not None:
            return why
        record = f"_ldap._tcp.dc._msdcs.{self.domain}"
        if not probes.dns_answers(ctx.host.address, record, "SRV", timeout):
            return f"no SRV answer for {record} from {ctx.host.address}"
        return None
