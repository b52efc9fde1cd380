"""ssm: commands through AWS Systems Manager Run Command (no inbound port on the instance).

connect() waits, up to the connection's connect_timeout, for the instance's SSM agent to be
registered and online (DescribeInstanceInformation). run() sends one AWS-RunShellScript
command, polls GetCommandInvocation until it ends or its deadline passes (then cancels it), and
maps the invocation to a CommandResult: Success/Failed -> the script's exit code, execution
timed out -> 124 and timed_out, undeliverable/cancelled -> TargetError. run_batch() sends every
command of the host as one script (one Run Command per host, as one exec over SSH); since Run
Command returns at most 24,000 characters of output inline, a batch whose output was cut is
re-sent in halves for the commands whose results did not come back.

There is no TCP stream over Run Command: socket-level checks need ssh (directly or through an
SSM port-forwarding session) and say so.
"""

from __future__ import annotations

import math
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from pytest_drcheck.durations import format_duration
from pytest_drcheck.targets import powershell_batch
from pytest_drcheck.targets.base import CommandResult, Stream, Target, TargetError
from pytest_drcheck.targets.batch import (
    SCRIPT_SLACK_SECONDS,
    batch_script,
    parse_batch_output,
    script_failure,
)
from pytest_drcheck.targets.result import TIMEOUT_STATUS

DOCUMENT = "AWS-RunShellScript"
# Windows hosts (inventory platform: windows): the script is a PowerShell batch.
WINDOWS_DOCUMENT = "AWS-RunPowerShellScript"
# GetCommandInvocation returns at most this many characters of stdout (stderr: 8,000).
STDOUT_LIMIT = 24000
# Run Command's delivery timeout cannot be below 30 s.
MIN_DELIVERY_TIMEOUT = 30
_RUNNING = {"Pending", "InProgress", "Delayed", "Cancelling"}


@dataclass(frozen=True)
class SsmSettings:
    name: str
    instance_id: str
    # ``call(operation, **params)`` -> response mapping; raises an exception with a one-line
    # message for AWS failures (AwsClients.call bound to "ssm").
    call: Callable[..., Any]
    connect_timeout: float = 5.0
    poll_initial: float = 0.25
    poll_max: float = 2.0
    # What the inventory says the instance runs; the agent's PlatformType must agree.
    platform: str = "linux"


def _status_key(text: str) -> str:
    return text.replace(" ", "").lower()


