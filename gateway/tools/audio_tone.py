"""`crosspatch audio tone`: key one radio and send a steady test tone through its sound card.

`tone` keys the radio with its configured PTT, waits its `tx_delay_ms`, sends a sine whose peak
is `--level-dbfs` before the radio's output gain, through the daemon's output stage (output
gain, then the -1 dBFS limiter), for `--seconds`, and unkeys. PTT is released on every way
out (end, Ctrl-C, SIGTERM, SIGHUP, a failing device, an error); the signals only set a flag,
so no exception can land between keying and unkeying.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np

from gateway.config import Config
from gateway.config.models import DEFAULT_CM108_GPIO, AudioSettings, Radio
from gateway.hardware.cat.registry import make_driver
from gateway.hardware.cm108.gpio import Cm108
from gateway.hardware.keying import CatPtt, Cm108Ptt, LinePtt, Ptt
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

LIMIT = 10 ** (-1 / 20)  # the daemon's output limiter: -1 dBFS peak
TONE_SECONDS = (1.0, 300.0)  # a stuck test tone is a stuck transmitter: capped
TONE_HZ = (50.0, 3500.0)  # within the 8 kHz path the daemon sends audio through
TONE_LEVEL_DBFS = (-60.0, 0.0)
FADE_S = 0.005  # raised-cosine edges: a hard start or stop splatters on the air
# Silence sent after the tone, PTT still on: the card's and the radio's audio paths still hold
# the last milliseconds of the tone when the card has taken it.
TAIL_S = 0.1


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


def tone_amplitude(level_dbfs: float, output_gain_db: float) -> tuple[float, bool]:
    """The tone's peak at the card (0..1) after the output gain and the daemon's -1 dBFS
    limiter, and whether the limiter cut it (a steady tone settles at exactly its limit)."""
    amplitude = 10 ** ((level_dbfs + output_gain_db) / 20)
    return (LIMIT, True) if amplitude > LIMIT else (amplitude, False)


def _transmitter(cfg: Config, name: str, radio: Radio, audio: AudioSettings) -> Ptt:
    """The radio's PTT as configured, not yet opened; refuses a radio that cannot be keyed."""
    ptt = radio.ptt
    if ptt is None or ptt.method == "none":
        raise AudioToolError(f"radio '{name}' has no PTT (ptt method none): it cannot be keyed")
    if ptt.method in ("rts", "dtr"):
        assert ptt.port is not None  # the config fills it from control.port
        return LinePtt(lines_of(cfg, ptt.port), name)
    if ptt.method == "cm108":
        path = hidraw_of(ptt.port, audio.output, "ptt")
        gpio = ptt.gpio or DEFAULT_CM108_GPIO
        return Cm108Ptt(Cm108(path, ptt_gpio=gpio, ptt_invert=ptt.invert))
    control = radio.control
    if control is None:  # the config refuses this; a clear line if it ever gets here
        raise AudioToolError(f"radio '{name}': ptt method cat needs control")
    conflict = cat_port_conflict(cfg, control.port)
    if conflict is not None:
        raise AudioToolError(f"radio '{name}' is not keyed: {conflict}")
    where = control.port or f"rigctld {control.host}:{control.tcp_port}"
    return CatPtt(make_driver(driver_settings(control)), where)


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
        self.source.column = column_of(audio.channel, channels)
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
    display = Display(out)
    async with stop_on_signals() as stop:
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
                    f"output {device_text(device)} at {player.rate} Hz, channel {audio.channel}: "
                    f"{hz:g} Hz at {level_dbfs:.1f} dBFS, output gain "
                    f"{db_text(audio.output_gain_db)}, {at_card:.1f} dBFS at the card{cut}, "
                    f"for {seconds:g} s; Ctrl-C stops"
                )
                with keying_errors():  # the PTT device's refusal, in the tool's words
                    await _transmit(display, transmitter, player, tx_delay, stop)
            finally:
                player.close()
    return 0


async def _transmit(
    display: Display,
    transmitter: Ptt,
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
        if await wait_for_stop(stop, tx_delay):
            return
        player.start()
        display.line("tone on")
        while player.active():
            player.check()
            if await wait_for_stop(stop, POLL_S):
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
