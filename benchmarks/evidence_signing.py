"""What authenticity, sign-off, OSCAL and history cost on a real bundle: medians of RUNS runs
of `drcheck sign` (re-hashing every file, then Ed25519 over the manifest), `drcheck verify
--pubkey` (the same hashing, the signature, the sign-offs), Ed25519 alone, `drcheck signoff`
(on a fresh copy each time: it re-renders the report), the OSCAL export (and its size) and a
history page over five copies of the bundle. The operations run in-process (no interpreter
start-up in the figures).

Without BUNDLE, a local drill (connection type local, real sockets on 127.0.0.1, no lab) of
HOSTS x 10 reach checks is run first: 200 hosts give 2,000 results.

Usage: python benchmarks/evidence_signing.py [BUNDLE | --hosts N] [--runs N]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def serve() -> int:
    server = socket.create_server(("127.0.0.1", 0), backlog=512)

    def loop() -> None:
        while True:
            connection, _ = server.accept()
            connection.close()

    threading.Thread(target=loop, daemon=True).start()
    port: int = server.getsockname()[1]
    return port


def local_bundle(directory: Path, hosts: int) -> Path:
    ports = [serve() for _ in range(10)]
    lines = ["version: 1", "drill: {name: bench, rto: 1h}",
             "defaults: {timeout: 5s, connection: {type: local}}", "hosts:"]
    for h in range(hosts):
        lines.append(f"  host{h:04d}:\n    checks:\n      reach:")
        lines += [f'        - {{target: "127.0.0.1:{port}"}}' for port in ports]
    (directory / "site.yaml").write_text("\n".join(lines) + "\n")
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "--dr-inventory=site.yaml", "--dr-evidence=ev"], cwd=directory,
                          capture_output=True, text=True, timeout=1800, check=False)
    if not (directory / "ev" / "MANIFEST.sha256").is_file():
        raise SystemExit(f"the drill left no bundle: {done.stdout[-2000:]}")
    return directory / "ev"


def median_ms(runs: int, action: Callable[[], object],
              prepare: Callable[[], None] | None = None) -> float:
    times = []
    for _ in range(runs):
        if prepare is not None:
            prepare()
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("bundle", nargs="?")
    parser.add_argument("--hosts", type=int, default=200)
    parser.add_argument("--runs", type=int, default=10)
    options = parser.parse_args()

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from pytest_drcheck.evidence import history, oscal
    from pytest_drcheck.evidence.bundle import load
    from pytest_drcheck.evidence.signing import authenticate, seal
    from pytest_drcheck.evidence.signoff import approve

    with tempfile.TemporaryDirectory(prefix="drcheck-bench-signing-") as temporary:
        work = Path(temporary)
        source = Path(options.bundle) if options.bundle else local_bundle(work, options.hosts)
        bundle = work / "bundle"
        shutil.copytree(source, bundle)
        _, records, _ = load(bundle)
        files = [p for p in bundle.rglob("*") if p.is_file()]
        print(f"bundle: {len(records)} results, {len(files)} files, "
              f"{sum(p.stat().st_size for p in files) / 1024:.0f} KiB"
              + (f" ({source})" if options.bundle else f" (local drill, {options.hosts} hosts)"))
        runs = options.runs
        key = Ed25519PrivateKey.generate()
        manifest = (bundle / "MANIFEST.sha256").read_bytes()
        signature = key.sign(manifest)
        public = key.public_key()
        print(f"  Ed25519 over MANIFEST.sha256 ({len(manifest)} bytes): sign "
              f"{median_ms(runs, lambda: key.sign(manifest)) * 1000:.0f} us, verify "
              f"{median_ms(runs, lambda: public.verify(signature, manifest)) * 1000:.0f} us")
        now = "2026-01-01T00:00:00.000+00:00"
        print(f"  drcheck sign (re-hash, sign, write):      median "
              f"{median_ms(runs, lambda: seal(bundle, key, now)):7.1f} ms")
        print(f"  drcheck verify --pubkey (signature part): median "
              f"{median_ms(runs, lambda: authenticate(bundle, [public])):7.1f} ms")
        from pytest_drcheck.evidence.manifest import verify

        print(f"  drcheck verify, the manifest re-hash:      median "
              f"{median_ms(runs, lambda: verify(bundle)):7.1f} ms")
        fresh = work / "fresh"

        def copy() -> None:
            shutil.rmtree(fresh, ignore_errors=True)
            shutil.copytree(bundle, fresh)

        signoff_ms = median_ms(runs, lambda: approve(fresh, key, "J. Doe", "DR manager", "",
                                                     now), prepare=copy)
        print(f"  drcheck signoff (incl. report re-render): median {signoff_ms:7.1f} ms")
        document = oscal.export(fresh)
        text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
        print(f"  OSCAL export: median {median_ms(runs, lambda: oscal.export(fresh)):7.1f} ms, "
              f"{len(text.encode()) / 1024:.0f} KiB ({len(text.encode())} bytes; "
              f"sha256 {hashlib.sha256(text.encode()).hexdigest()[:12]}); without indentation "
              f"{len(json.dumps(document, separators=(',', ':')).encode()) / 1024:.0f} KiB")
        copies = []
        for index in range(5):
            target = work / f"history-{index}"
            shutil.copytree(bundle, target)
            copies.append(target)
        page: list[str] = []
        history_ms = median_ms(max(1, runs // 2), lambda: page.append(
            history.render_history(history.load_drills(copies))))
        print(f"  history of 5 bundles: median {history_ms:7.1f} ms, "
              f"{len(page[-1]) / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
