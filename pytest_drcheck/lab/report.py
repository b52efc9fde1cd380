"""What ``drcheck lab up`` and ``status`` print: short, aligned, one host per line."""

from __future__ import annotations

from pytest_drcheck.lab.api import LabStatus, UpReport


def _mib(kib: int) -> str:
    return f"{kib / 1024:.0f} MiB"


def up_summary(report: UpReport, client_key: str, known_hosts: str) -> list[str]:
    status = report.status
    daemons = sum(len(h.daemons) for h in status.hosts)
    if report.action == "already up":
        head = (f"lab already up and healthy: {len(status.hosts)} hosts, {daemons} daemons "
                f"(checked in {report.seconds:.2f} s)")
    else:
        why = f" (was: {report.reason})" if report.reason else ""
        head = (f"lab {report.action}{why} in {report.seconds:.1f} s: {len(status.hosts)} hosts, "
                f"{daemons} daemons, {_mib(status.rss_kib)} RSS, state {status.state_dir}")
    width = max((len(h.name) for h in status.hosts), default=0)
    addresses = {h.name: ", ".join(a.split()[1] for a in h.addresses) for h in status.hosts}
    column = max((len(a) for a in addresses.values()), default=0)
    lines = [head]
    for host in status.hosts:
        names = " ".join(d.name for d in host.daemons) or "-"
        lines.append(f"  {host.name:<{width}}  {addresses[host.name]:<{column}}  {names}")
    lines.append(f"ssh: ssh -i {client_key} -o UserKnownHostsFile={known_hosts} "
                 "root@<address>")
    return lines


def isolation_line(problem: str | None) -> str:
    if problem is None:
        return "isolation: lab addresses cannot leave the machine"
    return f"isolation NOT guaranteed: {problem} (drcheck lab up or down installs it)"


def status_lines(status: LabStatus) -> list[str]:
    if status.complete:
        head = f"lab up since {status.created} (built in {status.build_seconds:.1f} s)"
    else:
        head = f"lab INCOMPLETE: an up started {status.created} did not finish (run drcheck lab up)"
    lines = [f"{head}, state {status.state_dir}"]
    width = max((len(h.name) for h in status.hosts), default=0)
    for host in status.hosts:
        init = f"init {host.init_pid} {'alive' if host.alive else 'DEAD'}"
        daemons = "  ".join(
            f"{d.name} {d.pid} {'alive' if d.alive else 'DEAD'}"
            + (f" ({_mib(d.rss_kib)})" if d.alive else "") for d in host.daemons)
        lines.append(f"  {host.name:<{width}}  {host.netns:<{width + 6}}  {init}  {daemons}")
    lines += [f"  breaker in force: {b}" for b in status.breakers]
    lines.append(isolation_line(status.isolation_problem))
    lines.append(f"{'all alive' if status.all_alive else 'NOT all alive'}, "
                 f"{_mib(status.rss_kib)} RSS in daemons")
    return lines
