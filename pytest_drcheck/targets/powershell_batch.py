"""Many PowerShell commands in one PowerShell start, for Windows hosts.

Starting powershell.exe costs about 250 ms whatever it runs, so a Windows host's commands go out
as one script, as the Linux batch (``batch.py``) sends one sh script. The script runs every
command in its own pipeline of one runspace pool (concurrently, in the one process), waits for
each until a shared deadline, stops the ones still running (124, timed out) and prints one line
per command: a random token, then a compact JSON object ``{"i", "rc", "out", "err",
"timedOut"}`` whose ``out``/``err`` are base64 of UTF-8, so no output, code page or console
width can break the framing. A status follows the Linux batch's meaning, so a family reads a
Windows result with ``ctx.output(i, accept=...)`` unchanged: 0 ok, 124 timed out, 125 lost,
127 the command does not exist (CommandNotFoundException), a native program's own exit code,
else 1 when the command wrote an error.

The script itself needs only Windows PowerShell 2.0 (its frames are built by hand, not with
ConvertTo-Json, which 2.0 lacks); the observers' own commands use 3.0 cmdlets.

Commands enter the script as PowerShell single-quoted literals (``ps_quote``), never
interpolated. Transports that start PowerShell through a command line (OpenSSH's default shell
and WinRS are cmd.exe: 8,191 characters) send a gzip-compressed script behind a short
``-EncodedCommand`` bootstrap and split a batch that would still not fit; SSM sends the script
itself.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import json
import secrets
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from pytest_drcheck.durations import format_duration
from pytest_drcheck.targets.result import NOT_RUN_STATUS, TIMEOUT_STATUS, CommandResult

__all__ = ["COMMAND_LINE_LIMIT", "batch_script", "command_line", "parse_batch_output",
           "ps_quote", "run_batch", "split_to_fit"]

# cmd.exe's longest command line: OpenSSH for Windows and WinRS start commands through it.
COMMAND_LINE_LIMIT = 8191
SCRIPT_SLACK_SECONDS = 5.0
# PowerShell reads these as single quotes too (its tokenizer's IsSingleQuote): a value holding
# one would end a literal quoted only for the ASCII quote.
_SINGLE_QUOTES = "'\u2018\u2019\u201a\u201b"

# One command, run in a pipeline of the pool: its output as text, its errors apart, and the
# status the Linux batch would give. Errors are records in the error stream (2>&1 merges them
# in order); CommandNotFoundException is the one that means "missing" (127).
_RUN_ONE = r"""param([string]$Text)
$ErrorActionPreference = 'Continue'
$global:LASTEXITCODE = 0
$state = @{ missing = $false; errors = 0; thrown = $false }
$out = New-Object System.Text.StringBuilder
$err = New-Object System.Text.StringBuilder
try {
  & ([scriptblock]::Create($Text)) 2>&1 | ForEach-Object {
    if ($_ -is [System.Management.Automation.ErrorRecord]) {
      $state.errors += 1
      if ($_.Exception -is [System.Management.Automation.CommandNotFoundException]) {
        $state.missing = $true }
      [void]$err.AppendLine(($_ | Out-String -Width 4096).Trim())
    } elseif ($_ -is [string]) { [void]$out.Append($_).Append("`n") }
    else { [void]$out.Append(($_ | Out-String -Width 4096)) }
  }
} catch {
  $state.thrown = $true
  if ($_.Exception -is [System.Management.Automation.CommandNotFoundException]) {
    $state.missing = $true }
  [void]$err.AppendLine($_.Exception.Message)
}
$rc = 0
if ($state.missing) { $rc = 127 }
elseif ($global:LASTEXITCODE) { $rc = [int]$global:LASTEXITCODE }
elseif ($state.thrown -or $state.errors) { $rc = 1 }
@{ out = $out.ToString(); err = $err.ToString(); rc = $rc }
"""

_MAIN = r"""$utf8 = New-Object System.Text.UTF8Encoding($false)
function Frame($i, $rc, $out, $err, $timedOut) {
  $o = [Convert]::ToBase64String($utf8.GetBytes([string]$out))
  $e = [Convert]::ToBase64String($utf8.GetBytes([string]$err))
  $t = if ($timedOut) { 'true' } else { 'false' }
  Write-Output ($token + ' {"i":' + [int]$i + ',"rc":' + [int]$rc + ',"out":"' + $o +
    '","err":"' + $e + '","timedOut":' + $t + '}')
}
$pool = [runspacefactory]::CreateRunspacePool(1, [Math]::Max(1, $commands.Count))
$pool.Open()
$running = @()
foreach ($text in $commands) {
  $ps = [powershell]::Create()
  $ps.RunspacePool = $pool
  [void]$ps.AddScript($runOne).AddArgument($text)
  $running += ,@($ps, $ps.BeginInvoke())
}
$deadline = [DateTime]::UtcNow.AddMilliseconds($timeoutMs)
for ($i = 0; $i -lt $running.Count; $i++) {
  $ps = $running[$i][0]; $handle = $running[$i][1]
  $left = [int][Math]::Max(0, ($deadline - [DateTime]::UtcNow).TotalMilliseconds)
  if ($handle.AsyncWaitHandle.WaitOne($left)) {
    try {
      $answer = $ps.EndInvoke($handle)
      $one = $answer[$answer.Count - 1]
      Frame $i $one.rc $one.out $one.err $false
    } catch { Frame $i 1 '' $_.Exception.Message $false }
  } else {
    try { [void]$ps.BeginStop($null, $null) } catch { }
    Frame $i 124 '' '' $true
  }
}
exit 0
"""


def ps_quote(value: str) -> str:
    """``value`` as a PowerShell single-quoted literal: nothing in it is interpolated, every
    kind of single quote doubled. NUL cannot be passed through a script: ValueError."""
    if "\0" in value:
        raise ValueError("a PowerShell literal cannot hold a NUL character")
    return "'" + "".join(c * 2 if c in _SINGLE_QUOTES else c for c in value) + "'"


def batch_script(commands: Sequence[str], timeout: float, token: str) -> str:
    milliseconds = max(1000, round(timeout * 1000))
    listed = ",\n  ".join(ps_quote(command) for command in commands)
    return (f"$ErrorActionPreference = 'Stop'\n$ProgressPreference = 'SilentlyContinue'\n"
            f"$token = {ps_quote(token)}\n$timeoutMs = {milliseconds}\n"
            f"$commands = @(\n  {listed}\n)\n"
            f"$runOne = @'\n{_RUN_ONE}'@\n{_MAIN}")


def command_line(script: str) -> str:
    """A cmd.exe/CreateProcess command line that runs ``script`` in Windows PowerShell: a short
    bootstrap, as -EncodedCommand, that inflates the gzip-compressed script and runs it."""
    packed = base64.b64encode(gzip.compress(script.encode("utf-8"), mtime=0)).decode("ascii")
    bootstrap = (
        f"$z = New-Object IO.Compression.GZipStream((New-Object IO.MemoryStream(,"
        f"[Convert]::FromBase64String('{packed}'))), [IO.Compression.CompressionMode]::"
        "Decompress); $s = (New-Object IO.StreamReader($z, [Text.Encoding]::UTF8)).ReadToEnd();"
        " & ([scriptblock]::Create($s))")
    encoded = base64.b64encode(bootstrap.encode("utf-16-le")).decode("ascii")
    return f"powershell -NoProfile -NonInteractive -EncodedCommand {encoded}"


def split_to_fit(commands: Sequence[str], fits: Callable[[Sequence[str]], bool]
                 ) -> list[list[str]]:
    """``commands`` in consecutive parts that each ``fits`` (halving until they do); a single
    command that does not fit on its own is a part of its own (its run reports it)."""
    if len(commands) <= 1 or fits(commands):
        return [list(commands)]
    middle = len(commands) // 2
    return (split_to_fit(commands[:middle], fits) + split_to_fit(commands[middle:], fits))


def parse_batch_output(commands: Sequence[str], stdout: str, token: str) -> list[CommandResult]:
    """One result per command, from the token lines; a command whose line is missing or cut
    (an output limit) is not run (125), never an empty success."""
    found: dict[int, CommandResult] = {}
    for line in stdout.splitlines():
        head, _, body = line.strip().partition(" ")
        if head != token:
            continue
        try:
            frame = json.loads(body)
            index, status = int(frame["i"]), int(frame["rc"])
            out = base64.b64decode(str(frame["out"]), validate=True)
            err = base64.b64decode(str(frame["err"]), validate=True)
            timed_out = frame["timedOut"] is True
        except (ValueError, KeyError, TypeError, binascii.Error):
            continue
        if 0 <= index < len(commands):
            found[index] = CommandResult(
                commands[index], TIMEOUT_STATUS if timed_out else status,
                out.decode("utf-8", "replace"), err.decode("utf-8", "replace"),
                timed_out=timed_out or status == TIMEOUT_STATUS)
    return [found.get(i) or CommandResult.not_run(command, "no output came back from the batch")
            for i, command in enumerate(commands)]


def new_token() -> str:
    return "DRC" + secrets.token_hex(8)


def run_batch(run: Callable[[str, float], CommandResult], host: str, commands: Sequence[str],
              timeout: float, limit: int = COMMAND_LINE_LIMIT) -> list[CommandResult]:
    """Every command through ``run`` (a command line runner: ssh exec or WinRS), in as few
    PowerShell starts as the command-line limit allows, the parts at the same time."""
    if not commands:
        return []

    # One token for every part: the length checked is the length sent (gzip's output depends
    # on every character).
    token = new_token()

    def fits(part: Sequence[str]) -> bool:
        return len(command_line(batch_script(part, timeout, token))) <= limit

    parts = split_to_fit(commands, fits)
    with ThreadPoolExecutor(max_workers=min(len(parts), 4)) as pool:
        answers = list(pool.map(lambda part: _run_part(run, part, timeout, token, limit),
                                parts))
    return [result.on(host, timeout) for answer in answers for result in answer]


def _run_part(run: Callable[[str, float], CommandResult], commands: Sequence[str],
              timeout: float, token: str, limit: int) -> list[CommandResult]:
    line = command_line(batch_script(commands, timeout, token))
    if len(line) > limit:
        why = (f"the command is too long for one Windows command line ({len(line)} > {limit} "
               "characters)")
        return [CommandResult.not_run(command, why) for command in commands]
    whole = run(line, timeout + SCRIPT_SLACK_SECONDS)
    if whole.timed_out:
        why = (f"the PowerShell batch of {len(commands)} commands timed out after "
               f"{format_duration(timeout + SCRIPT_SLACK_SECONDS)}")
        return [CommandResult.not_run(command, why, timed_out=True) for command in commands]
    results = parse_batch_output(commands, whole.stdout, token)
    if all(result.exit_status == NOT_RUN_STATUS and result.batch_failed for result in results):
        detail = " ".join(whole.stderr.split())[:200] or f"exit {whole.exit_status}"
        why = f"the PowerShell batch gave no result (exit {whole.exit_status}): {detail}"
        return [CommandResult.not_run(command, why) for command in commands]
    return results


def lookup_command(name: str) -> str:
    """The addresses ``name`` has on a Windows host, as its resolver answers (hosts file, DNS):
    one per line, in the resolver's order."""
    return (f"[System.Net.Dns]::GetHostAddresses({ps_quote(name)}) | "
            "ForEach-Object { $_.IPAddressToString }")


