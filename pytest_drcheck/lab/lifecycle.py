"""Bringing the lab up, checking it, and taking down exactly what it made."""

from __future__ import annotations

import contextlib
import datetime
import shutil
import signal
import time
from collections.abc import Callable
from pathlib import Path

from pytest_drcheck.lab import netns, procs, realhost, sshkeys
from pytest_drcheck.lab import state as state_file
from pytest_drcheck.lab.commands import require
from pytest_drcheck.lab.components.base import Component, HostContext
from pytest_drcheck.lab.errors import LabError
from pytest_drcheck.lab.paths import ETC_NETNS, LabPaths
from pytest_drcheck.lab.spawner import Spawner
from pytest_drcheck.lab.state import DaemonState, HostState, LabState
from pytest_drcheck.lab.topology import PREFIX, Host, Topology, veth_name

READY_TIMEOUT = 10.0
Say = Callable[[str], None]


def context(topology: Topology, paths: LabPaths, host: str) -> HostContext:
    return HostContext(topology.host(host), topology, paths)


def _owned(name: str) -> bool:
    # The state file is data on disk: never delete a link or namespace it lists unless the
    # name is one the lab could have made.
    return name.startswith(PREFIX)


def _etc_dir(host: Host) -> Path:
    return ETC_NETNS / host.netns


def check_tools(topology: Topology) -> None:
    for tool in ("ip", "unshare", "nsenter", "ssh-keygen"):
        require(tool)
    for host in topology.hosts:
        for component in host.components:
            require(component.binary, component.package)


def _conflict(topology: Topology, paths: LabPaths) -> str | None:
    """A name the lab needs that exists without being in this lab's state: a leftover, or
    the lab of someone with another DRCHECK_LAB_DIR. Never removed automatically."""
    found: list[tuple[str, str]] = []
    for host in topology.hosts:
        if netns.netns_exists(host.netns):
            found.append((f"namespace {host.netns}", f"ip netns del {host.netns}"))
        if _etc_dir(host).exists():
            found.append((str(_etc_dir(host)), f"rm -r {_etc_dir(host)}"))
        found += [(f"link {name}", f"ip link del {name}") for name in
                  (veth_name(host.name, i) for i in range(len(host.nics)))
                  if netns.link_exists(name)]
    found += [(f"link {net.bridge}", f"ip link del {net.bridge}")
              for net in topology.networks if netns.link_exists(net.bridge)]
    if not found:
        return None
    what, fix = found[0]
    more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
    return (f"{what}{more} exists but is not in the lab state {paths.state_file} (another "
            f"DRCHECK_LAB_DIR's lab, or a leftover); if a leftover: {fix}")


def start_daemon(lab: LabState, ctx: HostContext, component: Component, spawner: Spawner,
                 paths: LabPaths) -> DaemonState:
    """Start one component in its host and record it (the caller saves the state)."""
    host = lab.hosts[ctx.host.name]
    if host.init is None:
        raise LabError(f"host {ctx.host.name} has no PID 1 recorded: run drcheck lab up")
    log = ctx.dir / f"{component.name}.log"
    argv = component.argv(ctx, require(component.binary, component.package))
    daemon, launcher_ref, launcher = realhost.start_daemon(
        host.init, ctx.host.name, argv, component.comm, log)
    spawner.add(launcher)
    record = DaemonState(component.name, daemon, launcher_ref, argv, str(log))
    host.daemons[component.name] = record
    return record


def stop_daemon(lab: LabState, host: str, name: str, spawner: Spawner) -> None:
    record = lab.hosts[host].daemons.get(name)
    if record is None:
        return
    left = procs.stop([record.proc])
    if left:
        raise LabError(f"{name} on {host} (pid {record.proc.pid}) did not stop")
    procs.wait_gone([record.launcher], 2.0)
    spawner.reap([record.launcher.pid], 1.0)


