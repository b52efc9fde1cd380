"""Windows observers: each produces the same typed value as its family's Linux observer, so the
family's judge is shared. Commands are PowerShell, run in the host's PowerShell batch
(``targets.powershell_batch``); a command sets a status the family reads with
``$global:LASTEXITCODE = N``, as a shell command exits N."""
