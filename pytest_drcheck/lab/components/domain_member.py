"""A recovery instance joined to the lab's Active Directory with Samba's winbind, for real.

The instance gets its own /etc (an overlay on the machine's, inside the host's private mount
namespace, so nothing leaks to the machine or to other hosts): ``samba/smb.conf`` with
``security = ads``, ``krb5.conf`` (KDCs found through DNS, as on a real member), an
``nsswitch.conf`` that asks winbind for users and groups, and ``krb5.keytab`` written by the
join. The host's resolv.conf and hosts stay the lab's files (bind-mounted again on top), so
faults that rewrite them in place keep working.

At start the member joins the domain with ``net ads join`` (retried until the DC, started just
before, answers), then becomes winbindd in the foreground. The join account's password comes
from the DC's secrets file through an authentication file (``-A``), never on a command line.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from pytest_drcheck.lab import realhost
from pytest_drcheck.lab import state as state_file
from pytest_drcheck.lab.components.base import Component, HostContext
from pytest_drcheck.lab.components.samba import admin_password
from pytest_drcheck.lab.errors import LabError
from pytest_drcheck.lab.paths import ETC_NETNS

# Present in the overlay's upper layer: the overlay is mounted (a restart must not stack
# a second one).
OVERLAY_MARK = "drlab-domain-member"
# Seconds the member keeps retrying its join while the DC comes up.
JOIN_PATIENCE = 120


def _smb_conf(realm: str, netbios_domain: str, netbios_name: str, base: Path) -> str:
    return f"""[global]
	workgroup = {netbios_domain}
	realm = {realm}
	security = ads
	netbios name = {netbios_name}
	kerberos method = secrets and keytab
	dedicated keytab file = /etc/krb5.keytab
	idmap config * : backend = tdb
	idmap config * : range = 3000-7999
	idmap config {netbios_domain} : backend = rid
	idmap config {netbios_domain} : range = 10000-999999
	template shell = /bin/sh
	template homedir = /home/%D/%U
	winbind use default domain = no
	private dir = {base}/private
	lock directory = {base}/lock
	state directory = {base}/state
	cache directory = {base}/cache
	pid directory = {base}/run
	ncalrpc dir = {base}/run/ncalrpc
	log file = {base}/log.%m
	load printers = no
	disable spoolss = yes
"""


def _krb5_conf(realm: str) -> str:
    return f"""[libdefaults]
	default_realm = {realm}
	dns_lookup_kdc = true
	dns_lookup_realm = false
	rdns = false
"""


def _nsswitch(machine: str) -> str:
    """The machine's nsswitch.conf with winbind asked last for users and groups."""
    lines = []
    for line in machine.splitlines():
        key = line.split(":", 1)[0].strip()
        if key in ("passwd", "group") and "winbind" not in line.split():
            line = f"{line} winbind"
        lines.append(line)
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class WinbindMember(Component):
    name: ClassVar[str] = "winbind"
    binary: ClassVar[str] = "winbindd"
    package: ClassVar[str] = "winbind"

    realm: str
    netbios_domain: str

    def base(self, ctx: HostContext) -> Path:
        return ctx.dir / "domain"

    def prepare(self, ctx: HostContext) -> None:
        base = self.base(ctx)
        upper = base / "etc-upper"
        for sub in ("etc-work", "private", "lock", "state", "cache", "run"):
            (base / sub).mkdir(parents=True, exist_ok=True)
        (upper / "samba").mkdir(parents=True, exist_ok=True)
        (upper / "samba" / "smb.conf").write_text(
            _smb_conf(self.realm, self.netbios_domain, ctx.host.name.upper(), base))
        (upper / "krb5.conf").write_text(_krb5_conf(self.realm))
        (upper / "nsswitch.conf").write_text(_nsswitch(Path("/etc/nsswitch.conf").read_text()))
        (upper / OVERLAY_MARK).write_text("the lab's domain member /etc overlay\n")
        auth = base / "join.auth"
        auth.unlink(missing_ok=True)
        fd = os.open(auth, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(f"username = Administrator\npassword = {admin_password(ctx.paths)}\n"
                         f"domain = {self.netbios_domain}\n")
        (base / "start.sh").write_text(self._script(ctx))

    def _script(self, ctx: HostContext) -> str:
        base = shlex.quote(str(self.base(ctx)))
        etc = shlex.quote(str(ETC_NETNS / ctx.host.netns))
        return f"""set -u
B={base}
if [ ! -e /etc/{OVERLAY_MARK} ]; then
  mount -t overlay drlab-etc -o "lowerdir=/etc,upperdir=$B/etc-upper,workdir=$B/etc-work" /etc \\
    || exit 1
  # The lab's own resolver and hosts files, as every lab host sees them (faults edit them).
  mount --bind {etc}/resolv.conf /etc/resolv.conf || exit 1
  mount --bind {etc}/hosts /etc/hosts || exit 1
fi
mkdir -p /run/samba
if [ ! -e "$B/joined" ]; then
  tries=0
  until net ads join --no-dns-updates -A "$B/join.auth" >"$B/join.log" 2>&1; do
    tries=$((tries + 1))
    if [ "$tries" -ge {JOIN_PATIENCE * 2} ]; then
      echo "net ads join failed: $(tail -n 1 "$B/join.log")"; exit 1
    fi
    sleep 0.5
  done
  echo "joined: $(tail -n 1 "$B/join.log")"; : >"$B/joined"
fi
exec winbindd --foreground --no-process-group --debug-stdout -d 1
"""

    def argv(self, ctx: HostContext, binary: str) -> list[str]:
        # A shell that execs winbindd: found (and later stopped) by its PID, which the exec
        # keeps, under the shell's name.
        return ["/bin/sh", str(self.base(ctx) / "start.sh")]

    @property
    def comm(self) -> str:
        return "sh"

    @property
    def runs_as(self) -> str:
        return "winbindd"  # the start script's exec, once joined

    def probe(self, ctx: HostContext, timeout: float) -> str | None:
        try:
            init = state_file.load(ctx.paths.state_file).hosts[ctx.host.name].init
        except (OSError, KeyError, LabError) as exc:
            return f"no lab state for {ctx.host.name}: {exc}"
        if init is None:
            return f"{ctx.host.name} has no PID 1"
        try:
            done = realhost.host_exec(init, ctx.host.name, ["wbinfo", "-t"], timeout + 1.0)
        except LabError as exc:
            return str(exc)
        if done.returncode != 0:
            said = (done.stdout + done.stderr).strip().splitlines()
            return f"wbinfo -t: {said[-1] if said else f'exit {done.returncode}'}"
        return None