def wait_ready(ctxs: list[tuple[HostContext, Component]], lab: LabState,
               timeout: float | None = None) -> None:
    """Until every component answers on its socket; fail fast if one of them exits."""
    if timeout is None:
        # The probes run one after another and each daemon starts on the same 2 cores: a
        # 1,000-instance benchmark site had its last sshd answer after the lab's 10 s.
        timeout = READY_TIMEOUT + 0.05 * len(ctxs)
    deadline = time.monotonic() + timeout
    pending = list(ctxs)
    reason = ""
    while pending:
        still = []
        for ctx, component in pending:
            record = lab.hosts[ctx.host.name].daemons[component.name]
            if not procs.is_running(record.proc):
                raise LabError(f"{component.name} on {ctx.host.name} exited: "
                               f"{realhost.last_line(Path(record.log)) or 'no output'} "
                               f"(log {record.log})")
            why = component.probe(ctx, 0.5)
            if why is not None:
                still.append((ctx, component))
                reason = f"{component.name} on {ctx.host.name}: {why}"
        pending = still
        if pending:
            if time.monotonic() >= deadline:
                raise LabError(f"{reason} after {timeout:g} s")
            time.sleep(0.02)


def build(topology: Topology, paths: LabPaths, spawner: Spawner) -> LabState:
    """Make the lab from nothing. The caller has torn down any earlier lab first."""
    started = time.monotonic()
    check_tools(topology)
    problem = _conflict(topology, paths) or netns.foreign_routes(topology.networks)
    if problem:
        raise LabError(f"cannot build the lab: {problem}")
    _remove_files(paths)
    made_state_dir = not paths.root.exists()
    paths.root.mkdir(parents=True, exist_ok=True)
    lab = LabState(
        fingerprint=topology.fingerprint(),
        created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        bridges=[net.bridge for net in topology.networks],
        netns=[host.netns for host in topology.hosts],
        veths=[veth_name(h.name, i) for h in topology.hosts for i in range(len(h.nics))],
        etc_dirs=[str(_etc_dir(host)) for host in topology.hosts],
        made_etc_netns=not ETC_NETNS.exists(),
        made_state_dir=made_state_dir,
        hosts={h.name: HostState(h.name, h.netns, [
            f"{h.ifname(i)} {nic.address}/{nic.network.prefixlen} ({nic.network.bridge})"
            for i, nic in enumerate(h.nics)]) for h in topology.hosts},
    )
    # Intent first: from here on, ``down`` knows every name that may exist.
    state_file.save(paths.state_file, lab)
    paths.ssh_dir.mkdir(mode=0o700)
    for host in topology.hosts:
        paths.host_dir(host.name).mkdir(parents=True)

    # Per-host resolver files, bind-mounted over /etc by ``ip netns exec``.
    ETC_NETNS.mkdir(exist_ok=True)
    for host in topology.hosts:
        _etc_dir(host).mkdir()
        (_etc_dir(host) / "resolv.conf").write_text(host.resolv_conf())
        (_etc_dir(host) / "hosts").write_text(host.hosts_file())

    netns.add_namespaces(lab.netns)
    netns.add_links(topology.networks, topology.hosts)

    # Every host's PID 1 starts at once; then collect them. The unshare above each is
    # recorded first: if a host fails to come up, ``down`` can still stop the others (killing
    # unshare takes its whole PID namespace with it, thanks to --kill-child).
    launchers = {}
    for host in topology.hosts:
        launchers[host.name] = realhost.start_host(host.netns, host.name,
                                                   paths.host_dir(host.name))
        spawner.add(launchers[host.name])
        lab.hosts[host.name].unshare = procs.ref(launchers[host.name].pid)
    state_file.save(paths.state_file, lab)
    try:
        for host in topology.hosts:
            init, unshare = realhost.wait_host(launchers[host.name], host.name,
                                               paths.host_dir(host.name))
            lab.hosts[host.name].init, lab.hosts[host.name].unshare = init, unshare
    finally:
        state_file.save(paths.state_file, lab)
    for host in topology.hosts:
        netns.nics_up(host)

    sshkeys.make_client_key(paths)
    components = [(context(topology, paths, h.name), c) for h in topology.hosts
                  for c in h.components]
    for ctx, component in components:
        component.prepare(ctx)
    sshkeys.write_known_hosts(paths, [line for ctx, c in components
                                      for line in c.known_hosts(ctx)])
    try:
        for ctx, component in components:
            start_daemon(lab, ctx, component, spawner, paths)
    finally:
        state_file.save(paths.state_file, lab)
    wait_ready(components, lab)
    lab.complete = True
    lab.build_seconds = round(time.monotonic() - started, 3)
    state_file.save(paths.state_file, lab)
    return lab


