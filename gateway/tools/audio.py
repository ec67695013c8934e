"""Sound-card technician tools: `crosspatch audio levels` and `crosspatch audio tone`.

Before a radio goes into a patch its audio is set up at the rack: the receiver's level into the
sound card, the VOX threshold, the CTCSS tone it delivers, and the card's level into the
transmitter (its deviation, set against a service monitor with a steady tone). Both tools work
on one radio of a config (`--radio NAME --config FILE`), with the daemon stopped.

- `levels` opens only that radio's sound-card input (and, read-only, its squelch line) and shows
  several times a second what the daemon would see: the peak and RMS of the card's samples after
  the input gain (before the high-pass and level control; RMS on the VOX's scale, where a
  full-scale sine is -3 dBFS, so it compares directly with `vox_threshold_dbfs`), the VOX state
  with the radio's threshold, attack and hang (on high-passed audio, as the daemon runs it), the
  carrier from a squelch line, and the CTCSS tone decoded from the raw audio (any standard tone,
  and whether it is `squelch.ctcss_hz`).
- `tone` keys the radio with its configured PTT, waits its `tx_delay_ms`, sends a sine whose peak
  is `--level-dbfs` before the radio's output gain, through the daemon's output stage (output
  gain, then the -1 dBFS limiter), for `--seconds`, and unkeys. PTT is released on every way
  out (end, Ctrl-C, SIGTERM, SIGHUP, a failing device, an error); the signals only set a flag,
  so no exception can land between keying and unkeying.

The daemon's run lock (`state_dir/crosspatch.lock`) is taken for as long as a tool runs: while a
daemon holds it the tools refuse, and while a tool holds it a daemon that systemd restarts cannot
key the same radio under the technician's test.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import math
import os
import queue
import shutil
import signal
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TextIO

import numpy as np
import numpy.typing as npt

from gateway.config import Config
from gateway.config.models import (
    DEFAULT_CM108_GPIO,
    DEFAULT_VOX_ATTACK_MS,
    DEFAULT_VOX_HANG_MS,
    DEFAULT_VOX_THRESHOLD_DBFS,
    AudioSettings,
    Radio,
)
from gateway.control.state_store import LOCK_FILE
from gateway.dsp.ctcss import CtcssDetector
from gateway.dsp.filters import HighPass
from gateway.dsp.resample import StreamingResampler
from gateway.dsp.vox import Vox
from gateway.hardware.cat.base import CatDriver
from gateway.hardware.cat.errors import CatError
from gateway.hardware.cat.registry import make_driver
from gateway.hardware.cm108.gpio import Cm108, Cm108Error, find_hidraw
from gateway.hardware.serial.lines import CosPoller, SerialLines, SerialLinesError
from gateway.hardware.sound.devices import SoundDevice, devices_of, find_device, open_portaudio
from gateway.ports.wiring import driver_settings, serial_line_wirings

if TYPE_CHECKING:
    import pyaudio

Samples = npt.NDArray[np.float32]

ENGINE_RATE = 8000
FRAME = 160  # 20 ms at 8 kHz: the frame the CTCSS decoder is built for
FRAME_MS = 20
LIMIT = 10 ** (-1 / 20)  # the daemon's output limiter: -1 dBFS peak
UPDATE_S = 0.25  # meter updates: four a second
POLL_S = 0.02
NO_AUDIO_S = 2.0  # an input that delivers nothing this long is gone
CAT_POLL_S = 0.2
CM108_POLL_S = 0.05

TONE_SECONDS = (1.0, 300.0)  # a stuck test tone is a stuck transmitter: capped
TONE_HZ = (50.0, 3500.0)  # within the 8 kHz path the daemon sends audio through
TONE_LEVEL_DBFS = (-60.0, 0.0)
FADE_S = 0.005  # raised-cosine edges: a hard start or stop splatters on the air
# Silence sent after the tone, PTT still on: the card's and the radio's audio paths still hold
# the last milliseconds of the tone when the card has taken it.
TAIL_S = 0.1
UNKEY_TIMEOUT_S = 10.0


class AudioToolError(Exception):
    """Why a sound-card tool cannot run, or stopped: one line."""


# ---------------------------------------------------------------------------------- options
def check_levels_options(seconds: float | None) -> None:
    if seconds is not None and not (math.isfinite(seconds) and seconds > 0):
        raise AudioToolError("--seconds must be a positive number of seconds")


def check_tone_options(seconds: float | None, hz: float, level_dbfs: float) -> None:
    low, high = TONE_SECONDS
    if seconds is None:
        raise AudioToolError(f"audio tone needs --seconds S ({low:g} to {high:g})")
    if not low <= seconds <= high:  # also false for nan
        raise AudioToolError(f"--seconds must be between {low:g} and {high:g} for a test tone")
    if not TONE_HZ[0] <= hz <= TONE_HZ[1]:
        raise AudioToolError(f"--hz must be between {TONE_HZ[0]:g} and {TONE_HZ[1]:g}")
    if not TONE_LEVEL_DBFS[0] <= level_dbfs <= TONE_LEVEL_DBFS[1]:
        raise AudioToolError(
            f"--level-dbfs must be between {TONE_LEVEL_DBFS[0]:g} and {TONE_LEVEL_DBFS[1]:g}"
        )


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


def tone_amplitude(level_dbfs: float, output_gain_db: float) -> tuple[float, bool]:
    """The tone's peak at the card (0..1) after the output gain and the daemon's -1 dBFS
    limiter, and whether the limiter cut it (a steady tone settles at exactly its limit)."""
    amplitude = 10 ** ((level_dbfs + output_gain_db) / 20)
    return (LIMIT, True) if amplitude > LIMIT else (amplitude, False)


def _db(value: float) -> str:
    return f"{value:+.1f} dB"


def _power_dbfs(power: float) -> float:
    """10*log10 of a mean square (or a squared peak), with silence at -120 dBFS."""
    return 10 * math.log10(power) if power > 1e-12 else -120.0


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
async def _stop_on_signals() -> AsyncIterator[asyncio.Event]:
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


async def _wait(stop: asyncio.Event, seconds: float) -> bool:
    """Sleeps up to `seconds`; True if `stop` was set meanwhile."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), max(seconds, 0.0))
    return stop.is_set()


