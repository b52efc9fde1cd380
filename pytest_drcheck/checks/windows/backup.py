"""backup on Windows: the agent's service or process (``windows.running``), and the host's
source address toward the backup server for the reverse probe (``Find-NetRoute``), printed as
``src ADDRESS`` so the family reads it as it reads ``ip -o route get``."""

from __future__ import annotations

from pytest_drcheck.targets.powershell_batch import ps_quote


def address_command(server: str) -> str:
    name = ps_quote(server)
    return (f"try {{ $a = [System.Net.Dns]::GetHostAddresses({name})[0].IPAddressToString }} "
            f"catch {{ Write-Error ('cannot resolve ' + {name} + ' on the instance'); "
            "$global:LASTEXITCODE = 2; return }; "
            "$r = Find-NetRoute -RemoteIPAddress $a -ErrorAction Stop | "
            "Where-Object { $_.IPAddress } | Select-Object -First 1; 'src ' + $r.IPAddress")