def health(lab: LabState, topology: Topology, paths: LabPaths) -> str | None:
    """None if the lab is complete and every part of it works; else the first problem."""
    if not lab.complete:
        return "a previous up did not finish"
    if lab.fingerprint != topology.fingerprint():
        return "it was built from a different topology"
    for name in lab.netns:
        if not netns.netns_exists(name):
            return f"namespace {name} is gone"
    for name in lab.bridges + lab.veths:
        if not netns.link_exists(name):
            return f"link {name} is gone"
    for host in lab.hosts.values():
        if host.init is None or not procs.is_running(host.init):
            return f"host {host.name} is down"
        for daemon in host.daemons.values():
            if not procs.is_running(daemon.proc):
                return f"{daemon.name} on {host.name} is dead"
    broken = set()
    for breaker in lab.breakers:
        if not procs.is_running(breaker.owner):
            return (f"a {breaker.kind} breaker on {breaker.host} was left in force by "
                    f"pid {breaker.owner.pid}")
        broken.add(breaker.host)
    for spec in topology.hosts:
        if spec.name in broken:
            continue  # a live breaker may make it unreachable on purpose
        for component in spec.components:
            why = component.probe(context(topology, paths, spec.name), 1.0)
            if why is not None:
                return f"{component.name} on {spec.name}: {why}"
    return None


def _remove_files(paths: LabPaths) -> None:
    for entry in paths.owned_entries():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink(missing_ok=True)


def teardown(lab: LabState | None, paths: LabPaths, spawner: Spawner) -> None:
    """Remove what ``lab`` lists (whatever of it still exists), then the lab's files."""
    if lab is not None:
        # A short grace: down deletes every file a daemon could still want to write, so one
        # second for a clean exit is plenty (squid would take three); then SIGKILL.
        survivors = procs.stop([d.proc for h in lab.hosts.values() for d in h.daemons.values()],
                               grace=1.0)
        # Killing a host's PID 1 kills everything left in its PID namespace. A host whose
        # PID 1 was never recorded (an interrupted up) goes through its unshare, which ignores
        # SIGTERM but whose death SIGKILLs its child (--kill-child).
        holders = [h.init or h.unshare for h in lab.hosts.values()]
        for holder in holders:
            if holder is not None:
                procs.send(holder, signal.SIGKILL)
        survivors += procs.wait_gone([h for h in holders if h is not None], 3.0)
        # nsenter and unshare exit once their child has; stop them if they have not.
        survivors += procs.stop(procs.wait_gone(lab.procs(), 1.0), grace=1.0)
        spawner.reap([p.pid for p in lab.procs()], 1.0)
        if survivors:
            pids = ", ".join(str(p.pid) for p in survivors)
            raise LabError(f"lab processes {pids} did not exit; kill them and run down again")
        netns.delete_links(n for n in lab.veths if _owned(n))
        netns.delete_namespaces(n for n in lab.netns if _owned(n))
        netns.delete_links(n for n in lab.bridges if _owned(n))
        for directory in lab.etc_dirs:
            path = Path(directory)
            if path.parent == ETC_NETNS and _owned(path.name) and path.is_dir():
                shutil.rmtree(path)
        if lab.made_etc_netns:
            # Not empty: someone else's namespace uses it now.
            with contextlib.suppress(OSError):
                ETC_NETNS.rmdir()
    _remove_files(paths)
    if lab is not None and lab.made_state_dir:
        # Holds files that are not the lab's: leave them.
        with contextlib.suppress(OSError):
            paths.root.rmdir()