# ---------------------------------------------------------------------------------- display
class _Display:
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


# ---------------------------------------------------------------------------------- levels
@dataclass(frozen=True)
class Reading:
    """One meter update: levels over the period, states at its end."""

    rms_dbfs: float
    peak_dbfs: float
    clipped: int  # card samples at full scale in the period
    vox: bool
    tone_hz: float | None  # the standard CTCSS tone decoded, if any
    wanted_present: bool  # the configured tone, as the daemon's qualifier sees it


class InputMeter:
    """The daemon's receive analysis of one radio, fed with card samples (after input gain).

    Levels are measured at the card's rate (at 8 kHz a 1 kHz sine's samples can miss its peak
    by 0.7 dB); CTCSS and VOX run at 8 kHz in 20 ms frames, as in the daemon.
    """

    def __init__(self, radio: Radio, audio: AudioSettings, rate: int) -> None:
        q = radio.squelch
        vox = q is not None and q.method == "vox"
        self.vox_used = vox
        self.threshold_dbfs = (
            q.vox_threshold_dbfs
            if q is not None and q.vox_threshold_dbfs is not None
            else DEFAULT_VOX_THRESHOLD_DBFS
        )
        attack = q.vox_attack_ms if vox and q and q.vox_attack_ms is not None else None
        hang = q.vox_hang_ms if vox and q and q.vox_hang_ms is not None else None
        self.wanted_hz = q.ctcss_hz if q is not None else None
        self._down = StreamingResampler(rate, ENGINE_RATE) if rate != ENGINE_RATE else None
        self._ctcss = CtcssDetector(1, [self.wanted_hz if self.wanted_hz else math.nan])
        self._highpass = HighPass(1) if audio.highpass else None
        self._vox = Vox(
            1,
            self.threshold_dbfs,
            attack_ms=DEFAULT_VOX_ATTACK_MS if attack is None else attack,
            hang_ms=DEFAULT_VOX_HANG_MS if hang is None else hang,
            frame_ms=FRAME_MS,
        )
        self._pending: Samples = np.zeros(0, dtype=np.float32)
        self._power = 0.0
        self._count = 0
        self._peak = 0.0
        self._clipped = 0
        self.vox = False
        self.tone_hz: float | None = None
        self.wanted_present = False
        # For the summary at the end.
        self.max_peak = 0.0
        self.clipped_total = 0
        self.vox_frames = 0
        self.tones_seen: dict[float, None] = {}

    def feed(self, samples: Samples, clipped: int = 0) -> None:
        if samples.size:
            x = samples.astype(np.float64)
            self._power += float(np.dot(x, x))
            self._count += samples.size
            self._peak = max(self._peak, float(np.abs(x).max()))
        self._clipped += clipped
        low = self._down.process(samples) if self._down is not None else samples
        self._pending = np.concatenate([self._pending, low])
        whole = self._pending.size - self._pending.size % FRAME
        for start in range(0, whole, FRAME):
            self._frame(self._pending[start : start + FRAME].reshape(1, FRAME))
        self._pending = self._pending[whole:]

    def _frame(self, raw: Samples) -> None:
        tone = float(self._ctcss.detect_any(raw)[0])  # the decoder wants the raw audio
        self.tone_hz = None if math.isnan(tone) else tone
        self.wanted_present = bool(self._ctcss.present[0])
        if self.tone_hz is not None:
            self.tones_seen.setdefault(self.tone_hz)
        clean = self._highpass.process(raw) if self._highpass is not None else raw
        self.vox = bool(self._vox.process(clean)[0])
        self.vox_frames += self.vox

    def take(self) -> Reading:
        """The reading of the period since the last `take`, which starts a new period."""
        reading = Reading(
            rms_dbfs=_power_dbfs(self._power / self._count) if self._count else -120.0,
            peak_dbfs=_power_dbfs(self._peak**2),
            clipped=self._clipped,
            vox=self.vox,
            tone_hz=self.tone_hz,
            wanted_present=self.wanted_present,
        )
        self.max_peak = max(self.max_peak, self._peak)
        self.clipped_total += self._clipped
        self._power, self._count, self._peak, self._clipped = 0.0, 0, 0.0, 0
        return reading


