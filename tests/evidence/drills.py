"""Real evidence bundles for the tests of the commands that work on finished bundles: a local
drill (connection type local, real sockets on 127.0.0.1) run by pytest in a subprocess, as a
user runs it."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path

from tests.plugin.sockets import Listener, closed_port


def inventory(open_port: int, shut_port: int, *, name: str = "local-drill", rto: str = "1h",
              rpo: str | None = None, app02_target: str | None = None) -> str:
    """app01: a reachable port, a port that must stay closed, a name; app02: one reach check
    (to the closed port unless ``app02_target`` says otherwise: a failure by default)."""
    objectives = f"rto: {rto}" + (f", rpo: {rpo}" if rpo else "")
    return textwrap.dedent(f"""\
        version: 1
        drill: {{name: {name}, {objectives}}}
        defaults:
          timeout: 5s
          connection: {{type: local}}
        hosts:
          app01:
            checks:
              reach:
                - {{target: "127.0.0.1:{open_port}"}}
                - {{target: "127.0.0.1:{shut_port}", expect: closed}}
              dns:
                - {{name: localhost, expect: 127.0.0.1, allow_hosts_file: true}}
          app02:
            checks:
              reach:
                - {{target: "{app02_target or f'127.0.0.1:{shut_port}'}"}}
        """)


def run_drill(workdir: Path, text: str, bundle: str = "ev",
              launched_minutes_ago: float | None = None, extra: Sequence[str] = ()
              ) -> Path:
    """Run the drill of inventory ``text`` in ``workdir``; returns its sealed bundle."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "site.yaml").write_text(text)
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
               "--dr-inventory=site.yaml", f"--dr-evidence={bundle}"]
    if launched_minutes_ago is not None:
        launched = datetime.now(timezone.utc) - timedelta(minutes=launched_minutes_ago)
        command.append(f"--dr-launched-at={launched.isoformat(timespec='seconds')}")
    command.extend(extra)
    done = subprocess.run(command, cwd=workdir, capture_output=True, text=True, timeout=300,
                          check=False)
    assert (workdir / bundle / "MANIFEST.sha256").is_file(), done.stdout[-3000:] + done.stderr
    (workdir / "pytest-output.txt").write_text(done.stdout + done.stderr)
    return workdir / bundle


def local_drill(workdir: Path, extra: Sequence[str] = (), **options: str) -> Path:
    """One finished bundle of the default drill: 3 checks pass, app02's reach fails."""
    listener = Listener()
    try:
        return run_drill(workdir, inventory(listener.port, closed_port(), **options),
                         extra=extra)
    finally:
        listener.close()


def pub(private: Path) -> str:
    """The public key ``drcheck keygen`` wrote beside a private key."""
    return f"{private}.pub"


def reseal(directory: Path, key: Path | None = None) -> None:
    """What someone who can write the bundle can do after changing a file: recompute the
    manifest, and sign it with a key they hold."""
    from pytest_drcheck.cli import main as drcheck
    from pytest_drcheck.evidence.manifest import write_manifest

    write_manifest(directory)
    if key is not None:
        assert drcheck(["sign", str(directory), "--key", str(key)]) == 0


def with_measured_rpo(directory: Path, measured_s: float, target_s: float = 900.0) -> None:
    """Give a bundle the measured RPO a drill with replication beacons records in drill.json
    (beside the RTO), and re-seal it: for the consumers of that figure."""
    import json

    drill_path = directory / "drill.json"
    drill = json.loads(drill_path.read_text())
    drill["rpo"] = {"target_s": target_s, "measured_s": measured_s,
                    "met": measured_s <= target_s}
    drill_path.write_text(json.dumps(drill, indent=2))
    reseal(directory)


def drill_series(workdir: Path) -> list[Path]:
    """Three drills of one site, launched 70, 40 and 20 minutes before they ran (RTO target 1h):
    the first missed the RTO, the second met it, and in the third the service port was down,
    so two reach checks that passed before now fail (and the RTO was never reached)."""
    service = Listener()
    shut = closed_port()
    text = inventory(service.port, shut, name="web-tier",
                     app02_target=f"127.0.0.1:{service.port}", rpo="15m")
    bundles = []
    try:
        bundles.append(run_drill(workdir / "q1", text, bundle="2026-q1",
                                 launched_minutes_ago=70))
        bundles.append(run_drill(workdir / "q2", text, bundle="2026-q2",
                                 launched_minutes_ago=40))
    finally:
        # shutdown first: close() alone leaves the socket listening while the Listener's
        # thread still sits in accept() on it (and that accept takes one more connection).
        service.sock.shutdown(socket.SHUT_RDWR)
        service.close()
    # The service is down, and its port stays ours: bound, not listening, so connections are
    # refused and no other process on this shared machine can start listening there meanwhile.
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", service.port))
        bundles.append(run_drill(workdir / "q3", text, bundle="2026-q3",
                                 launched_minutes_ago=20))
    for bundle, rpo in zip(bundles, (240.0, 1260.0, 480.0), strict=True):
        with_measured_rpo(bundle, rpo)
    return bundles
