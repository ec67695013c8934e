"""PTT on RTS/DTR and squelch (COS) from CTS/DSR/DCD/RI of one serial port, shared by radios.

One physical port may serve several radios, as Dire Wolf allows: radio A keyed on RTS, radio B
keyed on DTR, radio C's COS on CTS. So there is one `SerialLines` per port, opened once, and
every line names the radio it belongs to.

Safety:
- Opening never keys: the port is made through the open seam (`serial_link.unopened_serial`)
  with both outputs preset to their inactive level, inversion included, so pyserial applies
  those levels as part of `open()` instead of the asserted default that keys most interfaces.
- Closing unkeys: every output is set inactive before the port closes. Linux drops RTS and DTR
  on the last close of a tty (HUPCL); for an inverted PTT (inactive = asserted) that drop would
  KEY the radio, so on a port with an inverted PTT HUPCL is cleared right after open. Right
  after open, not just before close: a crash closes the descriptor too, and the hang-up would
  then key the radio until `crosspatch unkey-all` runs.

Threading: reading modem status is a blocking ioctl (TIOCMGET) per line, and on a wedged USB
adapter it can stall; the `CosPoller` therefore runs in its own thread, never on the asyncio
loop or the engine thread, and hands changes out through a callback (the caller crosses into
its loop with `call_soon_threadsafe`). `set_line` is one quick ioctl as well; callers on the
asyncio loop run it with `asyncio.to_thread`. A lock serialises every use of the port so that
closing it never races a read onto a file descriptor number the kernel has already reused.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import termios
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import serial
import serial.rfc2217

from gateway.core.errors import UserError
from gateway.hardware.serial.link import unopened_serial

OutputLine = Literal["rts", "dtr"]
InputLine = Literal["cts", "dsr", "dcd", "ri"]
OUTPUT_LINES: tuple[OutputLine, ...] = ("rts", "dtr")
INPUT_LINES: tuple[InputLine, ...] = ("cts", "dsr", "dcd", "ri")

# A 2.5 ms poll sees a change within 2.5 ms, an eighth of a 20 ms frame: with the 5 ms debounce
# and up to one 20 ms tick, COS to PTT stays within 30 ms at the 95th percentile (bench/serial.py:
# 28 ms; a 5 ms poll gave 31 ms). A port's poll thread costs 1.7 % of a core (1.4 % at 5 ms).
DEFAULT_POLL_S = 0.0025
# Debounce: a level must hold this long before it counts. It rejects contact bounce of relay
# COS outputs and spikes that RF or a keying transmitter induce on long unshielded COS wires,
# each of which would otherwise start a call (and key every transmitter in the patch). The
# price is latency: a real change is reported debounce_s (+ up to one poll) late. 5 ms rejects
# relay bounce (1-3 ms) and keeps COS-to-PTT through the engine within 30 ms at the 95th
# percentile (bench/serial.py: 10 ms gave 32 ms); the report carries the time the change was
# first seen, so the engine's timing is not skewed by it.
DEFAULT_DEBOUNCE_S = 0.005
DEFAULT_BAUD = 9600

_log = logging.getLogger(__name__)


class SerialLinesError(UserError):
    """A serial modem-line problem, as one sentence naming the port and the reason."""


class SerialLinesClosed(SerialLinesError):
    """The port was closed by its owner (not lost): a poller stops quietly."""


@dataclass(frozen=True)
class PttLine:
    """A radio keyed by an output line; `invert`: the radio is keyed while the line is negated."""

    radio: str
    line: OutputLine
    invert: bool = False

    def level(self, active: bool) -> bool:
        """The line level (True = asserted) that puts this PTT in the given state."""
        return active != self.invert


@dataclass(frozen=True)
class CosLine:
    """A radio's squelch on an input line; `invert`: receiving while the line is negated."""

    radio: str
    line: InputLine
    invert: bool = False

    def active(self, level: bool) -> bool:
        return level != self.invert


class PortFactory(Protocol):
    """Makes an unopened port with RTS/DTR preset (the seam; tests record the levels)."""

    def __call__(
        self, url: str, baudrate: int, *, rts: bool = False, dtr: bool = False
    ) -> serial.Serial: ...