def _ctcss_text(reading: Reading, wanted: float | None) -> str:
    if reading.tone_hz is None:
        return "none" + (f" (configured {wanted:.1f} Hz)" if wanted else "")
    text = f"{reading.tone_hz:.1f} Hz"
    if wanted is None:
        return text
    if abs(reading.tone_hz - wanted) < 0.05:
        return f"{text} (configured)"
    return f"{text} (NOT the configured {wanted:.1f} Hz)"


def format_reading(
    reading: Reading, meter: InputMeter, carrier: bool | None, source: str | None
) -> str:
    """The fields of one update: levels, VOX, carrier (if the radio has a squelch line), CTCSS,
    and `rx`, whether the daemon would take it as a carrier (squelch and CTCSS qualifier)."""
    clip = f" CLIP x{reading.clipped}" if reading.clipped else ""
    parts = [
        f"rms {reading.rms_dbfs:6.1f} dBFS  peak {reading.peak_dbfs:6.1f} dBFS{clip}",
        f"vox {'on ' if reading.vox else 'off'}",
    ]
    if source is not None:
        parts.append(f"carrier {'-' if carrier is None else 'open' if carrier else 'closed'}")
    parts.append(f"ctcss {_ctcss_text(reading, meter.wanted_hz)}")
    squelch = reading.vox if meter.vox_used else carrier
    if meter.vox_used or source is not None:
        rx = bool(squelch) and (meter.wanted_hz is None or reading.wanted_present)
        parts.append(f"rx {'yes' if rx else 'no'}")
    return "  ".join(parts)


def _bar(reading: Reading, threshold_dbfs: float, width: int = 20) -> str:
    """RMS from -60 to 0 dBFS, with the VOX threshold marked."""

    def cell(dbfs: float) -> int:
        return min(width, max(0, round((dbfs + 60.0) / 60.0 * width)))

    filled = cell(reading.rms_dbfs)
    cells = ["#" if i < filled else "." for i in range(width)]
    mark = min(cell(threshold_dbfs), width - 1)
    if mark >= filled:
        cells[mark] = "|"
    return "[" + "".join(cells) + "]"


