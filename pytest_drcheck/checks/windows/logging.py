"""logging on Windows: the marker leaves the host as the family's ``logger`` sends it on Linux.

- ``local``: written to the Application event log (``Write-EventLog``, source ``drcheck``,
  registered on first use with ``New-EventLog``), which the host's forwarder (Winlogbeat,
  NXLog, Windows Event Forwarding) must carry to the collector, where the site's existing
  verifier finds it;
- ``udp``: one RFC 5424 datagram sent with .NET's UdpClient (Windows has no ``logger``).

A marker that cannot be written (no right to register the event source, say) exits 1 with
PowerShell's message: "not sent", as logger's failure is on Linux.
"""

from __future__ import annotations

from pytest_drcheck.targets.powershell_batch import ps_quote

EVENT_SOURCE = "drcheck"
EVENT_ID = 4242


def marker_command(via: str, message: str, line: bytes, address: str | None = None,
                   port: int | None = None) -> str:
    """``message``: the marker text for the event log; ``line``: the syslog datagram."""
    if via == "udp":
        return ("$u = New-Object System.Net.Sockets.UdpClient; try { "
                f"$b = [System.Text.Encoding]::UTF8.GetBytes({ps_quote(line.decode())}); "
                f"[void]$u.Send($b, $b.Length, {ps_quote(str(address))}, {int(port or 514)}) }} "
                "finally { $u.Close() }")
    source = ps_quote(EVENT_SOURCE)
    return (f"if (-not [System.Diagnostics.EventLog]::SourceExists({source})) {{ "
            f"New-EventLog -LogName Application -Source {source} -ErrorAction Stop }}; "
            f"Write-EventLog -LogName Application -Source {source} -EventId {EVENT_ID} "
            f"-EntryType Information -Message {ps_quote(message)} -ErrorAction Stop")
