"""Running the system tools the lab is made of, with a timeout and a one-line error."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence

from pytest_drcheck.lab.errors import LabError

# Root's PATH normally has the sbin directories; a sudo with a trimmed PATH may not, and the
# daemons all live there.
_EXTRA_PATH = ("/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/local/bin", "/usr/bin", "/bin")

# The Debian package that provides each tool, for the "not found" message.
PACKAGES: Mapping[str, str] = {
    "ip": "iproute2",
    "unshare": "util-linux",
    "nsenter": "util-linux",
    "nft": "nftables",
    "ssh-keygen": "openssh-client",
    "sshd": "openssh-server",
    "dnsmasq": "dnsmasq-base",
    "unbound": "unbound",
}

# Daemons and commands run in the lab get this environment, not the caller's: a developer's
# LD_PRELOAD, proxy variables or locale must not change what a lab host does.
CLEAN_ENV: Mapping[str, str] = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "LC_ALL": "C",
    "TERM": "dumb",
}


def search_path() -> str:
    parts = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p]
    return os.pathsep.join([*parts, *(p for p in _EXTRA_PATH if p not in parts)])


def require(binary: str, package: str | None = None) -> str:
    """Absolute path of ``binary``, or a LabError that says which package to install."""
    found = shutil.which(binary, path=search_path())
    if found is None:
        package = package or PACKAGES.get(binary, binary)
        raise LabError(f"{binary} not found: apt-get install {package}")
    return found


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def run(argv: Sequence[str], *, timeout: float = 10.0, input: str | None = None,
        check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a tool to completion; raise LabError (one line) if it fails or times out."""
    cmd = [require(argv[0]), *argv[1:]]
    try:
        done = subprocess.run(cmd, input=input, capture_output=True, text=True,
                              timeout=timeout, env=dict(CLEAN_ENV), check=False)
    except subprocess.TimeoutExpired:
        raise LabError(f"{' '.join(argv)}: no answer after {timeout:g} s") from None
    except OSError as exc:
        raise LabError(f"{' '.join(argv)}: {exc.strerror or exc}") from None
    if check and done.returncode != 0:
        detail = _last_line(done.stderr) or _last_line(done.stdout) or f"exit {done.returncode}"
        raise LabError(f"{' '.join(argv)}: {detail}")
    return done