class _CardInput:
    """One radio's channel of its card's input, as the daemon reads it: 16-bit samples, the
    radio's column (or the mean for mono), times the input gain; blocks go into a queue."""

    def __init__(self, pa: pyaudio.PyAudio, device: SoundDevice, audio: AudioSettings) -> None:
        import pyaudio

        self.device = device
        self.rate = audio.rate or round(device.default_rate)
        self.channels = 2 if device.max_input_channels >= 2 else 1
        self.column = _column(audio.channel, self.channels)
        self.gain = 10 ** (audio.input_gain_db / 20)
        self.blocks: queue.SimpleQueue[tuple[Samples, int]] = queue.SimpleQueue()
        self.last_block = time.monotonic()
        block = round(self.rate * audio.block_ms / 1000)
        try:
            self._stream: pyaudio.Stream | None = pa.open(
                format=pyaudio.paInt16,
                channels=self.channels,
                rate=self.rate,
                input=True,
                input_device_index=device.index,
                frames_per_buffer=block,
                stream_callback=self._callback,
                start=False,
            )
        except OSError as exc:
            raise AudioToolError(
                f"cannot open sound device {device.label} for input at {self.rate} Hz: {exc}"
            ) from None

    def _callback(
        self, data: bytes | None, frames: int, info: Any, status: int
    ) -> tuple[None, int]:
        import pyaudio

        if data:
            block = np.frombuffer(data, dtype=np.int16).reshape(-1, self.channels)
            raw = block if self.column is None else block[:, self.column]
            clipped = int(np.count_nonzero((raw >= 32767) | (raw <= -32768)))
            pcm = raw.mean(axis=1) if raw.ndim == 2 else raw
            self.blocks.put((pcm.astype(np.float32) * np.float32(self.gain / 32768.0), clipped))
            self.last_block = time.monotonic()
        return None, pyaudio.paContinue

    def start(self) -> None:
        assert self._stream is not None
        self.last_block = time.monotonic()
        try:
            self._stream.start_stream()
        except OSError as exc:
            raise AudioToolError(f"sound device {self.device.label} failed: {exc}") from None

    def take(self) -> Iterator[tuple[Samples, int]]:
        while True:
            try:
                yield self.blocks.get_nowait()
            except queue.Empty:
                return

    def check(self) -> None:
        if time.monotonic() - self.last_block > NO_AUDIO_S:
            raise AudioToolError(
                f"sound device {self.device.label} delivered no audio for {NO_AUDIO_S:g} s "
                "(unplugged, or taken by another program?)"
            )

    def close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            with contextlib.suppress(Exception):  # a vanished device: nothing left to close
                stream.close()


def _column(channel: str, channels: int) -> int | None:
    """The radio's column in a device block (None: mono, all columns)."""
    if channel == "mono" or channels == 1:
        return None
    return 0 if channel == "left" else 1


class _Carrier:
    """A squelch source read alongside the meter: `state` None until known; `problem` once
    it was lost (the meter carries on without it)."""

    description: str = ""
    state: bool | None = None
    problem: str | None = None

    async def start(self) -> None:
        return

    async def close(self) -> None:
        return


class _LineCarrier(_Carrier):
    """COS on a modem line, debounced as in the daemon (its `CosPoller`)."""

    def __init__(self, lines: SerialLines, radio: str) -> None:
        self._lines = lines
        self._radio = radio
        cos = next(c for c in lines.cos_lines if c.radio == radio)
        inverted = " (inverted)" if cos.invert else ""
        self.description = f"{cos.line.upper()}{inverted} of {lines.url}"
        self._poller: CosPoller | None = None

    def _changed(self, radio: str, receiving: bool, at: float) -> None:
        if radio == self._radio:
            self.state = receiving

    def _lost(self, reason: str) -> None:
        self.problem = reason

    async def start(self) -> None:
        try:
            # Opened with every PTT wired to this port held inactive (the port's whole wiring).
            await asyncio.to_thread(self._lines.open)
        except SerialLinesError as exc:
            raise AudioToolError(str(exc)) from None
        self._poller = CosPoller(self._lines, self._changed, self._lost)
        self._poller.start()

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.stop()
        with contextlib.suppress(SerialLinesError):
            await asyncio.to_thread(self._lines.close)


class _CatCarrier(_Carrier):
    """The radio's squelch as its CAT driver reads it, polled."""

    def __init__(self, driver: CatDriver, where: str) -> None:
        self._driver = driver
        self.description = f"CAT ({where})"
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._driver.open()
        self._task = asyncio.create_task(self._poll())

    async def _poll(self) -> None:
        try:
            while True:
                self.state = await self._driver.read_busy()
                await asyncio.sleep(CAT_POLL_S)
        except CatError as exc:
            self.problem = str(exc)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._driver.close()


class _Cm108Carrier(_Carrier):
    """COS on a CM108 GPIO or volume-button input, polled; the device is opened for reading
    only (no PTT GPIO), so nothing is written to it."""

    def __init__(self, cm108: Cm108) -> None:
        self._cm108 = cm108
        where = f"GPIO {cm108.cos_gpio}" if cm108.cos_gpio is not None else cm108.cos_button
        self.description = f"CM108 {where} of {cm108.path}"
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        try:
            await asyncio.to_thread(self._cm108.open)
        except Cm108Error as exc:
            raise AudioToolError(str(exc)) from None
        self._task = asyncio.create_task(self._poll())

    async def _poll(self) -> None:
        try:
            while True:
                self.state = await asyncio.to_thread(self._cm108.read_cos)
                await asyncio.sleep(CM108_POLL_S)
        except Cm108Error as exc:
            self.problem = str(exc)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(Cm108Error):
            self._cm108.close()