class HasFileno(Protocol):
    def fileno(self) -> int: ...


def keep_lines_after_close(port: HasFileno) -> bool:
    """Clear HUPCL so closing (or dying) does not drop RTS/DTR, which keys an inverted PTT.

    Returns False when there is no tty to hang up (pyserial URLs such as loop:// or
    rfc2217://). Raises OSError/termios.error if the tty refuses.
    """
    try:
        fd = port.fileno()
    except (OSError, ValueError):
        return False
    attributes = termios.tcgetattr(fd)
    if attributes[2] & termios.HUPCL:
        attributes[2] &= ~termios.HUPCL
        termios.tcsetattr(fd, termios.TCSANOW, attributes)
    return True


def _strerror(exc: BaseException) -> str:
    # termios.error carries (errno, text) in args without an errno attribute.
    code = getattr(exc, "errno", None)
    if code is None and exc.args and isinstance(exc.args[0], int):
        code = exc.args[0]
    if isinstance(code, int):
        return os.strerror(code)
    text = str(exc).strip().splitlines()
    # pyserial repeats "[Errno 2] could not open port X: [Errno 2] ...": keep the innermost.
    line = text[0] if text else type(exc).__name__
    return line.rsplit("] ", 1)[-1]


def _errno(exc: BaseException) -> int | None:
    code = getattr(exc, "errno", None)
    if code is None and exc.args and isinstance(exc.args[0], int):
        code = exc.args[0]
    return code if isinstance(code, int) else None


# The device has no modem control lines (a pty, some USB CDC gadgets); pyserial ignores these
# when it sets the lines at open, and so does close: there is no line that could key anything.
_NO_MODEM_LINES = frozenset({errno.ENOTTY, errno.EINVAL})
# The USB adapter was pulled or reset.
_GONE = frozenset({errno.EIO, errno.ENODEV, errno.ENXIO})


def _failure(url: str, exc: BaseException) -> str:
    code = _errno(exc)
    if code in _GONE:
        return (
            f"serial port {url} is gone ({_strerror(exc)}): the USB adapter was unplugged or reset"
        )
    if code in _NO_MODEM_LINES:
        return f"{url} has no modem control lines ({_strerror(exc)}): it is not a serial port"
    if isinstance(exc, serial.PortNotOpenError):
        return f"serial port {url} is not open"
    return f"serial port {url} failed: {_strerror(exc)}"


