"""Channels over one SSH transport: opening them with their own refusal reason, and late ones."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any

import paramiko
from paramiko.common import MSG_CHANNEL_OPEN_FAILURE, MSG_CHANNEL_OPEN_SUCCESS

from pytest_drcheck.targets.ssh.errors import OpenRejected, OpenTimedOut, TransportGone

# Parent of the per-host loggers: pytest_drcheck.ssh.<host>.
LOG_CHANNEL = "pytest_drcheck.ssh"
# How paramiko's transport words the failures that reach the caller as TargetError/StreamError.
_REPORTED_BY_THE_TARGET = ("Exception (client)", "Socket exception", "Secsh channel ")


def transport_factory(host: str) -> Callable[..., TrackingTransport]:
    """What SSHClient.connect calls to build the transport of ``host``."""

    def build(*args: Any, **kwargs: Any) -> TrackingTransport:
        return TrackingTransport(*args, host=host, **kwargs)

    return build


class TrackingTransport(paramiko.Transport):
    """paramiko's Transport, keeping each refused channel's reason for the thread that asked.

    paramiko drops the server's text ("Connection refused", "No route to host") that tells the
    network outcomes apart, and hands a refusal to whichever concurrent opener looks first. Here
    the text is kept per channel id, and the opener finds its own by the id it was given. A
    channel whose open timed out is closed if the server confirms it later, so the host does not
    keep the TCP connection its sshd made for us.
    """

    def __init__(self, *args: Any, host: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # One log channel per host, so that a record can be told apart from other hosts'.
        self.set_log_channel(f"{LOG_CHANNEL}.{host or 'unnamed'}")
        self._drc_opener = threading.local()
        self._drc_rejected: dict[int, tuple[int, str]] = {}
        self._drc_abandoned: dict[int, paramiko.Channel] = {}
        # Channels whose open timed out here and that the server confirmed afterwards.
        self._drc_opened_late: set[int] = set()
        # paramiko (3.4+) builds this table per instance precisely so that subclasses can hook
        # messages. Were it shared by the class, refusals would only lose their reason text.
        handlers: dict[int, Callable[[paramiko.Message], None]] | None = (
            vars(self).get("_handler_table"))
        if handlers is None:
            return
        self._drc_parent_success = handlers[MSG_CHANNEL_OPEN_SUCCESS]
        self._drc_parent_failure = handlers[MSG_CHANNEL_OPEN_FAILURE]
        handlers[MSG_CHANNEL_OPEN_SUCCESS] = self._drc_open_success
        handlers[MSG_CHANNEL_OPEN_FAILURE] = self._drc_open_failure

    def _log(self, level: int, msg: Any, *args: Any) -> None:
        """paramiko's logging, minus what the target reports itself.

        The transport thread logs a failed connection (``Error reading SSH protocol banner``,
        a reset socket) as ERROR followed by its traceback, line by line, and every refused
        channel as ERROR; the target turns each into one TargetError or StreamError line. With
        no logging configured, Python would print those records on stderr; under pytest they
        landed in other tests' reports. Kept, at levels nobody sees by default.
        """
        if isinstance(msg, list):  # a traceback
            level = min(level, logging.DEBUG)
        elif level >= logging.WARNING and isinstance(msg, str) and msg.startswith(
                _REPORTED_BY_THE_TARGET):
            level = logging.INFO
        super()._log(level, msg, *args)  # type: ignore[misc]

    def _next_channel(self) -> int:
        # Called by open_channel in the opening thread, under self.lock.
        chanid: int = super()._next_channel()  # type: ignore[misc]
        self._drc_opener.chanid = chanid
        return chanid

    def open_tracked(self, kind: str, dest: tuple[str, int] | None, timeout: float
                     ) -> paramiko.Channel:
        self._drc_opener.chanid = None
        try:
            if dest is None:
                return self.open_channel(kind, timeout=timeout)
            return self.open_channel(kind, dest, ("127.0.0.1", 0), timeout=timeout)
        except paramiko.SSHException as exc:
            chanid: int | None = self._drc_opener.chanid
            with self.lock:
                rejected = self._drc_rejected.pop(chanid, None) if chanid is not None else None
            if rejected is not None:
                raise OpenRejected(*rejected) from None
            if not self.is_active():
                raise TransportGone(str(exc)) from None
            if chanid is not None and "Timeout opening channel" in str(exc):
                self._abandon(chanid)
                raise OpenTimedOut(lambda: self._drc_was_opened_late(chanid)) from None
            raise
        except (EOFError, OSError) as exc:
            # paramiko re-raises the transport's own end (the socket closed, or the kernel
            # gave up on an unacknowledged peer) when it dies during the open.
            if not self.is_active():
                raise TransportGone(str(exc) or type(exc).__name__) from None
            raise

    def _abandon(self, chanid: int) -> None:
        """Remember a channel whose open timed out, so a late confirmation closes it.

        paramiko keeps channels only weakly; the Channel is still alive here because the
        timeout's traceback holds open_channel's frame. Holding it keeps it findable.
        """
        with self.lock:
            chan = self._channels.get(chanid)  # type: ignore[attr-defined]
            if chan is not None:
                self._drc_abandoned[chanid] = chan
        # The confirmation may have arrived between paramiko's timeout and the lock above.
        if chan is not None and chan.active:
            self._drc_close_late(chanid)

    def _drc_was_opened_late(self, chanid: int) -> bool:
        with self.lock:
            return chanid in self._drc_opened_late

    def _drc_close_late(self, chanid: int) -> None:
        with self.lock:
            chan = self._drc_abandoned.pop(chanid, None)
            if chan is not None:
                self._drc_opened_late.add(chanid)
        if chan is not None:
            # Closing sends a message, which must not happen on the transport's own thread.
            threading.Thread(target=close_quietly, args=(chan,), daemon=True,
                             name="drcheck-close-late").start()

    def _drc_open_success(self, m: paramiko.Message) -> None:
        chanid = m.get_int()
        m.rewind()
        self._drc_parent_success(m)
        self._drc_close_late(chanid)  # does nothing unless the channel was abandoned

    def _drc_open_failure(self, m: paramiko.Message) -> None:
        chanid, code, text = m.get_int(), m.get_int(), m.get_text()
        m.rewind()
        with self.lock:
            if self._drc_abandoned.pop(chanid, None) is None:
                self._drc_rejected[chanid] = (code, text)
        self._drc_parent_failure(m)


def close_quietly(chan: paramiko.Channel) -> None:
    """Close a late channel. Its connection may be closing too (the drill ending): then the
    close has nothing to send, and a traceback from a background thread would tell the user
    nothing."""
    with contextlib.suppress(EOFError, OSError, paramiko.SSHException):
        chan.close()