def _lines_of(cfg: Config, port: str) -> SerialLines:
    """The serial port `port` with every radio wired to it (so that opening it holds every
    PTT line on it inactive, inversion included)."""
    try:
        wirings = serial_line_wirings(cfg)
    except SerialLinesError as exc:
        raise AudioToolError(str(exc)) from None
    return next(w for w in wirings if w.url == port)


def _cat_port_conflict(cfg: Config, port: str | None) -> str | None:
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


def _hidraw(port: str | None, card: str, key: str) -> str:
    if port is not None:
        return port
    try:
        return str(find_hidraw(card))
    except Cm108Error as exc:
        raise AudioToolError(f"{exc}; or set {key}.port: /dev/hidrawN") from None


def _carrier_source(cfg: Config, name: str, radio: Radio, audio: AudioSettings) -> _Carrier | None:
    """The radio's squelch line or CAT squelch, if it has one (VOX is the meter's own)."""
    q = radio.squelch
    if q is None or q.method == "vox":
        return None
    if q.method == "cat":
        control = radio.control
        if control is None:  # the config refuses this; a clear line if it ever gets here
            raise AudioToolError(f"radio '{name}': squelch method cat needs control")
        conflict = _cat_port_conflict(cfg, control.port)
        if conflict is not None:
            raise AudioToolError(f"radio '{name}': its CAT squelch is not read: {conflict}")
        where = control.port or f"rigctld {control.host}:{control.tcp_port}"
        return _CatCarrier(make_driver(driver_settings(control)), where)
    if q.method == "cm108":
        path = _hidraw(q.port, audio.input, "squelch")
        cos_gpio = q.gpio if q.button is None else None
        return _Cm108Carrier(
            Cm108(
                path,
                ptt_gpio=None,
                cos_gpio=cos_gpio,
                cos_button=q.button,
                cos_active_low=not q.invert,
            )
        )
    assert q.port is not None  # the config fills a line's port from control.port
    return _LineCarrier(_lines_of(cfg, q.port), name)


async def run_levels(
    cfg: Config, config: Path, name: str, seconds: float | None, out: TextIO
) -> int:
    """`crosspatch audio levels`: live input meters of one radio until Ctrl-C or `seconds`."""
    check_levels_options(seconds)
    radio, audio = sound_card_radio(cfg, name, config)
    carrier = _carrier_source(cfg, name, radio, audio)
    display = _Display(out)
    async with _stop_on_signals() as stop:
        with gateway_stopped(cfg.gateway.state_dir), open_portaudio() as pa:
            device = find_device(audio.input, "input", devices_of(pa))
            card = _CardInput(pa, device, audio)
            try:
                meter = InputMeter(radio, audio, card.rate)
                display.line(
                    f"audio levels: radio {name}, input {_device(device)} at {card.rate} Hz, "
                    f"channel {audio.channel}, input gain {_db(audio.input_gain_db)}"
                )
                display.line(_settings_line(radio, meter, carrier))
                display.line(
                    "rms and peak of the input after its gain, before high-pass and level "
                    "control (rms: a full-scale sine is -3 dBFS); rx: what the gateway would "
                    "take as a call; Ctrl-C stops"
                )
                if carrier is not None:
                    await carrier.start()
                card.start()
                elapsed = await _meter_loop(display, card, meter, carrier, seconds, stop)
            finally:
                card.close()
                if carrier is not None:
                    await carrier.close()
    display.line(_summary(meter, elapsed))
    return 0


def _device(device: SoundDevice) -> str:
    return f"{device.name!r} (device {device.index})"


def _settings_line(radio: Radio, meter: InputMeter, carrier: _Carrier | None) -> str:
    q = radio.squelch
    if carrier is not None:
        squelch = f"squelch: {carrier.description}"
    else:
        squelch = f"squelch: {q.method.upper() if q is not None else 'none'}"
    tone = f"CTCSS {meter.wanted_hz:.1f} Hz" if meter.wanted_hz else "no CTCSS qualifier"
    vox = f"VOX threshold {meter.threshold_dbfs:.1f} dBFS rms"
    if not meter.vox_used:
        vox += " (default; VOX is not this radio's squelch)"
    return "; ".join((squelch, tone, vox))