def parse_lookup(name: str, host: str, result: CommandResult, timeout: float
                 ) -> tuple[str, ...]:
    """The addresses ``lookup_command`` printed; else NameNotResolved naming the cause."""
    from pytest_drcheck.targets.names import NameNotResolved, is_address

    if result.timed_out:
        raise NameNotResolved(name, host, f"the lookup timed out after "
                                          f"{format_duration(timeout)}")
    if result.batch_failed or result.exit_status != 0:
        detail = " ".join(result.stderr.split())[:200] or f"exit {result.exit_status}"
        raise NameNotResolved(name, host, f"Dns.GetHostAddresses: {detail}")
    addresses: list[str] = []
    for line in result.stdout.splitlines():
        address = line.strip()
        if is_address(address) and address not in addresses:
            addresses.append(address)
    if not addresses:
        raise NameNotResolved(name, host, "Dns.GetHostAddresses returned no address")
    return tuple(addresses)


def encoded_command(script: str) -> str:
    """A short ``script`` as a command line that cmd.exe and PowerShell both run the same way
    (OpenSSH's and WinRS's cmd.exe; SSM's PowerShell runs it as a program)."""
    encoded = base64.b64encode(script.encode("utf-16-le")).decode("ascii")
    return f"powershell -NoProfile -NonInteractive -EncodedCommand {encoded}"
