"""What the sound-card technician tools share: `crosspatch audio levels` (`audio_levels`) and
`crosspatch audio tone` (`audio_tone`).

Before a radio goes into a patch its audio is set up at the rack: the receiver's level into the
sound card, the VOX threshold, the CTCSS tone it delivers, and the card's level into the
transmitter (its deviation, set against a service monitor with a steady tone). Both tools work
on one radio of a config (`--radio NAME --config FILE`), with the daemon stopped; its PTT and
squelch come from the same seam the daemon's port banks use (`gateway.hardware.keying`).

The daemon's run lock (`state_dir/crosspatch.lock`) is taken for as long as a tool runs: while a
daemon holds it the tools refuse, and while a tool holds it a daemon that systemd restarts cannot
key the same radio under the technician's test.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
import shutil
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TextIO

from gateway.config import Config
from gateway.config.models import AudioSettings, Radio
from gateway.control.state_store import LOCK_FILE
from gateway.core.errors import UserError
from gateway.hardware.cm108.gpio import Cm108Error, find_hidraw
from gateway.hardware.keying import KeyingError
from gateway.hardware.serial.lines import SerialLines, SerialLinesError
from gateway.hardware.sound.devices import SoundDevice
from gateway.ports.wiring import serial_line_wirings

POLL_S = 0.02
NO_AUDIO_S = 2.0  # an input that delivers nothing this long is gone


class AudioToolError(UserError):
    """Why a sound-card tool cannot run, or stopped: one line."""


def sound_card_radio(cfg: Config, name: str, config: Path) -> tuple[Radio, AudioSettings]:
    """The named radio and its sound card, or a one-line refusal."""
    radio = cfg.radios.get(name)
    if radio is None:
        names = ", ".join(cfg.radios) or "none"
        raise AudioToolError(f"no radio named '{name}' in {config} (radios: {names})")
    if radio.simulated is not None or radio.audio is None:
        why = "it is simulated" if radio.simulated is not None else "it has no audio: section"
        raise AudioToolError(f"radio '{name}' has no sound card: {why}")
    return radio, radio.audio


def db_text(value: float) -> str:
    """A gain, signed, in dB."""
    return f"{value:+.1f} dB"


# ---------------------------------------------------------------------------------- run lock
def _open_lock(path: Path) -> tuple[int, bool] | None:
    """The lock file open (read-write if allowed), or None where no daemon has ever run."""
    for flags, writable in ((os.O_RDWR, True), (os.O_RDONLY, False)):
        try:
            return os.open(path, flags | os.O_CLOEXEC), writable
        except PermissionError:
            continue
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                return None
            raise AudioToolError(
                f"cannot check for a running gateway: {path}: {exc.strerror}"
            ) from None
    raise AudioToolError(
        f"cannot check for a running gateway: {path}: permission denied "
        "(run as the gateway's user or root)"
    )


@contextlib.contextmanager
def gateway_stopped(state_dir: Path) -> Iterator[None]:
    """Refuses while a daemon holds `state_dir`'s run lock; holds it while the tool runs.

    A missing state directory or lock file means no daemon runs there; the tool creates
    neither, since they are the daemon's, with its owner and mode.
    """
    path = state_dir / LOCK_FILE
    opened = _open_lock(path)
    if opened is None:
        yield
        return
    fd, writable = opened
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            pid = text if text.isdigit() else "unknown"
            raise AudioToolError(
                f"stop the gateway first: it drives these radios "
                f"(crosspatch daemon pid {pid} holds {state_dir})"
            ) from None
        if writable:
            # A daemon refused at start names the holder's pid: let that be this process.
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # drops the lock


@contextlib.asynccontextmanager
async def stop_on_signals() -> AsyncIterator[asyncio.Event]:
    """An event set by Ctrl-C, SIGTERM or SIGHUP (a dropped ssh session), instead of the
    default actions, which would end the process with the radio keyed."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    try:
        yield stop
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)


async def wait_for_stop(stop: asyncio.Event, seconds: float) -> bool:
    """Sleeps up to `seconds`; True if `stop` was set meanwhile."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), max(seconds, 0.0))
    return stop.is_set()


# ---------------------------------------------------------------------------------- display
class Display:
    """Lines on the terminal; on a TTY the meter is one line rewritten in place."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.tty = out.isatty()
        self._live = False

    def line(self, text: str) -> None:
        self.finish()
        print(text, file=self.out, flush=True)

    def live(self, text: str) -> None:
        if not self.tty:
            self.line(text)
            return
        # A line wider than the terminal wraps, and \r would then rewrite only its last row.
        width = shutil.get_terminal_size().columns - 1
        self.out.write("\r" + text[:width] + "\x1b[K")
        self.out.flush()
        self._live = True

    def finish(self) -> None:
        if self._live:
            self.out.write("\n")
            self.out.flush()
            self._live = False


def column_of(channel: str, channels: int) -> int | None:
    """The radio's column in a device block (None: mono, all columns)."""
    if channel == "mono" or channels == 1:
        return None
    return 0 if channel == "left" else 1


def lines_of(cfg: Config, port: str) -> SerialLines:
    """The serial port `port` with every radio wired to it (so that opening it holds every
    PTT line on it inactive, inversion included)."""
    try:
        wirings = serial_line_wirings(cfg)
    except SerialLinesError as exc:
        raise AudioToolError(str(exc)) from None
    return next(w for w in wirings if w.url == port)


def cat_port_conflict(cfg: Config, port: str | None) -> str | None:
    """Why opening a CAT driver on `port` could key a radio: a CAT driver opens with RTS and DTR
    low, which is the KEYED level of an inverted PTT line on the same port."""
    if port is None:
        return None
    try:
        wirings = serial_line_wirings(cfg)
    except SerialLinesError as exc:
        return str(exc)
    for lines in wirings:
        for ptt in lines.ptt_lines:
            if lines.url == port and ptt.invert:
                return (
                    f"{ptt.line.upper()} of {port} keys radio '{ptt.radio}' inverted, and opening "
                    "the CAT port would drop it (key it)"
                )
    return None


def hidraw_of(port: str | None, card: str, key: str) -> str:
    """A CM108's hidraw: the `port` of `key` (ptt or squelch), else the one on the card."""
    if port is not None:
        return port
    try:
        return str(find_hidraw(card))
    except Cm108Error as exc:
        raise AudioToolError(f"{exc}; or set {key}.port: /dev/hidrawN") from None


def device_text(device: SoundDevice) -> str:
    """A sound device as the tools name it."""
    return f"{device.name!r} (device {device.index})"


@contextlib.contextmanager
def keying_errors() -> Iterator[None]:
    """A PTT or squelch device's one-line refusal, as the tools' own."""
    try:
        yield
    except KeyingError as exc:
        raise AudioToolError(str(exc)) from None