class SerialLines:
    """The modem lines of one serial port, for every radio wired to it."""

    def __init__(
        self,
        url: str,
        *,
        ptt: Sequence[PttLine] = (),
        cos: Sequence[CosLine] = (),
        baudrate: int = DEFAULT_BAUD,
        factory: PortFactory = unopened_serial,
    ) -> None:
        self.url = url
        self.baudrate = baudrate
        self._factory = factory
        self._ptt: dict[OutputLine, PttLine] = {}
        self._cos: dict[InputLine, CosLine] = {}
        for p in ptt:
            if p.line in self._ptt:
                raise SerialLinesError(
                    f"{p.line.upper()} of {url} keys both {self._ptt[p.line].radio} and {p.radio}"
                )
            self._ptt[p.line] = p
        for c in cos:
            if c.line in self._cos:
                raise SerialLinesError(
                    f"{c.line.upper()} of {url} is the squelch of both "
                    f"{self._cos[c.line].radio} and {c.radio}"
                )
            self._cos[c.line] = c
        # Lines no radio keys are held negated: the level a hang-up would leave anyway.
        self._idle: dict[OutputLine, bool] = {
            line: (self._ptt[line].level(False) if line in self._ptt else False)
            for line in OUTPUT_LINES
        }
        self._port: serial.Serial | None = None
        self._lock = threading.Lock()

    @property
    def ptt_lines(self) -> tuple[PttLine, ...]:
        return tuple(self._ptt.values())

    @property
    def cos_lines(self) -> tuple[CosLine, ...]:
        return tuple(self._cos.values())

    @property
    def is_open(self) -> bool:
        return self._port is not None

    def open(self) -> None:
        """Open the port with every PTT inactive from the first instant.

        Raises `SerialLinesError` with the reason if it cannot open.
        """
        with self._lock:
            if self._port is not None:
                return
            try:
                port = self._factory(
                    self.url, self.baudrate, rts=self._idle["rts"], dtr=self._idle["dtr"]
                )
                port.open()
            except (serial.SerialException, OSError, ValueError) as exc:
                raise SerialLinesError(f"cannot open {self.url}: {_strerror(exc)}") from None
            if any(p.invert for p in self._ptt.values()):
                try:
                    keep_lines_after_close(port)
                except (OSError, termios.error) as exc:
                    with contextlib.suppress(Exception):
                        port.close()
                    raise SerialLinesError(
                        f"cannot keep the lines of {self.url} set after close (HUPCL), "
                        f"which an inverted PTT needs: {_strerror(exc)}"
                    ) from None
            self._port = port

    def set_line(self, name: OutputLine, active: bool) -> None:
        """Key (active=True) or unkey the radio on output line `name`, inversion applied."""
        ptt = self._ptt.get(name)
        if ptt is None:
            keyed = ", ".join(line.upper() for line in self._ptt) or "none"
            raise SerialLinesError(
                f"{name.upper()} of {self.url} keys no radio (PTT lines here: {keyed})"
            )
        level = ptt.level(active)
        with self._lock:
            port = self._open_port()
            try:
                if name == "rts":
                    port.rts = level
                else:
                    port.dtr = level
            except (serial.SerialException, OSError) as exc:
                raise SerialLinesError(_failure(self.url, exc)) from None

    def set_ptt(self, radio: str, active: bool) -> None:
        """Key or unkey `radio` on whichever output line it is wired to."""
        for ptt in self._ptt.values():
            if ptt.radio == radio:
                self.set_line(ptt.line, active)
                return
        raise SerialLinesError(f"{radio} has no PTT line on {self.url}")

    def read_inputs(self) -> dict[str, bool]:
        """Raw levels (True = asserted) of cts, dsr, dcd and ri: a blocking ioctl each."""
        with self._lock:
            port = self._open_port()
            try:
                return {"cts": port.cts, "dsr": port.dsr, "dcd": port.cd, "ri": port.ri}
            except (serial.SerialException, OSError) as exc:
                raise SerialLinesError(_failure(self.url, exc)) from None

    def squelch(self, inputs: Mapping[str, bool]) -> dict[str, bool]:
        """Each COS radio's (undebounced) receiving state from `read_inputs()` levels."""
        return {c.radio: c.active(inputs[c.line]) for c in self._cos.values()}

    def close(self) -> None:
        """Set every output inactive, then close. Idempotent.

        Raises `SerialLinesError` (after closing) if a line could not be set inactive on a port
        that is still there; a port that is gone has no line left to key.
        """
        with self._lock:
            port, self._port = self._port, None
            if port is None:
                return
            problem: str | None = None
            # Over a closed device-server connection there is nothing left to unkey through.
            lines = () if _connection_closed(port) else OUTPUT_LINES
            for line in lines:
                try:
                    if line == "rts":
                        port.rts = self._idle[line]
                    else:
                        port.dtr = self._idle[line]
                except (serial.SerialException, OSError) as exc:
                    code = _errno(exc)
                    if code in _NO_MODEM_LINES or code in _GONE:
                        continue
                    problem = problem or (
                        f"could not unkey {line.upper()} of {self.url} before closing: "
                        f"{_strerror(exc)}"
                    )
            with contextlib.suppress(Exception):
                port.close()
        if problem is not None:
            raise SerialLinesError(problem)

    def __enter__(self) -> SerialLines:
        self.open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _open_port(self) -> serial.Serial:
        if self._port is None:
            raise SerialLinesClosed(f"serial port {self.url} is closed")
        if _connection_closed(self._port):
            raise SerialLinesError(
                f"serial port {self.url} is gone: the device server closed the connection"
            )
        return self._port


