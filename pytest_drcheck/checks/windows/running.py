"""Whether an agent runs on a Windows host, into the family's ``Running`` (agent and backup).

A service is read from the Service Control Manager (``Get-Service``: Status, StartType); a
process from ``Get-Process`` (the name without ``.exe``). Each command prints one JSON object;
a service that does not exist prints ``{"missing": true}`` (an answer, not an error).
"""

from __future__ import annotations

import json
from typing import Any

from pytest_drcheck.checks.running import Running
from pytest_drcheck.model import CouldNotObserve
from pytest_drcheck.targets.powershell_batch import ps_quote


def service_command(service: str) -> str:
    return (f"$s = Get-Service -Name {ps_quote(service)} -ErrorAction SilentlyContinue; "
            "if ($null -eq $s) { '{\"missing\":true}' } else { $s | Select-Object Name, "
            "@{n='Status';e={[string]$_.Status}}, @{n='StartType';e={[string]$_.StartType}} "
            "| ConvertTo-Json -Compress }")


def process_command(process: str) -> str:
    name = process[:-4] if process.lower().endswith(".exe") else process
    return (f"$p = @(Get-Process -Name {ps_quote(name)} -ErrorAction SilentlyContinue | "
            "ForEach-Object { $_.Id }); ConvertTo-Json -Compress @{ pids = $p; "
            "count = @(Get-Process).Count }")


def running_commands(service: str | None, process: str | None) -> tuple[str, ...]:
    commands: list[str] = []
    if service is not None:
        commands.append(service_command(service))
    if process is not None:
        commands.append(process_command(process))
    return tuple(commands)


def _json(text: str, what: str, host: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        raise CouldNotObserve(f"{what} on {host} printed no JSON: {text.strip()[:80]!r}"
                              ) from None


def service_state(host: str, service: str, text: str) -> Running:
    data = _json(text, "Get-Service", host)
    if not isinstance(data, dict) or data.get("missing"):
        return Running(False, f"service {service} not installed (service control manager)",
                       "service control manager")
    status, start = str(data.get("Status", "?")), str(data.get("StartType", "?"))
    name = data.get("Name", service)
    observed = f"service {name} {status} (start {start}; service control manager)"
    return Running(status == "Running", observed, "service control manager")


def process_state(host: str, process: str, text: str) -> Running:
    data = _json(text, "Get-Process", host)
    pids_value = data.get("pids") if isinstance(data, dict) else None
    # ConvertTo-Json prints one pid as a number and none as null or [].
    pids_list = pids_value if isinstance(pids_value, list) else (
        [] if pids_value is None else [pids_value])
    pids = tuple(sorted(int(p) for p in pids_list))
    total = int(data.get("count", 0)) if isinstance(data, dict) else 0
    if pids:
        shown = ", ".join(str(p) for p in pids[:5]) + (" ..." if len(pids) > 5 else "")
        return Running(True, f"{process} running (pid {shown}; Get-Process)", "process table",
                       pids)
    return Running(False, f"no {process} process (Get-Process, {total} processes)",
                   "process table")


def observe_running(outputs: list[str], host: str, service: str | None,
                    process: str | None) -> Running:
    """``outputs``: the stdout of ``running_commands(service, process)``, in order. A service
    decides when one is named; the process is the answer otherwise."""
    if service is not None:
        return service_state(host, service, outputs[0])
    if process is None:
        raise CouldNotObserve("neither a service nor a process to look for")
    return process_state(host, process, outputs[0])


def package_version_command(package: str) -> str:
    """The DisplayVersion of the installed product named ``package`` (the uninstall registry,
    64- and 32-bit); status 1 when no such product is installed (as dpkg-query)."""
    return ("$k = 'HKLM:\\Software\\Microsoft\\Windows\\CurrentVersion\\Uninstall\\*', "
            "'HKLM:\\Software\\Wow6432Node\\Microsoft\\Windows\\CurrentVersion\\Uninstall\\*'; "
            "$v = Get-ItemProperty -Path $k -ErrorAction SilentlyContinue | Where-Object { "
            f"$_.DisplayName -eq {ps_quote(package)} }} | Select-Object -First 1 "
            "-ExpandProperty DisplayVersion; if ($v) { $v } else { $global:LASTEXITCODE = 1 }")