class SsmTarget(Target):
    def __init__(self, settings: SsmSettings) -> None:
        super().__init__(settings.name)
        self.settings = settings
        self.platform = settings.platform
        self.document = WINDOWS_DOCUMENT if settings.platform == "windows" else DOCUMENT
        self._online = False
        self._lock = threading.Lock()

    @property
    def vantage(self) -> str:
        return f"{self.name} (ssm {self.settings.instance_id})"

    # --- connection ------------------------------------------------------------------------

    def connect(self) -> None:
        with self._lock:
            if self._online:
                return
            self._wait_for_agent()
            self._online = True

    def _wait_for_agent(self) -> None:
        instance_id = self.settings.instance_id
        deadline = time.monotonic() + self.settings.connect_timeout
        delay = self.settings.poll_initial
        seen = "not registered with Systems Manager"
        while True:
            info = self._call("describe_instance_information",
                              Filters=[{"Key": "InstanceIds", "Values": [instance_id]}])
            entries = info.get("InstanceInformationList", [])
            if entries:
                entry = entries[0]
                windows = entry.get("PlatformType") == "Windows"
                if windows != (self.platform == "windows"):
                    runs = "Windows" if windows else entry.get("PlatformType", "not Windows")
                    raise TargetError(
                        f"{instance_id} runs {runs} but the inventory says platform: "
                        f"{self.platform} ({self.document}); set the host's platform to "
                        f"{'windows' if windows else 'linux'}")
                status = entry.get("PingStatus", "unknown")
                if status == "Online":
                    return
                seen = f"registered but its ping status is {status}"
            if time.monotonic() + delay > deadline:
                raise TargetError(
                    f"the SSM agent of {instance_id} is {seen} after "
                    f"{format_duration(self.settings.connect_timeout)}: the instance needs a "
                    "running SSM agent, an instance profile allowing Systems Manager "
                    "(AmazonSSMManagedInstanceCore) and a route to the SSM endpoints; raise "
                    "connection.connect_timeout if it is still booting")
            time.sleep(delay)
            delay = min(delay * 2, self.settings.poll_max)

    def _call(self, operation: str, **params: Any) -> Any:
        try:
            return self.settings.call(operation, **params)
        except TargetError:
            raise
        except Exception as exc:  # AwsError and friends: one line already
            raise TargetError(f"Systems Manager: {exc}") from None

    # --- commands --------------------------------------------------------------------------

    def run(self, command: str, timeout: float) -> CommandResult:
        result, _ = self._invoke(command, timeout)
        return result.on(self.name, timeout)

    def _invoke(self, command: str, timeout: float) -> tuple[CommandResult, bool]:
        """(result, stdout truncated by Run Command's inline limit)."""
        self.connect()
        instance_id = self.settings.instance_id
        seconds = max(1, math.ceil(timeout))
        sent = self._call(
            "send_command", InstanceIds=[instance_id], DocumentName=self.document,
            Comment="pytest-drcheck",
            TimeoutSeconds=max(MIN_DELIVERY_TIMEOUT, seconds),
            Parameters={"commands": [command], "executionTimeout": [str(seconds)]})
        command_id = str(sent["Command"]["CommandId"])
        deadline = time.monotonic() + timeout
        delay = self.settings.poll_initial
        while True:
            time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 2, self.settings.poll_max)
            invocation = self._poll(command_id)
            status = str(invocation.get("Status", "Pending")) if invocation else "Pending"
            if status not in _RUNNING:
                return self._result(command, invocation or {}, status)
            if time.monotonic() >= deadline:
                self._cancel(command_id)
                return CommandResult(command, TIMEOUT_STATUS, "", (
                    f"Run Command {command_id} still {status} after "
                    f"{format_duration(timeout)}; cancelled"), timed_out=True), False

    def _poll(self, command_id: str) -> Any:
        try:
            return self.settings.call("get_command_invocation", CommandId=command_id,
                                      InstanceId=self.settings.instance_id)
        except Exception as exc:
            # Right after SendCommand the invocation may not exist yet (eventual consistency).
            if getattr(exc, "code", "") == "InvocationDoesNotExist":
                return None
            raise TargetError(f"Systems Manager: {exc}") from None

    def _cancel(self, command_id: str) -> None:
        try:
            self.settings.call("cancel_command", CommandId=command_id,
                               InstanceIds=[self.settings.instance_id])
        except Exception:  # best effort: the execution timeout stops it on the instance too
            return

    def _result(self, command: str, invocation: Any, status: str
                ) -> tuple[CommandResult, bool]:
        details = _status_key(str(invocation.get("StatusDetails", status)))
        stdout = str(invocation.get("StandardOutputContent", ""))
        stderr = str(invocation.get("StandardErrorContent", ""))
        code = int(invocation.get("ResponseCode", -1))
        truncated = len(stdout) >= STDOUT_LIMIT
        instance_id = self.settings.instance_id
        if status == "Success":
            return CommandResult(command, max(code, 0), stdout, stderr), truncated
        if status == "TimedOut" and details != "deliverytimedout":
            return CommandResult(command, TIMEOUT_STATUS, stdout, stderr,
                                 timed_out=True), truncated
        if details in ("undeliverable", "deliverytimedout", "terminated") or (
                status == "TimedOut"):
            raise TargetError(f"Run Command could not run on {instance_id} "
                              f"({invocation.get('StatusDetails', status)}): is its SSM agent "
                              "online?")
        if status in ("Cancelled",):
            raise TargetError(f"Run Command on {instance_id} was cancelled")
        # Failed: the script ran and exited non-zero (or the agent failed to start it).
        return CommandResult(command, code if code > 0 else 125, stdout,
                             stderr or f"Run Command: {invocation.get('StatusDetails', status)}"
                             ), truncated

    def run_batch(self, commands: list[str], timeout: float) -> list[CommandResult]:
        if not commands:
            return []
        results = self._batch(commands, timeout,
                              time.monotonic() + timeout + SCRIPT_SLACK_SECONDS)
        return [result.on(self.name, timeout) for result in results]

    def _batch(self, commands: list[str], timeout: float, deadline: float
               ) -> list[CommandResult]:
        token = "DRC" + secrets.token_hex(8)
        remaining = max(1.0, deadline - time.monotonic())
        script_of, parse = batch_script, parse_batch_output
        if self.platform == "windows":
            script_of, parse = powershell_batch.batch_script, powershell_batch.parse_batch_output
        whole, truncated = self._invoke(script_of(commands, timeout, token), remaining)
        if whole.timed_out:
            why = f"the batch of {len(commands)} commands timed out on Run Command"
            return [CommandResult.not_run(c, why, timed_out=True) for c in commands]
        failure = script_failure(whole, token) if self.platform != "windows" else None
        if failure is not None:
            return [CommandResult.not_run(c, failure) for c in commands]
        stdout = whole.stdout
        if truncated:
            # The last line may be a cut frame whose base64 still decodes: never parse it.
            stdout = stdout[:stdout.rfind("\n") + 1]
        results = parse(commands, stdout, token)
        if not truncated:
            return results
        missing = [i for i, result in enumerate(results) if result.batch_failed]
        if not missing:
            return results
        if len(commands) == 1:
            return [CommandResult.not_run(commands[0], (
                f"the output is larger than Run Command's {STDOUT_LIMIT}-character inline "
                "limit; reach this host over ssh for this check"))]
        # Re-send what did not come back, in halves, at the same time.
        rest = [commands[i] for i in missing]
        halves = [rest[:len(rest) // 2], rest[len(rest) // 2:]] if len(rest) > 1 else [rest]
        with ThreadPoolExecutor(max_workers=len(halves)) as pool:
            parts = list(pool.map(lambda part: self._batch(part, timeout, deadline), halves))
        again = iter(r for part in parts for r in part)
        for index in missing:
            results[index] = next(again)
        return results

    def open_stream(self, host: str, port: int, timeout: float) -> Stream:
        raise TargetError(
            f"{self.name} is reached over SSM Run Command, which cannot open a TCP stream from "
            f"the instance (to {host}:{port}); this check needs connection type ssh (directly "
            "or through an SSM port-forwarding session)")

    def close(self) -> None:
        with self._lock:
            self._online = False