async def _meter_loop(
    display: _Display,
    card: _CardInput,
    meter: InputMeter,
    carrier: _Carrier | None,
    seconds: float | None,
    stop: asyncio.Event,
) -> float:
    """Feeds the meter and shows it every UPDATE_S; returns the seconds it ran."""
    started = time.monotonic()
    due = started + UPDATE_S
    told_problem = False
    while True:
        stopped = await _wait(stop, POLL_S)
        for block, clipped in card.take():
            meter.feed(block, clipped)
        now = time.monotonic()
        elapsed = now - started
        if stopped:
            return elapsed
        card.check()
        if carrier is not None and carrier.problem is not None and not told_problem:
            display.line(f"carrier: {carrier.problem}")
            told_problem = True
        if now >= due:
            due = max(due + UPDATE_S, now)
            state = None if carrier is None or carrier.problem else carrier.state
            reading = meter.take()
            fields = format_reading(
                reading, meter, state, carrier.description if carrier is not None else None
            )
            if display.tty:
                display.live(f"{_bar(reading, meter.threshold_dbfs)} {fields}")
            else:
                display.line(f"{elapsed:7.2f} s  {fields}")
        if seconds is not None and elapsed >= seconds:
            return elapsed


def _summary(meter: InputMeter, elapsed: float) -> str:
    meter.take()  # the last, partial period counts too
    peak = _power_dbfs(meter.max_peak**2)
    tones = ", ".join(f"{hz:.1f} Hz" for hz in meter.tones_seen) or "none"
    clipped = f", {meter.clipped_total} samples CLIPPED" if meter.clipped_total else ""
    return (
        f"{elapsed:.1f} s: highest peak {peak:.1f} dBFS{clipped}, VOX on for "
        f"{meter.vox_frames * FRAME_MS / 1000:.1f} s, CTCSS tones seen: {tones}"
    )


# ---------------------------------------------------------------------------------- tone
class _Transmitter(Protocol):
    description: str

    async def open(self) -> None:
        """Opens the PTT with the radio unkeyed."""

    async def key(self) -> None: ...

    async def unkey(self) -> None:
        """The one step that must get through: raises (loudly) if it did not."""

    async def close(self) -> None:
        """Closes, leaving every line it drives inactive; never raises."""


def _unkey_failed(problem: object) -> AudioToolError:
    return AudioToolError(
        f"UNKEY FAILED, check the radio now (or run crosspatch unkey-all): {problem}"
    )


class _LinePtt:
    def __init__(self, lines: SerialLines, radio: str) -> None:
        self._lines = lines
        self._radio = radio
        ptt = next(p for p in lines.ptt_lines if p.radio == radio)
        inverted = " (inverted)" if ptt.invert else ""
        self.description = f"{ptt.line.upper()}{inverted} of {lines.url}"

    async def open(self) -> None:
        try:
            await asyncio.to_thread(self._lines.open)  # every PTT on the port inactive
        except SerialLinesError as exc:
            raise AudioToolError(str(exc)) from None

    async def key(self) -> None:
        try:
            await asyncio.to_thread(self._lines.set_ptt, self._radio, True)
        except SerialLinesError as exc:
            raise AudioToolError(str(exc)) from None

    async def unkey(self) -> None:
        try:
            await asyncio.to_thread(self._lines.set_ptt, self._radio, False)
        except SerialLinesError as exc:
            raise _unkey_failed(exc) from None

    async def close(self) -> None:
        with contextlib.suppress(SerialLinesError):  # close sets every output inactive first
            await asyncio.to_thread(self._lines.close)


class _Cm108Ptt:
    def __init__(self, cm108: Cm108) -> None:
        self._cm108 = cm108
        inverted = " (inverted)" if cm108.ptt_invert else ""
        self.description = f"CM108 GPIO {cm108.ptt_gpio}{inverted} of {cm108.path}"

    async def open(self) -> None:
        try:
            await asyncio.to_thread(self._cm108.open)  # writes the inactive level at once
        except Cm108Error as exc:
            raise AudioToolError(str(exc)) from None

    async def key(self) -> None:
        try:
            await asyncio.to_thread(self._cm108.set_ptt, True)
        except Cm108Error as exc:
            raise AudioToolError(str(exc)) from None

    async def unkey(self) -> None:
        try:
            await asyncio.to_thread(self._cm108.set_ptt, False)
        except Cm108Error as exc:
            raise _unkey_failed(exc) from None

    async def close(self) -> None:
        with contextlib.suppress(Cm108Error):  # close unkeys once more first
            await asyncio.to_thread(self._cm108.close)


class _CatPtt:
    def __init__(self, driver: CatDriver, where: str) -> None:
        self._driver = driver
        self.description = f"CAT ({where})"

    async def open(self) -> None:
        await self._driver.open()

    async def key(self) -> None:
        await self._driver.set_ptt(True)

    async def unkey(self) -> None:
        from gateway.tools.radio import unkey  # retries: the one command that must get through

        try:
            await asyncio.wait_for(unkey(self._driver), UNKEY_TIMEOUT_S)
        except (CatError, TimeoutError) as exc:
            raise _unkey_failed(exc) from None

    async def close(self) -> None:
        with contextlib.suppress(CatError, OSError):
            await self._driver.close()


