"""winrm: commands on a Windows host through WinRM (WS-Management), with pypsrp.

Each run is a WinRS cmd shell (Create), one command (Command), Receive polls until it is done
or its deadline passes (then Signal terminate), and Delete: plain WS-Man SOAP. The host's checks
go out as one PowerShell batch (``powershell_batch``), started through that command line.

HTTPS on port 5986 unless ``scheme: http`` (5985); the server certificate is validated against
the system's CAs, or ``ca_file``, unless ``cert_validation: false``. Authentication is what
pypsrp supports (negotiate, the default, ntlm, kerberos, credssp, basic, certificate). pypsrp is
the ``windows`` extra: without it, connecting says how to install it.

There is no TCP stream from the host over WinRM: stream checks need ssh and say so.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pytest_drcheck.durations import format_duration
from pytest_drcheck.inventory.plan import HostSpec
from pytest_drcheck.targets.base import CommandResult, Stream, Target, TargetError
from pytest_drcheck.targets.result import TIMEOUT_STATUS

DEFAULT_PORTS = {"https": 5986, "http": 5985}
_MISSING = ("connection type winrm needs pypsrp, in the windows extra: "
            "pip install 'pytest-drcheck[windows]'")
# How long one Receive waits on the host for output before answering (WS-Man OperationTimeout).
_RECEIVE_SECONDS = 1
_DONE = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandState/Done"
_TERMINATE = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/signal/terminate"


@dataclass(frozen=True)
class WinrmSettings:
    name: str
    address: str
    user: str
    # Resolves the secret when connecting (never stored resolved here).
    password: Callable[[], str] | None = None
    port: int | None = None
    scheme: str = "https"
    auth: str = "negotiate"
    # True: the system's CAs; a path: that CA bundle; False: no validation (said so).
    cert_validation: bool | str = True
    connect_timeout: float = 5.0
    path: str = "wsman"

    @property
    def effective_port(self) -> int:
        return self.port if self.port is not None else DEFAULT_PORTS[self.scheme]


class WinrmTarget(Target):
    platform = "windows"

    def __init__(self, settings: WinrmSettings) -> None:
        super().__init__(settings.name)
        self.settings = settings
        self._wsman: Any = None
        self._lock = threading.Lock()

    @property
    def vantage(self) -> str:
        s = self.settings
        unchecked = ", certificate not validated" if s.cert_validation is False else ""
        return (f"{self.name} (winrm {s.scheme}://{s.user}@{s.address}:{s.effective_port}"
                f"{unchecked})")

    def connect(self) -> None:
        with self._lock:
            if self._wsman is not None:
                return
            wsman = self._new_wsman()
            # One empty shell opened and closed: proves the endpoint, TLS and credentials.
            self._guarded(lambda: self._open_and_close(wsman), "connecting")
            self._wsman = wsman

    def _new_wsman(self) -> Any:
        try:
            from pypsrp.wsman import WSMan
        except ImportError:
            raise TargetError(_MISSING) from None
        s = self.settings
        try:
            password = s.password() if s.password is not None else None
        except Exception as exc:  # SecretError and the aws resolvers': one line already
            raise TargetError(f"winrm password of {self.name}: {exc}") from None
        seconds = max(1, math.ceil(s.connect_timeout))
        try:
            return WSMan(s.address, port=s.effective_port, username=s.user, password=password,
                         ssl=s.scheme == "https", path=s.path, auth=s.auth,
                         # pypsrp hands it to requests' verify: a CA bundle path works too.
                         cert_validation=s.cert_validation,  # type: ignore[arg-type]
                         connection_timeout=seconds,
                         read_timeout=seconds + 2 * _RECEIVE_SECONDS + 30,
                         operation_timeout=20)
        except ValueError as exc:  # an auth/scheme combination pypsrp refuses
            raise TargetError(f"winrm settings of {self.name}: {exc}") from None

    @staticmethod
    def _open_and_close(wsman: Any) -> None:
        from pypsrp.shell import WinRS

        shell = WinRS(wsman)
        shell.open()
        shell.close()

    def _guarded(self, action: Callable[[], Any], doing: str) -> Any:
        """``action()``, its transport and protocol failures as one-line TargetErrors."""
        import requests
        from pypsrp.exceptions import AuthenticationError, WinRMError, WSManFaultError

        where = f"{self.settings.address}:{self.settings.effective_port}"
        try:
            return action()
        except requests.exceptions.SSLError:
            raise TargetError(
                f"WinRM {doing} {where}: the server's TLS certificate is not trusted; give "
                "connection.ca_file (the CA that signed it)") from None
        except requests.exceptions.ConnectTimeout:
            raise TargetError(f"WinRM {doing} {where}: timed out after "
                              f"{format_duration(self.settings.connect_timeout)}") from None
        except requests.exceptions.ConnectionError:
            raise TargetError(f"WinRM {doing} {where}: connection refused or unreachable"
                              ) from None
        except requests.exceptions.Timeout:
            raise TargetError(f"WinRM {doing} {where}: no answer in time") from None
        except AuthenticationError:
            raise TargetError(f"WinRM {doing} {where}: authentication failed for "
                              f"{self.settings.user} ({self.settings.auth})") from None
        except WSManFaultError as exc:
            reason = " ".join(str(exc.reason or exc).split())[:200]
            raise TargetError(f"WinRM {doing} {where}: WS-Man fault {exc.code}: {reason}"
                              ) from None
        except WinRMError as exc:
            raise TargetError(f"WinRM {doing} {where}: {' '.join(str(exc).split())[:200]}"
                              ) from None

    def run(self, command: str, timeout: float) -> CommandResult:
        self.connect()
        result: CommandResult = self._guarded(lambda: self._run(command, timeout),
                                              "running a command on")
        return result.on(self.name, timeout)

    def _run(self, command: str, timeout: float) -> CommandResult:
        from pypsrp.shell import Process, WinRS

        deadline = time.monotonic() + timeout
        with WinRS(self._wsman) as shell:
            process = Process(shell, command)
            process.begin_invoke()
            while process.state != _DONE:
                if time.monotonic() >= deadline:
                    process.signal(_TERMINATE)
                    return CommandResult(
                        command, TIMEOUT_STATUS, _text(process.stdout), _text(process.stderr),
                        timed_out=True)
                process.poll_invoke(timeout=_RECEIVE_SECONDS)
        status = process.rc if process.rc is not None else 125
        return CommandResult(command, status, _text(process.stdout), _text(process.stderr))

    def open_stream(self, host: str, port: int, timeout: float) -> Stream:
        raise TargetError(
            f"{self.name} is reached over WinRM, which cannot open a TCP stream from the host "
            f"(to {host}:{port}); this check needs connection type ssh (OpenSSH for Windows)")

    def close(self) -> None:
        with self._lock:
            wsman, self._wsman = self._wsman, None
        if wsman is not None and getattr(wsman, "transport", None) is not None:
            session = getattr(wsman.transport, "session", None)
            if session is not None:
                session.close()


def _text(data: bytes) -> str:
    # The batch frames its output in ASCII (base64 in JSON); anything else is shown as is.
    return data.decode("utf-8", "replace")


def winrm_target(host: HostSpec) -> WinrmTarget:
    """The target of an inventory host with ``connection: {type: winrm}``."""
    connection = host.connection
    extra = connection.extra
    scheme = str(extra.get("scheme", "https"))
    validation: bool | str = True
    if "ca_file" in extra:
        validation = str(extra["ca_file"])
    if extra.get("cert_validation") is False:
        validation = False
    password = connection.password.resolve if connection.password is not None else None
    # ConnectionSpec's port defaults to ssh's 22: WinRM's own default unless another is given.
    port = connection.port if connection.port != 22 else None
    return WinrmTarget(WinrmSettings(
        name=host.name, address=host.address or "", user=connection.user, password=password,
        port=port, scheme=scheme, auth=str(extra.get("auth", "negotiate")),
        cert_validation=validation, connect_timeout=connection.connect_timeout))
