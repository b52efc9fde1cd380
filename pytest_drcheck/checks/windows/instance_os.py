"""instance_os on Windows: the OS caption from WMI and the instance type from IMDSv2, with
Windows PowerShell 2.0's means (Get-WmiObject, System.Net.WebClient), since the hosts this
check is about (Windows Server 2008) ship 2.0."""

from __future__ import annotations

from pytest_drcheck.targets.powershell_batch import ps_quote

OS_COMMAND = "(Get-WmiObject Win32_OperatingSystem -ErrorAction Stop).Caption"


def instance_type_command(imds: str) -> str:
    base = ps_quote(imds.rstrip("/"))
    return ("$w = New-Object System.Net.WebClient; "
            "$w.Headers.Add('X-aws-ec2-metadata-token-ttl-seconds', '60'); "
            f"$t = $w.UploadString({base} + '/latest/api/token', 'PUT', ''); "
            "$w = New-Object System.Net.WebClient; $w.Headers.Add('X-aws-ec2-metadata-token', $t); "
            f"$w.DownloadString({base} + '/latest/meta-data/instance-type')")


def commands(imds: str) -> tuple[str, ...]:
    return (OS_COMMAND, instance_type_command(imds))