def _transmitter(cfg: Config, name: str, radio: Radio, audio: AudioSettings) -> _Transmitter:
    """The radio's PTT as configured, not yet opened; refuses a radio that cannot be keyed."""
    ptt = radio.ptt
    if ptt is None or ptt.method == "none":
        raise AudioToolError(f"radio '{name}' has no PTT (ptt method none): it cannot be keyed")
    if ptt.method in ("rts", "dtr"):
        assert ptt.port is not None  # the config fills it from control.port
        return _LinePtt(_lines_of(cfg, ptt.port), name)
    if ptt.method == "cm108":
        path = _hidraw(ptt.port, audio.output, "ptt")
        gpio = ptt.gpio or DEFAULT_CM108_GPIO
        return _Cm108Ptt(Cm108(path, ptt_gpio=gpio, ptt_invert=ptt.invert))
    control = radio.control
    if control is None:  # the config refuses this; a clear line if it ever gets here
        raise AudioToolError(f"radio '{name}': ptt method cat needs control")
    conflict = _cat_port_conflict(cfg, control.port)
    if conflict is not None:
        raise AudioToolError(f"radio '{name}' is not keyed: {conflict}")
    where = control.port or f"rigctld {control.host}:{control.tcp_port}"
    return _CatPtt(make_driver(driver_settings(control)), where)


class _ToneSource:
    """A sine at the card's rate with raised-cosine edges, then TAIL_S of silence (so the end
    of the tone has left the card before the stream ends and PTT drops); `stop_soon` fades the
    tone out early. Runs on the card's callback thread; `stop_soon` only lowers the ends."""

    def __init__(
        self, hz: float, amplitude: float, rate: int, seconds: float, channels: int
    ) -> None:
        self.rate = rate
        self.step = 2 * math.pi * hz / rate
        self.amplitude = amplitude
        self.fade = max(1, round(FADE_S * rate))
        self.tail = round(TAIL_S * rate)
        self.tone_end = round(seconds * rate)
        self.end = self.tone_end + self.tail
        self.made = 0
        self.channels = channels
        self.column: int | None = None
        self.last_call = time.monotonic()

    def stop_soon(self) -> None:
        self.tone_end = min(self.tone_end, self.made + self.fade)
        self.end = min(self.end, self.tone_end + self.tail)

    @property
    def done(self) -> bool:
        return self.made >= self.end

    @property
    def tone_seconds(self) -> float:
        """How much of the tone was handed to the card."""
        return min(self.made, self.tone_end) / self.rate

    def block(self, frames: int) -> bytes:
        n = np.arange(self.made, self.made + frames, dtype=np.float64)
        end = self.tone_end
        # 0..1 within the fade at either edge, 1 between, 0 after the end.
        edge = np.clip(np.minimum(n / self.fade, (end - n) / self.fade), 0.0, 1.0)
        envelope = 0.5 - 0.5 * np.cos(np.pi * edge)
        x = self.amplitude * envelope * np.sin(self.step * n)
        self.made += frames
        self.last_call = time.monotonic()
        pcm = np.clip(np.round(x * 32767.0), -32768, 32767).astype(np.int16)
        block = np.zeros((frames, self.channels), dtype=np.int16)
        if self.column is None:
            block[:, :] = pcm[:, None]
        else:
            block[:, self.column] = pcm
        return block.tobytes()


