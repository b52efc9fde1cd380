"""The state file: everything ``up`` created, written *before* it is created.

Recording intent first is what makes a crashed or interrupted ``up`` safe: ``down`` removes
what the state lists, if it exists, and nothing that the state does not list.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pytest_drcheck.lab.errors import LabError, LabNotUpError
from pytest_drcheck.lab.procs import ProcRef

FORMAT = 1


@dataclass
class DaemonState:
    name: str
    proc: ProcRef
    # The nsenter that started it (its parent in the root namespace).
    launcher: ProcRef
    argv: list[str]
    log: str


@dataclass
class HostState:
    name: str
    netns: str
    addresses: list[str]
    # PID 1 of the host's PID namespace (as seen from the root namespace), and the unshare
    # process above it.
    init: ProcRef | None = None
    unshare: ProcRef | None = None
    daemons: dict[str, DaemonState] = field(default_factory=dict)


@dataclass
class BreakerState:
    """A breaker in force; ``owner`` is the process whose ``with`` block holds it."""

    kind: str
    host: str
    detail: str
    owner: ProcRef


@dataclass
class LabState:
    fingerprint: str
    created: str
    complete: bool = False
    bridges: list[str] = field(default_factory=list)
    netns: list[str] = field(default_factory=list)
    veths: list[str] = field(default_factory=list)
    etc_dirs: list[str] = field(default_factory=list)
    # Whether /etc/netns and the state dir were made by ``up`` (``down`` removes them if empty).
    made_etc_netns: bool = False
    made_state_dir: bool = False
    hosts: dict[str, HostState] = field(default_factory=dict)
    breakers: list[BreakerState] = field(default_factory=list)
    build_seconds: float = 0.0

    def procs(self) -> list[ProcRef]:
        """Every process the lab started that may still run (daemons first)."""
        found = [d.proc for h in self.hosts.values() for d in h.daemons.values()]
        found += [d.launcher for h in self.hosts.values() for d in h.daemons.values()]
        found += [p for h in self.hosts.values() for p in (h.init, h.unshare) if p is not None]
        return found


def save(path: Path, state: LabState) -> None:
    """Atomically: a reader sees the old state or the new one, never half a file."""
    data = {"format": FORMAT, **asdict(state)}
    fd, tmp = tempfile.mkstemp(prefix=".state-", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class _Bad(Exception):
    pass


def _get(data: Any, key: str, kind: type[Any]) -> Any:
    if not isinstance(data, dict) or not isinstance(data.get(key), kind):
        raise _Bad(f"'{key}' missing or not {kind.__name__}")
    return data[key]


def _number(data: Any, key: str) -> float:
    value = data.get(key) if isinstance(data, dict) else None
    if not isinstance(value, (int, float)):
        raise _Bad(f"'{key}' missing or not a number")
    return float(value)


def _strs(data: Any, key: str) -> list[str]:
    values = _get(data, key, list)
    if not all(isinstance(v, str) for v in values):
        raise _Bad(f"'{key}' is not a list of strings")
    return list(values)


def _proc(data: Any) -> ProcRef:
    return ProcRef(_get(data, "pid", int), _get(data, "start", int))


def _optional_proc(data: Any, key: str) -> ProcRef | None:
    value = data.get(key) if isinstance(data, dict) else None
    return None if value is None else _proc(value)


def _host(data: Any) -> HostState:
    daemons = {
        name: DaemonState(_get(d, "name", str), _proc(_get(d, "proc", dict)),
                          _proc(_get(d, "launcher", dict)), _strs(d, "argv"), _get(d, "log", str))
        for name, d in _get(data, "daemons", dict).items()
    }
    return HostState(_get(data, "name", str), _get(data, "netns", str), _strs(data, "addresses"),
                     _optional_proc(data, "init"), _optional_proc(data, "unshare"), daemons)


def load(path: Path) -> LabState:
    """The lab's state; LabNotUpError if there is none, LabError if it is damaged."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise LabNotUpError(f"the lab is not up (no {path}): run drcheck lab up") from None
    except (OSError, ValueError) as exc:
        raise LabError(f"lab state {path} is unreadable ({exc}); remove the drlab* "
                       f"namespaces and links by hand and delete {path.parent}") from None
    try:
        if _get(data, "format", int) != FORMAT:
            raise _Bad(f"format {data['format']} is not {FORMAT}")
        return LabState(
            fingerprint=_get(data, "fingerprint", str),
            created=_get(data, "created", str),
            complete=_get(data, "complete", bool),
            bridges=_strs(data, "bridges"),
            netns=_strs(data, "netns"),
            veths=_strs(data, "veths"),
            etc_dirs=_strs(data, "etc_dirs"),
            made_etc_netns=_get(data, "made_etc_netns", bool),
            made_state_dir=_get(data, "made_state_dir", bool),
            hosts={name: _host(h) for name, h in _get(data, "hosts", dict).items()},
            breakers=[BreakerState(_get(b, "kind", str), _get(b, "host", str),
                                   _get(b, "detail", str), _proc(_get(b, "owner", dict)))
                      for b in _get(data, "breakers", list)],
            build_seconds=_number(data, "build_seconds"),
        )
    except _Bad as exc:
        raise LabError(f"lab state {path} is damaged ({exc}); remove the drlab* namespaces "
                       f"and links by hand and delete {path.parent}") from None
