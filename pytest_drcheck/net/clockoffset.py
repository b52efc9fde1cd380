"""Another machine's clock against ours, NTP-style, over one channel that stays open.

Each sample is one exchange: we note our time, send a newline, the host prints its clock,
we note our time again. Read in the middle of that round trip, the host's reading is
compared with the *midpoint* of our send and receive (NTP's on-wire rule), so the travel
time cancels out instead of making every reading look late; what is left is at most half
the round trip, the sample's uncertainty. Of several samples the one with the smallest round
trip is the best (NTP's clock filter): a sample delayed by a busy scheduler is simply not
chosen.

A fresh command per sample would pay a whole session setup (~140 ms on an idle loopback,
seconds on a loaded runner) inside the round trip, and place the reading late in it: that
is the +277 ms bias this replaces. Here one small shell loop on the host answers each
newline, so a sample costs one channel round trip.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pytest_drcheck.targets.base import Stream

# At most this many answers per sampler (the loop also ends at end of input).
MAX_SAMPLES = 64
# A shell builtin clock needs no fork per sample: bash 5's $EPOCHREALTIME (microseconds).
# Without bash (or an older one) `date` answers; a date without %N prints whole seconds.
_LOOP = ("n=0; while [ $n -lt {limit} ] && read -r _; do n=$((n+1)); {read}; done")
_BASH_READ = ('if [ -n "${{EPOCHREALTIME:-}}" ]; then echo "$EPOCHREALTIME"; '
              'else date -u +%s.%N; fi')
_DATE_READ = "date -u +%s.%N"
SAMPLER_COMMAND = (
    "LC_ALL=C; export LC_ALL; "
    "if command -v bash >/dev/null 2>&1; then exec bash -c "
    + shlex.quote(_LOOP.format(limit=MAX_SAMPLES, read=_BASH_READ.format())) + "; fi; "
    + _LOOP.format(limit=MAX_SAMPLES, read=_DATE_READ))
# The same reading as one whole command (for targets that cannot keep a process open).
SAMPLE_COMMAND = "date -u +%s.%N"


class SamplerError(Exception):
    """The host's clock could not be read; the message is the cause, one line."""


@dataclass(frozen=True)
class ClockSample:
    """One exchange. Times are seconds since the epoch; ``ours`` on our clock."""

    sent: float
    received: float
    theirs: float
    # Extra uncertainty of the host's reading (half a second for a whole-second clock).
    resolution: float = 0.0

    @property
    def round_trip(self) -> float:
        return self.received - self.sent

    @property
    def offset(self) -> float:
        """Their clock minus ours, read against the midpoint of the round trip."""
        return self.theirs - (self.sent + self.received) / 2

    @property
    def uncertainty(self) -> float:
        return self.round_trip / 2 + self.resolution


@dataclass(frozen=True)
class ClockOffset:
    """The best sample's offset (their clock minus ours) and uncertainty, and how many
    samples it was chosen from."""

    offset: float
    uncertainty: float
    round_trip: float
    samples: int


def best_of(samples: Sequence[ClockSample]) -> ClockOffset:
    """The estimate from the sample with the smallest uncertainty (shortest round trip)."""
    if not samples:
        raise ValueError("no samples")
    best = min(samples, key=lambda s: s.uncertainty)
    return ClockOffset(best.offset, best.uncertainty, best.round_trip, len(samples))


def parse_reading(text: str) -> tuple[float, float] | None:
    """(host time, extra uncertainty) from ``date -u +%s.%N`` or ``$EPOCHREALTIME``; a
    date without %N (busybox) prints whole seconds, worth half a second of uncertainty."""
    text = text.strip().replace(",", ".")  # a locale's decimal comma
    try:
        return float(text), 0.0
    except ValueError:
        pass
    head = text.split(".")[0]
    return (float(head) + 0.5, 0.5) if head.isdigit() else None


class Clock:
    """Our wall clock, stepped with the monotonic clock from one reading: a round trip is
    never stretched or shrunk by a clock step on this machine during the measurement."""

    def __init__(self) -> None:
        self._wall = time.time()
        self._mono = time.monotonic()

    def now(self) -> float:
        return self._wall + (time.monotonic() - self._mono)


class LineReader:
    """Lines from a stream, each within a deadline."""

    def __init__(self, stream: Stream) -> None:
        self._stream = stream
        self._buffer = b""

    def line(self, deadline: float) -> str:
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            self._stream.settimeout(left)
            chunk = self._stream.recv(4096)
            if not chunk:
                raise EOFError
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode("ascii", "replace")


def sample_stream(stream: Stream, deadline: float,
                  enough: Callable[[Sequence[ClockSample]], bool],
                  clock: Clock | None = None) -> list[ClockSample]:
    """Samples from a running sampler (SAMPLER_COMMAND) until ``enough(samples)``, its
    MAX_SAMPLES or the deadline; at least one, or SamplerError."""
    clock = clock or Clock()
    reader = LineReader(stream)
    samples: list[ClockSample] = []
    while len(samples) < MAX_SAMPLES and time.monotonic() < deadline:
        sent = clock.now()
        try:
            stream.sendall(b"\n")
            text = reader.line(deadline)
        except TimeoutError:
            if samples:
                break
            raise SamplerError("the host's clock did not answer in time") from None
        except EOFError:
            raise SamplerError("the clock sampler ended without answering") from None
        except ConnectionError as exc:  # the connection under the channel, not the sampler
            raise SamplerError(str(exc)) from None
        except OSError as exc:
            raise SamplerError(f"the clock sampler's channel failed: {exc}") from None
        received = clock.now()
        reading = parse_reading(text)
        if reading is None:
            raise SamplerError(f"the host printed {text.strip()[:40]!r}, not a time")
        samples.append(ClockSample(sent, received, *reading))
        if enough(samples):
            break
    if not samples:
        raise SamplerError("no time left to sample the host's clock")
    return samples


def sample_commands(run: Callable[[str, float], tuple[int, str, str, bool]], count: int,
                    deadline: float, clock: Clock | None = None) -> list[ClockSample]:
    """Samples taken one whole command each (targets that cannot keep a process open).
    ``run(command, timeout)`` returns (exit status, stdout, stderr, timed out)."""
    clock = clock or Clock()
    samples: list[ClockSample] = []
    while len(samples) < count:
        left = deadline - time.monotonic()
        if left <= 0.5:
            break
        sent = clock.now()
        status, out, err, timed_out = run(SAMPLE_COMMAND, left)
        received = clock.now()
        if timed_out:
            if samples:
                break
            raise SamplerError(f"`{SAMPLE_COMMAND}` timed out")
        if status != 0:
            lines = err.strip().splitlines() or [f"exit {status}"]
            raise SamplerError(f"`{SAMPLE_COMMAND}` failed: {lines[-1][:100]}")
        reading = parse_reading(out)
        if reading is None:
            raise SamplerError(f"`{SAMPLE_COMMAND}` printed {out.strip()[:40]!r}, not a time")
        samples.append(ClockSample(sent, received, *reading))
    if not samples:
        raise SamplerError("no time left to sample the host's clock")
    return samples