class _CardTone:
    """The tone on one radio's channel of its card's output (the daemon's format: 16 bits,
    the device's channels, the radio's column or all of them for mono). Opened at once, so
    that a card that fails does so before the radio is keyed; started later."""

    def __init__(
        self,
        pa: pyaudio.PyAudio,
        device: SoundDevice,
        audio: AudioSettings,
        hz: float,
        amplitude: float,
        seconds: float,
    ) -> None:
        import pyaudio

        self.device = device
        self.rate = audio.rate or round(device.default_rate)
        channels = 2 if device.max_output_channels >= 2 else 1
        self.source = _ToneSource(hz, amplitude, self.rate, seconds, channels)
        self.source.column = _column(audio.channel, channels)
        try:
            self._stream: pyaudio.Stream | None = pa.open(
                format=pyaudio.paInt16,
                channels=channels,
                rate=self.rate,
                output=True,
                output_device_index=device.index,
                frames_per_buffer=round(self.rate * audio.block_ms / 1000),
                stream_callback=self._callback,
                start=False,
            )
        except OSError as exc:
            raise AudioToolError(
                f"cannot open sound device {device.label} for output at {self.rate} Hz: {exc}"
            ) from None

    def _callback(
        self, data: bytes | None, frames: int, info: Any, status: int
    ) -> tuple[bytes, int]:
        import pyaudio

        pcm = self.source.block(frames)
        return pcm, pyaudio.paComplete if self.source.done else pyaudio.paContinue

    def start(self) -> None:
        assert self._stream is not None
        self.source.last_call = time.monotonic()
        try:
            self._stream.start_stream()
        except OSError as exc:
            raise AudioToolError(f"sound device {self.device.label} failed: {exc}") from None

    def active(self) -> bool:
        if self._stream is None:
            return False
        try:
            return self._stream.is_active()
        except OSError as exc:
            raise AudioToolError(f"sound device {self.device.label} failed: {exc}") from None

    def latency(self) -> float:
        with contextlib.suppress(Exception):
            if self._stream is not None:
                return float(self._stream.get_output_latency())
        return 0.0

    def check(self) -> None:
        if time.monotonic() - self.source.last_call > NO_AUDIO_S:
            raise AudioToolError(
                f"sound device {self.device.label} stopped taking audio (unplugged?)"
            )

    def close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            with contextlib.suppress(Exception):  # a vanished device: nothing left to close
                stream.close()  # drops whatever is still queued


async def run_tone(
    cfg: Config,
    config: Path,
    name: str,
    seconds: float | None,
    hz: float,
    level_dbfs: float,
    out: TextIO,
) -> int:
    """`crosspatch audio tone`: key the radio, send the tone, unkey (on every way out)."""
    check_tone_options(seconds, hz, level_dbfs)
    assert seconds is not None
    radio, audio = sound_card_radio(cfg, name, config)
    transmitter = _transmitter(cfg, name, radio, audio)
    amplitude, limited = tone_amplitude(level_dbfs, audio.output_gain_db)
    tx_delay = radio.timing.tx_delay_ms / 1000
    display = _Display(out)
    async with _stop_on_signals() as stop:
        with gateway_stopped(cfg.gateway.state_dir), open_portaudio() as pa:
            device = find_device(audio.output, "output", devices_of(pa))
            player = _CardTone(pa, device, audio, hz, amplitude, seconds)
            try:
                at_card = 20 * math.log10(amplitude)
                cut = " (cut by the -1 dBFS limiter)" if limited else ""
                display.line(
                    f"audio tone: radio {name}, PTT {transmitter.description}, "
                    f"tx delay {radio.timing.tx_delay_ms} ms"
                )
                display.line(
                    f"output {_device(device)} at {player.rate} Hz, channel {audio.channel}: "
                    f"{hz:g} Hz at {level_dbfs:.1f} dBFS, output gain "
                    f"{_db(audio.output_gain_db)}, {at_card:.1f} dBFS at the card{cut}, "
                    f"for {seconds:g} s; Ctrl-C stops"
                )
                await _transmit(display, transmitter, player, tx_delay, stop)
            finally:
                player.close()
    return 0


async def _transmit(
    display: _Display,
    transmitter: _Transmitter,
    player: _CardTone,
    tx_delay: float,
    stop: asyncio.Event,
) -> None:
    await transmitter.open()
    keyed: float | None = None
    try:
        if stop.is_set():
            return
        await transmitter.key()
        keyed = time.monotonic()
        display.line("PTT on")
        if await _wait(stop, tx_delay):
            return
        player.start()
        display.line("tone on")
        while player.active():
            player.check()
            if await _wait(stop, POLL_S):
                player.source.stop_soon()  # fade out rather than cut
                # The fade and the tail still have to leave the card's queue.
                deadline = time.monotonic() + TAIL_S + player.latency() + 0.2
                while player.active() and time.monotonic() < deadline:
                    await asyncio.sleep(POLL_S)
                break
        if not player.source.done and not stop.is_set():
            raise AudioToolError(f"sound device {player.device.label} stopped during the tone")
        stopped = " (stopped)" if stop.is_set() else ""
        display.line(f"tone off: {player.source.tone_seconds:.1f} s sent{stopped}")
    finally:
        player.close()  # a stopped or failed tone ends now, not after the card's queue
        try:
            await transmitter.unkey()
            if keyed is not None:
                display.line(f"PTT off after {time.monotonic() - keyed:.1f} s on the air")
        finally:
            await transmitter.close()