def _connection_closed(port: serial.Serial) -> bool:
    """pyserial's rfc2217:// client answers cts/dsr/ri/cd from its cache after the device
    server closed the connection (a serial device server or ser2net restarted or unplugged):
    the end of its reader thread is the only sign, so it is looked at here."""
    if not isinstance(port, serial.rfc2217.Serial):
        return False
    thread = getattr(port, "_thread", None)
    return thread is None or not thread.is_alive()


@dataclass
class Debouncer:
    """Qualifies one boolean input: a new state counts once it has held for `hold_s`.

    Pure (the caller passes the time), so it is tested without threads or sleeping.
    """

    hold_s: float
    state: bool | None = None  # None until the first sample
    _candidate: bool | None = None
    _since: float = 0.0

    def update(self, value: bool, now: float) -> tuple[bool, float] | None:
        """Feed a sample; returns (new state, time it was first seen) when the state changes.

        The first sample sets the state at once (there is nothing earlier to debounce against).
        """
        if self.state is None:
            self.state = value
            return value, now
        if value == self.state:
            self._candidate = None  # a glitch that did not hold: dropped
            return None
        if self._candidate != value:
            self._candidate, self._since = value, now
        if now - self._since >= self.hold_s - 1e-9:  # float sums of poll periods fall short
            self.state, self._candidate = value, None
            return value, self._since
        return None


CosCallback = Callable[[str, bool, float], None]
"""on_change(radio, receiving, at): `at` is when the change was first seen (poller clock)."""
LostCallback = Callable[[str], None]
"""on_lost(reason): one sentence; called at most once, after which polling has stopped."""


class CosPoller:
    """Polls a `SerialLines`' inputs in its own thread and reports debounced squelch changes.

    The first poll reports every radio's state (receiving or not) so the caller starts from
    the truth; after that only changes are reported. A port error is reported once through
    `on_lost` and polling stops: whoever owns the port reopens it (with backoff) and starts a
    new poller. Callbacks run on the poller thread and must not block.
    """

    def __init__(
        self,
        lines: SerialLines,
        on_change: CosCallback,
        on_lost: LostCallback,
        *,
        poll_s: float = DEFAULT_POLL_S,
        debounce_s: float = DEFAULT_DEBOUNCE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if poll_s <= 0:
            raise ValueError("poll_s must be positive")
        if debounce_s < 0:
            raise ValueError("debounce_s must not be negative")
        self._lines = lines
        self._on_change = on_change
        self._on_lost = on_lost
        self.poll_s = poll_s
        self.debounce_s = debounce_s
        self._clock = clock
        self._debouncers = {c.radio: Debouncer(debounce_s) for c in lines.cos_lines}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("a CosPoller starts once; make a new one after a stop or loss")
        self._thread = threading.Thread(
            target=self._run, name=f"cos {self._lines.url}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout_s: float = 1.0) -> None:
        """Stop polling; waits for the thread unless called from a callback on it."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout_s)

    def __enter__(self) -> CosPoller:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def poll_once(self) -> bool:
        """One poll: read, debounce, report. False once the port is lost or closed."""
        try:
            levels = self._lines.read_inputs()
        except SerialLinesClosed:
            return False
        except SerialLinesError as exc:
            if not self._stop.is_set():
                self._stop.set()
                self._call(self._on_lost, str(exc))
            return False
        now = self._clock()
        for radio, receiving in self._lines.squelch(levels).items():
            change = self._debouncers[radio].update(receiving, now)
            if change is not None:
                self._call(self._on_change, radio, change[0], change[1])
        return True

    def _run(self) -> None:
        # Absolute schedule so the period does not drift by the cost of each poll; after a
        # stall (suspend, a slow ioctl) restart from now instead of polling in a burst.
        due = time.monotonic()
        while not self._stop.is_set():
            if not self.poll_once():
                return
            due += self.poll_s
            delay = due - time.monotonic()
            if delay < 0:
                due, delay = time.monotonic(), 0.0
            self._stop.wait(delay)

    def _call(self, callback: Callable[..., None], *args: object) -> None:
        # A bug in a consumer must not silently end squelch detection for every radio here.
        try:
            callback(*args)
        except Exception as exc:
            _log.error("squelch callback for %s failed: %s", self._lines.url, exc)
