"""time on Windows: the Windows Time service (w32time) read with ``w32tm /query /status
/verbose``, into the family's DaemonView; the clock sampled for the offset in PowerShell.

w32tm prints its errors (the service not started) on stdout with a negative HRESULT as its
exit code: the command maps any failure to 1, so the family reads it as a daemon that did not
answer, with w32tm's first line as the reason.
"""

from __future__ import annotations

import re

from pytest_drcheck.checks.timesync import DaemonView
from pytest_drcheck.targets.powershell_batch import encoded_command, ps_quote

DAEMON = "w32time"
COMMAND = ("w32tm /query /status /verbose; "
           "if ($LASTEXITCODE -ne 0) { $global:LASTEXITCODE = 1 }")
# Sources that are not a network time source.
_LOCAL_SOURCES = ("local cmos clock", "free-running system clock", "vm ic time synchronization"
                  " provider")
_FIELD = re.compile(r"^\s*([A-Za-z ()]+?)\s*:\s*(.*?)\s*$")
_SOURCE_IP = re.compile(r"source IP:\s*([0-9A-Fa-f.:]+)")
_SECONDS = re.compile(r"^(-?\d+(?:[.,]\d+)?)s\b")
# Seconds since the Unix epoch from .NET ticks (100 ns since 0001-01-01), culture-invariant.
_NOW = ("(([DateTime]::UtcNow.Ticks - 621355968000000000) / 1e7).ToString('F7', "
        "[Globalization.CultureInfo]::InvariantCulture)")
# One reading per line of input, as the Linux sampler (clockoffset.SAMPLER_COMMAND).
SAMPLER_SCRIPT = ("$n = 0; while ($n -lt 256 -and $null -ne [Console]::In.ReadLine()) { $n++; "
                  f"[Console]::Out.WriteLine({_NOW}); [Console]::Out.Flush() }}")
SAMPLE_SCRIPT = _NOW


def parse_w32tm(output: str) -> DaemonView:
    """``w32tm /query /status /verbose`` (English output)."""
    fields: dict[str, str] = {}
    for line in output.splitlines():
        match = _FIELD.match(line)
        if match:
            fields.setdefault(match.group(1).lower(), match.group(2))
    if "source" not in fields:
        first = next((line.strip() for line in output.splitlines() if line.strip()), "")
        return DaemonView(DAEMON, False, problem=f"w32tm printed no status ({first[:100]})")
    source = fields["source"].split(",0x")[0].strip()
    leap = fields.get("leap indicator", "")
    stratum_text = fields.get("stratum", "").split(" ")[0]
    stratum = int(stratum_text) if stratum_text.isdigit() else None
    offset = None
    phase = _SECONDS.match(fields.get("phase offset", ""))
    if phase:
        offset = float(phase.group(1).replace(",", "."))
    if leap.startswith("3") or source.lower() in _LOCAL_SOURCES or not stratum:
        return DaemonView(DAEMON, False, problem=f"not synchronised (source: {source}, "
                                                 f"leap indicator {leap or 'unknown'})")
    # The address it syncs from, as the Linux daemons report it (-n); else the name configured.
    address = _SOURCE_IP.search(fields.get("referenceid", ""))
    return DaemonView(DAEMON, True, address.group(1) if address else source, stratum, offset)


def lookup_command(name: str) -> str:
    """The addresses of ``name`` one per line, or status 2 when it does not resolve (as
    ``getent ahosts``)."""
    return (f"try {{ [System.Net.Dns]::GetHostAddresses({ps_quote(name)}) | "
            "ForEach-Object { $_.IPAddressToString } } catch { $global:LASTEXITCODE = 2 }")


def sampler_command() -> str:
    """A command line (cmd.exe and PowerShell alike) that prints the clock per input line."""
    return encoded_command(SAMPLER_SCRIPT)


def sample_command() -> str:
    """A command line that prints the clock once."""
    return encoded_command(SAMPLE_SCRIPT)
