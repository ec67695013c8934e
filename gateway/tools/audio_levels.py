"""`crosspatch audio levels`: one radio's input as the daemon would see it, live.

`levels` opens only that radio's sound-card input (and, read-only, its squelch line) and shows
several times a second what the daemon would see: the peak and RMS of the card's samples after
the input gain (before the high-pass and level control; RMS on the VOX's scale, where a
full-scale sine is -3 dBFS, so it compares directly with `vox_threshold_dbfs`), the VOX state
with the radio's threshold, attack and hang (on high-passed audio, as the daemon runs it), the
carrier from a squelch line, and the CTCSS tone decoded from the raw audio (any standard tone,
and whether it is `squelch.ctcss_hz`).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import queue
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np
import numpy.typing as npt

from gateway.config import Config
from gateway.config.models import DEFAULT_VOX_THRESHOLD_DBFS, AudioSettings, Radio
from gateway.core.timing import (
    DEFAULT_FRAME_MS,
    DEFAULT_VOX_ATTACK_MS,
    DEFAULT_VOX_HANG_MS,
    SAMPLE_RATE,
    frame_samples,
)
from gateway.dsp.ctcss import CtcssDetector
from gateway.dsp.filters import HighPass
from gateway.dsp.resample import StreamingResampler
from gateway.dsp.vox import Vox
from gateway.hardware.cat.registry import make_driver
from gateway.hardware.cm108.gpio import Cm108
from gateway.hardware.keying import Carrier, CatCarrier, Cm108Carrier, LineCarrier
from gateway.hardware.sound.devices import SoundDevice, devices_of, find_device, open_portaudio
from gateway.ports.wiring import driver_settings
from gateway.tools.audio import (
    NO_AUDIO_S,
    POLL_S,
    AudioToolError,
    Display,
    cat_port_conflict,
    column_of,
    db_text,
    device_text,
    gateway_stopped,
    hidraw_of,
    keying_errors,
    lines_of,
    sound_card_radio,
    stop_on_signals,
    wait_for_stop,
)

if TYPE_CHECKING:
    import pyaudio

Samples = npt.NDArray[np.float32]

FRAME_MS = DEFAULT_FRAME_MS
FRAME = frame_samples(FRAME_MS)  # the frame the CTCSS decoder is built for
UPDATE_S = 0.25  # meter updates: four a second


def check_levels_options(seconds: float | None) -> None:
    if seconds is not None and not (math.isfinite(seconds) and seconds > 0):
        raise AudioToolError("--seconds must be a positive number of seconds")


def _power_dbfs(power: float) -> float:
    """10*log10 of a mean square (or a squared peak), with silence at -120 dBFS."""
    return 10 * math.log10(power) if power > 1e-12 else -120.0


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
        self._down = StreamingResampler(rate, SAMPLE_RATE) if rate != SAMPLE_RATE else None
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
        self.column = column_of(audio.channel, self.channels)
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


def _carrier_source(cfg: Config, name: str, radio: Radio, audio: AudioSettings) -> Carrier | None:
    """The radio's squelch line or CAT squelch, if it has one (VOX is the meter's own)."""
    q = radio.squelch
    if q is None or q.method == "vox":
        return None
    if q.method == "cat":
        control = radio.control
        if control is None:  # the config refuses this; a clear line if it ever gets here
            raise AudioToolError(f"radio '{name}': squelch method cat needs control")
        conflict = cat_port_conflict(cfg, control.port)
        if conflict is not None:
            raise AudioToolError(f"radio '{name}': its CAT squelch is not read: {conflict}")
        where = control.port or f"rigctld {control.host}:{control.tcp_port}"
        return CatCarrier(make_driver(driver_settings(control)), where)
    if q.method == "cm108":
        path = hidraw_of(q.port, audio.input, "squelch")
        cos_gpio = q.gpio if q.button is None else None
        return Cm108Carrier(
            Cm108(
                path,
                ptt_gpio=None,
                cos_gpio=cos_gpio,
                cos_button=q.button,
                cos_active_low=not q.invert,
            )
        )
    assert q.port is not None  # the config fills a line's port from control.port
    return LineCarrier(lines_of(cfg, q.port), name)


async def run_levels(
    cfg: Config, config: Path, name: str, seconds: float | None, out: TextIO
) -> int:
    """`crosspatch audio levels`: live input meters of one radio until Ctrl-C or `seconds`."""
    check_levels_options(seconds)
    radio, audio = sound_card_radio(cfg, name, config)
    carrier = _carrier_source(cfg, name, radio, audio)
    display = Display(out)
    async with stop_on_signals() as stop:
        with gateway_stopped(cfg.gateway.state_dir), open_portaudio() as pa:
            device = find_device(audio.input, "input", devices_of(pa))
            card = _CardInput(pa, device, audio)
            try:
                meter = InputMeter(radio, audio, card.rate)
                display.line(
                    f"audio levels: radio {name}, input {device_text(device)} at {card.rate} Hz, "
                    f"channel {audio.channel}, input gain {db_text(audio.input_gain_db)}"
                )
                display.line(_settings_line(radio, meter, carrier))
                display.line(
                    "rms and peak of the input after its gain, before high-pass and level "
                    "control (rms: a full-scale sine is -3 dBFS); rx: what the gateway would "
                    "take as a call; Ctrl-C stops"
                )
                if carrier is not None:
                    with keying_errors():
                        await carrier.start()
                card.start()
                elapsed = await _meter_loop(display, card, meter, carrier, seconds, stop)
            finally:
                card.close()
                if carrier is not None:
                    await carrier.close()
    display.line(_summary(meter, elapsed))
    return 0


def _settings_line(radio: Radio, meter: InputMeter, carrier: Carrier | None) -> str:
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
    display: Display,
    card: _CardInput,
    meter: InputMeter,
    carrier: Carrier | None,
    seconds: float | None,
    stop: asyncio.Event,
) -> float:
    """Feeds the meter and shows it every UPDATE_S; returns the seconds it ran."""
    started = time.monotonic()
    due = started + UPDATE_S
    told_problem = False
    while True:
        stopped = await wait_for_stop(stop, POLL_S)
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
