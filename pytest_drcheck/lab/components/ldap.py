"""OpenLDAP (slapd) as the on-premises directory: LDAPS and StartTLS with the lab CA.

The directory holds the drill's bind account, accounts the password policy overlay refuses
(locked, expired, must change after reset) so that "account problem" is a real server answer,
and a computer entry per recovery instance for the drill's search. A fault
(``faults.untrusted_certificate``) swaps in a certificate from the rogue CA (a DC
presenting a certificate nobody trusts).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import math
import os
import shutil
import warnings
from dataclasses import dataclass
from typing import ClassVar

from pytest_drcheck.lab.commands import run
from pytest_drcheck.lab.components import pki
from pytest_drcheck.lab.components.base import Component, HostContext

SCHEMAS = ("core", "cosine", "inetorgperson", "nis")
# Accounts the password policy refuses, and what it says (the lab tests read these).
POLICY_ACCOUNTS = {
    "locked": "pwdAccountLockedTime: 000001010000Z",
    "expired": "pwdChangedTime: 20000101000000Z",
    "reset": "pwdReset: TRUE",
}


@dataclass(frozen=True)
class Slapd(Component):
    name: ClassVar[str] = "slapd"
    binary: ClassVar[str] = "slapd"
    package: ClassVar[str] = "slapd"

    suffix: str
    # DNS names the server certificate carries (the first one is what drills connect to).
    names: tuple[str, ...]
    bind_user: str = "drcheck"
    computers: tuple[str, ...] = ()

    def _dir(self, ctx: HostContext) -> str:
        return str(ctx.dir / "slapd")

    def config(self, ctx: HostContext) -> str:
        return str(ctx.dir / "slapd" / "slapd.conf")

    def bind_dn(self, user: str | None = None) -> str:
        return f"uid={user or self.bind_user},ou=people,{self.suffix}"

    def certificate(self, ctx: HostContext) -> pki.Issued:
        return pki.Issued(ctx.dir / "slapd" / "server.pem", ctx.dir / "slapd" / "server.key")

    def prepare(self, ctx: HostContext) -> None:
        base = ctx.dir / "slapd"
        shutil.rmtree(base, ignore_errors=True)
        (base / "db").mkdir(parents=True)
        ca = pki.lab_ca(ctx.paths)
        pki.issue(ca, base, "server", self.names)
        (base / "slapd.conf").write_text("\n".join([
            "# written by drcheck lab up",
            *(f"include /etc/ldap/schema/{schema}.schema" for schema in SCHEMAS),
            "modulepath /usr/lib/ldap",
            "moduleload back_mdb",
            "moduleload ppolicy",
            f"pidfile {base}/slapd.pid",
            f"argsfile {base}/slapd.args",
            f"TLSCACertificateFile {ca.cert}",
            f"TLSCertificateFile {base}/server.pem",
            f"TLSCertificateKeyFile {base}/server.key",
            "database mdb",
            "maxsize 16777216",
            f'suffix "{self.suffix}"',
            f"directory {base}/db",
            "overlay ppolicy",
            f'ppolicy_default "cn=default,ou=policies,{self.suffix}"',
            "ppolicy_use_lockout",
            # The bind account may read the tree; nobody reads passwords.
            "access to attrs=userPassword by self write by anonymous auth by * none",
            "access to * by users read by * none",
        ]) + "\n")
        hashed = ssha(pki.bind_password(ctx.paths))
        run(["slapadd", "-q", "-f", str(base / "slapd.conf")],
            input=self._ldif(hashed), timeout=30.0)

    def _ldif(self, hashed: str) -> str:
        dc = self.suffix.split(",")[0].split("=")[1]
        entries = [
            f"dn: {self.suffix}\nobjectClass: dcObject\nobjectClass: organization\n"
            f"o: {dc}\ndc: {dc}\n",
            *(f"dn: ou={ou},{self.suffix}\nobjectClass: organizationalUnit\nou: {ou}\n"
              for ou in ("people", "policies", "computers")),
            f"dn: cn=default,ou=policies,{self.suffix}\nobjectClass: pwdPolicy\n"
            "objectClass: device\ncn: default\npwdAttribute: userPassword\npwdLockout: TRUE\n"
            "pwdMaxFailure: 0\npwdMustChange: TRUE\npwdMaxAge: 31536000\n"
            "pwdGraceAuthNLimit: 0\n",
            *(f"dn: cn={name},ou=computers,{self.suffix}\nobjectClass: device\ncn: {name}\n"
              for name in self.computers),
            *(f"dn: {self.bind_dn(user)}\nobjectClass: inetOrgPerson\nuid: {user}\n"
              f"cn: {user}\nsn: {user}\nuserPassword: {hashed}\n{extra}"
              for user, extra in [(self.bind_user, ""),
                                  *((u, a + "\n") for u, a in POLICY_ACCOUNTS.items())]),
        ]
        return "\n".join(entries)

    def argv(self, ctx: HostContext, binary: str) -> list[str]:
        urls = " ".join(f"ldap://{nic.address}/ ldaps://{nic.address}/" for nic in ctx.host.nics)
        # -d 0: stay in the foreground, log nothing but errors (to the daemon's log file).
        return [binary, "-f", self.config(ctx), "-h", urls, "-u", "root", "-d", "0"]

    def probe(self, ctx: HostContext, timeout: float) -> str | None:
        return ldap_answers(ctx.host.address, timeout)


def ssha(password: str) -> str:
    """An RFC 2307 {SSHA} userPassword value (no slappasswd process holding it in argv)."""
    salt = os.urandom(8)
    digest = hashlib.sha1(password.encode() + salt).digest()
    return "{SSHA}" + base64.b64encode(digest + salt).decode()


def ldap_answers(address: str, timeout: float) -> str | None:
    """None if an anonymous bind over plain LDAP succeeds and 636 accepts a TCP connection."""
    import socket

    with warnings.catch_warnings():
        # ldap3 2.9 uses names pyasn1 has deprecated; not ours to fix.
        warnings.filterwarnings("ignore", r"(tag|type)Map is deprecated", DeprecationWarning)
        from ldap3 import NONE, Connection, Server
        from ldap3.core.exceptions import LDAPException

    try:
        connection = Connection(Server(address, port=389, get_info=NONE,
                                       connect_timeout=timeout),
                                # ldap3 packs it into SO_RCVTIMEO: whole seconds.
                                receive_timeout=max(1, math.ceil(timeout)),
                                raise_exceptions=False)
        try:
            if not connection.bind():
                return f"anonymous bind refused on {address}:389"
        finally:
            with contextlib.suppress(LDAPException, OSError):
                connection.unbind()
        socket.create_connection((address, 636), timeout=timeout).close()
    except (LDAPException, OSError) as exc:
        return f"no LDAP answer on {address} ({type(exc).__name__})"
    return None
