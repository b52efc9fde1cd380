"""libfaketime for every session of a lab host, with the shared state the faketime wrapper makes.

libfaketime keeps a semaphore and a small shared memory segment for the processes of one run,
named in ``FAKETIME_SHARED``. The ``faketime`` wrapper creates that pair, hands it to the
command, and removes it when the command ends. Preloaded without the wrapper (what sshd's
``SetEnv`` gives its sessions), each session's shell creates a pair of its own, named after
its PID, and marks itself as the creator. Measured on db01 under a +600 s skew (Debian's
libfaketime 0.9.10):

- every forked subshell inherits that mark and unlinks the pair when it exits, so programs the
  session starts afterwards find ``FAKETIME_SHARED`` naming a semaphore that is gone;
- such a program then creates a pair named after its own PID; a lab host's PID namespace
  hands out small PIDs again and again, and the machine-wide /dev/shm keeps the pairs of
  every earlier shell that exec'd (an exec runs no destructor: 137 were left after a day of
  lab runs), so the name is sometimes taken, and libfaketime exits 1 before ``main`` ("sem_open
  failed and recreation attempts failed"), whichever program was starting (getent was seen);
- the drill saw a name "not resolve" on db01 (2 lab drills in 35): a real member whose clock
  is ahead resolves names as well as ever (its hosts: line is "files dns"; DNS has no clock).

So the fault makes one pair for the whole fault, as the wrapper would, and names it to every
session: nobody creates or unlinks one while the fault is in force, and it is removed once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pytest_drcheck.lab.errors import LabError

if TYPE_CHECKING:
    from pytest_drcheck.lab.api import Lab

LIBRARY = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1"
# What libfaketime writes into FAKETIME_SHARED: "/<semaphore> /<shared memory>".
_SHARED = re.compile(r"/(faketime_sem_\d+) /(faketime_shm_\d+)")
# A creation fails silently when the PID-named pair already exists (left by an earlier
# process with that PID: lab hosts' PID namespaces hand out the same small PIDs run after run,
# and earlier labs' leftovers can fill a run of them); each attempt is a new process, a new PID.
_CREATE_ATTEMPTS = 64


@dataclass(frozen=True)
class SharedState:
    """One libfaketime semaphore and shared memory pair (POSIX names, without the slash)."""

    semaphore: str
    memory: str

    @property
    def env_value(self) -> str:
        return f"/{self.semaphore} /{self.memory}"

    @property
    def files(self) -> tuple[str, str]:
        # glibc keeps named semaphores and shared memory as files in /dev/shm.
        return f"/dev/shm/sem.{self.semaphore}", f"/dev/shm/{self.memory}"


def create_shared_state(lab: Lab, host: str, seconds: int) -> SharedState:
    """A pair made and initialised by libfaketime itself, left in place for the fault.

    A shell under libfaketime creates the pair and exports it; ``exec`` then replaces the
    shell without running its destructor, the only code that would remove the pair.
    """
    attempt = (f"env LD_PRELOAD={LIBRARY} FAKETIME=+{seconds} "
               """sh -c 'printf "%s" "$FAKETIME_SHARED"; exec true'""")
    # One command for every attempt: an exec into the host costs far more than an attempt.
    script = (f'i=0; while [ "$i" -lt {_CREATE_ATTEMPTS} ]; do i=$((i + 1)); '
              f's=$({attempt}) && [ -n "$s" ] && {{ printf "%s" "$s"; exit 0; }}; done; '
              "exit 1")
    done = lab.exec(host, ["sh", "-c", script], timeout=60.0)
    found = _SHARED.fullmatch(done.stdout.strip()) if done.returncode == 0 else None
    if found is None:
        lines = (done.stderr.strip() or done.stdout.strip()).splitlines()
        raise LabError(f"libfaketime made no shared state on {host} in {_CREATE_ATTEMPTS} "
                       f"attempts: {lines[-1] if lines else f'exit {done.returncode}'}")
    state = SharedState(found.group(1), found.group(2))
    present = lab.exec(host, ["test", "-e", state.files[0], "-a", "-e", state.files[1]])
    if present.returncode != 0:
        raise LabError(f"libfaketime announced {state.env_value} on {host}, but it is not in "
                       "/dev/shm")
    return state


def remove_shared_state(lab: Lab, host: str, state: SharedState) -> None:
    done = lab.exec(host, ["rm", "-f", "--", *state.files], timeout=30.0)
    if done.returncode != 0:
        said = (done.stderr.strip() or f"exit {done.returncode}").splitlines()[-1]
        raise LabError(f"removing libfaketime's shared state on {host}: {said}")


def session_environment(seconds: int, state: SharedState) -> str:
    """The sshd_config line that gives every session the skew and the one shared pair
    (sshd_config arguments with a space are double-quoted)."""
    return (f"SetEnv LD_PRELOAD={LIBRARY} FAKETIME=+{seconds} "
            f'"FAKETIME_SHARED={state.env_value}"\n')
