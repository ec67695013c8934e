"""Radios' audio through USB sound cards (PortAudio), as 8 kHz frames for the engine.

One PortAudio stream per device and direction, shared by the radios on it (a stereo card serves
two radios on its left and right channels). Device callbacks only move samples between the
card and per-radio FIFOs at the device's rate (with the input and output gain), under a lock
held for microseconds; they never resample or block. Everything else runs on the engine thread
at each tick:

- receive: the FIFO's new samples are resampled to 8 kHz (stateful, so blocks join without a
  click) into an 8 kHz FIFO; a `DriftCorrector` takes one frame from it, dropping or repeating a
  sample (in quiet stretches) so that the card's clock, 100-200 ppm off ours, never makes the
  latency grow or the FIFO starve; then, for all sound-card radios at once, CTCSS decoding (on
  the raw audio), the 300 Hz high-pass that removes sub-audible tones before routing, VOX, and
  automatic level control;
- transmit: output gain, a peak limiter at -1 dBFS, the same drift control against the output
  FIFO's level, then resampling to the device rate.

Underruns and overruns are counted per radio for `status`.

The engine's clock is the first input card (`pacer`): its callback signals each time a whole
frame has come in, and the engine ticks then, not on a timer of its own. A tick then comes just
after the frame it needs, so the radios on that card need almost no receive margin (a timer's
tick falls anywhere in a card block, so it must keep a block in hand); the other cards' clocks
are followed by drift control as before. When the clock card is lost the engine falls back to
its timer (see `gateway.run.loop`).

A card that vanishes (USB unplugged) is noticed by `check_streams`, which the site's watcher
calls a few times a second: PortAudio stops a stream whose ALSA device fails (ENODEV), and a
stream whose callbacks stop coming is as good as gone. Its radios then hear silence and send
nowhere until `reopen_stream` opens the same device again; the watcher takes their ports out of
service meanwhile.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from gateway.core.timing import SAMPLE_RATE
from gateway.dsp.ctcss import CtcssDetector
from gateway.dsp.drift import DriftCorrector, SampleFifo
from gateway.dsp.filters import HighPass
from gateway.dsp.level import AutoLevel
from gateway.dsp.resample import StreamingResampler
from gateway.dsp.vox import Vox
from gateway.hardware.sound.devices import SoundDevice, devices_of, find_device
from gateway.hardware.sound.frame_pacer import FramePacer

log = logging.getLogger(__name__)

LIMIT = 10 ** (-1 / 20)  # -1 dBFS
FIFO_SECONDS = 1.0
# No callback for this long and the card is gone. PortAudio stopping the stream is how an unplugged
# card normally shows; this catches a device that hangs instead, and is long enough (100 blocks of
# the default 20 ms) that a loaded machine's scheduling never trips it.
STALL_S = 2.0
DRIFT_SMOOTHING_FRAMES = 50.0
# A FIFO whose level, averaged over a second, is this far over its target is cut back at once:
# its card stalled and went on without catching up (see `DriftCorrector.catch_up`). Well above
# what a busy machine's bursts add to the average (40-60 ms seen here).
RESYNC_SAMPLES = SAMPLE_RATE * 120 // 1000
PACED_MARGIN = SAMPLE_RATE // 1000  # 1 ms at 8 kHz: the resamplers' rounding, no more


class SoundCardLost(Exception):
    """A sound card could not be opened again (still unplugged); one line."""


# What a sound card needs of a radio's settings, as read-only views: the config's `Radio`,
# `AudioSettings` and `SquelchSettings` (gateway.config.models) fit them, and hardware does
# not import the config.


class SoundCardSettings(Protocol):
    """A radio's sound card: devices, channel, rate and block, gains and receive processing."""

    @property
    def input(self) -> str: ...
    @property
    def output(self) -> str: ...
    @property
    def channel(self) -> str: ...  # left, right or mono
    @property
    def input_gain_db(self) -> float: ...
    @property
    def output_gain_db(self) -> float: ...
    @property
    def rate(self) -> int | None: ...  # None: the device's default
    @property
    def block_ms(self) -> int: ...
    @property
    def highpass(self) -> bool: ...
    @property
    def auto_level(self) -> bool: ...
    @property
    def target_dbfs(self) -> float: ...


class SoundSquelch(Protocol):
    """How a radio's carrier is found: the parts sound-card processing serves (CTCSS, VOX)."""

    @property
    def method(self) -> str: ...
    @property
    def ctcss_hz(self) -> float | None: ...
    @property
    def vox_threshold_dbfs(self) -> float | None: ...
    @property
    def vox_attack_ms(self) -> int | None: ...
    @property
    def vox_hang_ms(self) -> int | None: ...


class SoundRadio(Protocol):
    """A radio as the sound cards see it (None: not on a sound card, no squelch, not
    simulated)."""

    @property
    def audio(self) -> SoundCardSettings | None: ...
    @property
    def squelch(self) -> SoundSquelch | None: ...
    @property
    def simulated(self) -> object | None: ...


_RadioT = TypeVar("_RadioT", bound=SoundRadio)


@dataclass
class _Radio:
    name: str
    row: int  # index among the sound-card radios
    settings: SoundRadio
    in_fifo: SampleFifo = field(init=False)
    out_fifo: SampleFifo = field(init=False)
    rx8: SampleFifo = field(init=False)
    rx_drift: DriftCorrector = field(init=False)
    tx_drift: DriftCorrector = field(init=False)
    down: StreamingResampler | None = None
    up: StreamingResampler | None = None
    in_rate: int = 0
    out_rate: int = 0
    in_gain: float = 1.0
    out_gain: float = 1.0
    limiter_gain: float = 1.0
    underrun_blocks: int = 0  # output blocks the card wanted before we had them (its thread)
    paced: bool = False  # its input card is the engine's clock
    in_lost: bool = False  # its input card is gone: it hears silence, nothing is counted
    out_lost: bool = False  # its output card is gone: what it would send is dropped


@dataclass
class _Stream:
    device: SoundDevice
    rate: int
    channels: int
    block: int
    radios: list[tuple[_Radio, str]]  # radio, channel (left/right/mono)
    input: bool = True
    stream: Any = None
    last_callback: float = 0.0  # time.monotonic() of its last callback (the device's thread)
    lost: bool = False

    @property
    def label(self) -> str:
        return f"sound card {self.device.name!r} ({'input' if self.input else 'output'})"

    @property
    def radio_names(self) -> list[str]:
        return [radio.name for radio, _ in self.radios]


def _audio(radio: SoundRadio) -> SoundCardSettings:
    assert radio.audio is not None  # only sound-card radios are here
    return radio.audio


def _channel_index(channel: str, channels: int) -> int | None:
    """The column a radio uses in a device block (None: mono, all columns)."""
    if channel == "mono" or channels == 1:
        return None
    return 0 if channel == "left" else 1


class SoundCardAudio:
    """The sound-card radios of a site: open, close, and one engine frame in and out."""

    def __init__(self, radios: Mapping[str, SoundRadio], frame_samples: int) -> None:
        self.frame = frame_samples
        self.radios = [_Radio(name, row, r) for row, (name, r) in enumerate(radios.items())]
        self.names = [r.name for r in self.radios]
        self._lock = threading.Lock()
        # Every PortAudio call after the start (checking, closing and opening streams, and
        # PortAudio itself), one thread at a time, as PortAudio requires: the watcher's drop or
        # reopen of a lost card may still be running (hung in PortAudio, even) when the stop
        # closes everything, and PortAudio must not close one stream twice at once.
        self._streams_lock = threading.Lock()
        self._pa: Any = None
        self._inputs: list[_Stream] = []
        self._outputs: list[_Stream] = []
        n = len(self.radios)
        squelch = [r.settings.squelch for r in self.radios]
        tones = [q.ctcss_hz if q is not None and q.ctcss_hz else math.nan for q in squelch]
        self.ctcss_wanted = ~np.isnan(np.array(tones, dtype=np.float64))
        self._ctcss = CtcssDetector(n, np.array(tones)) if self.ctcss_wanted.any() else None
        self._highpass = HighPass(n)
        self._highpass_on = np.array([_audio(r.settings).highpass for r in self.radios])
        vox = [q is not None and q.method == "vox" for q in squelch]
        self.vox_ports = np.array(vox, dtype=bool)
        thresholds = [
            (q.vox_threshold_dbfs if q is not None and q.vox_threshold_dbfs is not None else -30.0)
            for q in squelch
        ]
        self._vox = Vox(
            n,
            np.array(thresholds),
            attack_ms=np.array(
                [(q.vox_attack_ms if q and q.vox_attack_ms else 40) for q in squelch]
            ),
            hang_ms=np.array([(q.vox_hang_ms if q and q.vox_hang_ms else 500) for q in squelch]),
            frame_ms=frame_samples * 1000 // SAMPLE_RATE,
        )
        audio = [_audio(r.settings) for r in self.radios]
        self._level_on = np.array([a.auto_level for a in audio])
        self._level = AutoLevel(n, target_dbfs=np.array([a.target_dbfs for a in audio]))
        self.vox = np.zeros(n, dtype=bool)
        self.tone = np.zeros(n, dtype=bool)
        self.underruns = np.zeros(n, dtype=np.int64)
        self.overruns = np.zeros(n, dtype=np.int64)
        # The engine's clock: the first input card, once open (None: no card, the timer rules).
        self.pacer: FramePacer | None = None
        self._clock_stream: _Stream | None = None
        # Frames of the clock card's input the pacer dropped (caught up with timer ticks, or
        # too far behind): taken out of its radios' FIFOs at the next tick, not heard late.
        self._skip_frames = 0

    # ------------------------------------------------------------------ life cycle
    def open(self) -> None:
        """Finds every device and opens its streams; raises SoundDeviceError (one line) for a
        device that is not there, listing what is."""
        import pyaudio

        from gateway.hardware.sound.devices import _portaudio_lock, _quiet_stderr

        with _portaudio_lock, _quiet_stderr():
            self._pa = pyaudio.PyAudio()
        devices = devices_of(self._pa)
        inputs: dict[int, _Stream] = {}
        outputs: dict[int, _Stream] = {}
        for radio in self.radios:
            a = _audio(radio.settings)
            card_in = find_device(a.input, "input", devices)
            card_out = find_device(a.output, "output", devices)
            inp = self._join(radio, card_in, card_in.max_input_channels, inputs, a)
            out = self._join(radio, card_out, card_out.max_output_channels, outputs, a)
            radio.in_rate, radio.out_rate = inp.rate, out.rate
        self._inputs, self._outputs = list(inputs.values()), list(outputs.values())
        if self._inputs:
            clock = self._clock_stream = self._inputs[0]
            self.pacer = FramePacer(
                round(clock.rate * self.frame / SAMPLE_RATE),
                self.frame / SAMPLE_RATE,
                on_skip=self._skip_clock_frames,
            )
        for radio in self.radios:
            self._prepare(radio, paced=self._on_clock(radio))
        for s in self._outputs:
            s.input = False
        for s in self._inputs + self._outputs:
            self._open_stream(s)
            log.info(
                "%s at %d Hz, %d channel(s), %d-frame blocks", s.label, s.rate, s.channels, s.block
            )

    def _open_stream(self, s: _Stream) -> None:
        callback = self._input_callback(s) if s.input else self._output_callback(s)
        s.last_callback = time.monotonic()  # the first callback may take a block or two
        s.stream = self._pa.open(stream_callback=callback, **_open_args(s))

    @staticmethod
    def _join(
        radio: _Radio,
        device: SoundDevice,
        have_channels: int,
        streams: dict[int, _Stream],
        a: SoundCardSettings,
    ) -> _Stream:
        """The stream of `device` in one direction (made by its first radio), with `radio` on it."""
        stream = streams.get(device.index)
        if stream is None:
            rate = a.rate or round(device.default_rate)
            channels = 2 if have_channels >= 2 else 1
            stream = _Stream(device, rate, channels, round(rate * a.block_ms / 1000), [])
            streams[device.index] = stream
        stream.radios.append((radio, a.channel))
        return stream

    def prepare_without_devices(self) -> None:
        """Sets every radio up at its `in_rate` / `out_rate` without opening a device (for the
        benchmark, which feeds the FIFOs as the cards would)."""
        for radio in self.radios:
            self._prepare(radio)

    def _on_clock(self, radio: _Radio) -> bool:
        clock = self._clock_stream
        return clock is not None and any(r is radio for r, _ in clock.radios)

    def _prepare(self, radio: _Radio, *, paced: bool = False) -> None:
        """FIFOs, drift control and resamplers of one radio, once its card rates are known.
        `paced`: its input card is the engine's clock."""
        a = _audio(radio.settings)
        block_s = a.block_ms / 1000
        radio.paced = paced
        radio.in_gain = 10 ** (a.input_gain_db / 20)
        radio.out_gain = 10 ** (a.output_gain_db / 20)
        radio.in_fifo = SampleFifo(round(radio.in_rate * FIFO_SECONDS))
        radio.out_fifo = SampleFifo(round(radio.out_rate * FIFO_SECONDS))
        radio.rx8 = SampleFifo(SAMPLE_RATE)
        block8 = round(SAMPLE_RATE * block_s)
        # Receive: a tick of the clock card's comes when its frame is in, so its radios keep a
        # millisecond over the frame; on any other card the tick falls anywhere in a block, so
        # they keep a block. Transmit: one card block queued before each frame is added.
        rx_margin = PACED_MARGIN if paced else block8
        # The levels are averaged over a second: cards and the sound server deliver in bursts
        # of a block or more, while 200 ppm of drift is one sample in 0.6 s.
        tolerance = max(8, block8 // 2)
        radio.rx_drift = DriftCorrector(
            self.frame + rx_margin,
            tolerance,
            smoothing_frames=DRIFT_SMOOTHING_FRAMES,
            resync_samples=RESYNC_SAMPLES,
        )
        out_target = round(radio.out_rate * block_s)
        radio.tx_drift = DriftCorrector(
            round(out_target * SAMPLE_RATE / radio.out_rate),
            tolerance,
            smoothing_frames=DRIFT_SMOOTHING_FRAMES,
            resync_samples=RESYNC_SAMPLES,
        )
        if radio.in_rate != SAMPLE_RATE:
            radio.down = StreamingResampler(radio.in_rate, SAMPLE_RATE, minimum_phase=True)
        if radio.out_rate != SAMPLE_RATE:
            radio.up = StreamingResampler(SAMPLE_RATE, radio.out_rate, minimum_phase=True)

    def close(self) -> None:
        """Closes every stream, then PortAudio. PortAudio may block here (a sound server that
        stopped answering): call it on a thread that can be left behind, with a time limit."""
        with self._streams_lock:
            for s in self._inputs + self._outputs:
                self._close_stream(s)
            if self._pa is not None:
                self._pa.terminate()
                self._pa = None

    @staticmethod
    def _close_stream(s: _Stream) -> None:
        if s.stream is not None:
            try:
                s.stream.stop_stream()
                s.stream.close()
            except Exception as exc:  # a vanished device: nothing left to close
                log.info("closing %s: %s", s.label, exc)
            s.stream = None

    # ------------------------------------------------------------------ device loss (watcher)
    def check_streams(self) -> list[tuple[_Stream, str]]:
        """Streams lost since the last check, each with why; their radios go silent at once.
        Cheap (no device I/O): call it a few times a second from one watcher."""
        # PortAudio is not thread-safe: its calls are made one thread at a time, this one too.
        # A drop, reopen or close in progress (hung in PortAudio, even) is not waited for: the
        # streams are checked again next time.
        if not self._streams_lock.acquire(blocking=False):
            return []
        try:
            return self._check_streams_locked()
        finally:
            self._streams_lock.release()

    def _check_streams_locked(self) -> list[tuple[_Stream, str]]:
        now = time.monotonic()
        lost: list[tuple[_Stream, str]] = []
        for s in self._inputs + self._outputs:
            if s.lost or s.stream is None:
                continue
            try:
                active = bool(s.stream.is_active())
            except Exception as exc:  # PortAudio refuses a stream whose device is gone
                active, reason = False, f"{exc}"
            else:
                reason = "the device stopped (unplugged?)"
            if active:
                silent_for = now - s.last_callback
                if silent_for <= STALL_S:
                    continue
                reason = f"no audio from the device for {silent_for:.1f} s (unplugged?)"
            self._mark_lost(s, True)
            lost.append((s, reason))
        return lost

    def drop_stream(self, s: _Stream) -> None:
        """Closes a lost stream (may take a moment on a dead device: call off the loop)."""
        with self._streams_lock:
            self._close_stream(s)

    def reopen_stream(self, s: _Stream) -> None:
        """Opens a lost stream's device again; SoundCardLost (one line) while it is missing.

        The same PortAudio device is opened again: a re-plugged USB card comes back under the
        same ALSA name (the kernel gives it the card number it had, unless another card took it
        meanwhile; `index=` in the snd-usb-audio options pins it)."""
        with self._streams_lock:
            if self._pa is None:  # closed meanwhile (the daemon is stopping)
                raise SoundCardLost(f"{s.label}: the sound cards are closed")
            self._close_stream(s)
            try:
                self._probe_device(s)
                self._open_stream(s)
            except Exception as exc:  # PortAudio's OSError / IOError: the device is not there
                s.stream = None
                detail = exc.args[0] if isinstance(exc, OSError) and exc.args else exc
                raise SoundCardLost(f"{s.label}: {detail}") from None
        self._mark_lost(s, False)

    def _probe_device(self, s: _Stream) -> None:
        """Starts and closes a blocking stream on `s`'s device: raises if it is not there.

        Why: an ALSA PCM may open and then fail to start (the PulseAudio plugin's does while
        its sink is missing). Starting a callback stream that fails makes PortAudio 19.6 race
        its own callback thread against a one-second wait (under load that thread is late),
        which has crashed and hung the daemon; a blocking stream starts on this thread, with no
        callback thread to race, so the usual failure - the card is still missing - is clean."""
        probe = self._pa.open(start=False, **_open_args(s))
        try:
            probe.start_stream()
        finally:
            probe.close()  # (an active stream is aborted: nothing is played or drained)

    def _mark_lost(self, s: _Stream, lost: bool) -> None:
        s.lost = lost
        if s is self._clock_stream and self.pacer is not None:
            self.pacer.reset(lost=lost)  # lost: the timer ticks from now on, without waiting
        with self._lock:
            for radio, _ in s.radios:
                if s.input:
                    radio.in_lost = lost
                    radio.in_fifo.clear()
                else:
                    radio.out_lost = lost
                    radio.out_fifo.clear()

    # ------------------------------------------------------------------ device threads
    def _input_callback(self, s: _Stream) -> Callable[..., tuple[None, int]]:
        import pyaudio

        columns = [(r, _channel_index(ch, s.channels)) for r, ch in s.radios]
        pacer = self.pacer if s is self._clock_stream else None

        def callback(data: bytes | None, frames: int, info: Any, status: int) -> tuple[None, int]:
            s.last_callback = time.monotonic()
            if data:
                block = np.frombuffer(data, dtype=np.int16).reshape(-1, s.channels)
                for radio, column in columns:
                    pcm = block.mean(axis=1) if column is None else block[:, column]
                    samples = pcm.astype(np.float32) * (radio.in_gain / 32768.0)
                    with self._lock:
                        radio.in_fifo.write(samples)
                if pacer is not None:  # after the write: the tick finds its frame there
                    pacer.feed(len(block))
            return None, pyaudio.paContinue

        return callback

    def _output_callback(self, s: _Stream) -> Callable[..., tuple[bytes, int]]:
        import pyaudio

        columns = [(r, _channel_index(ch, s.channels)) for r, ch in s.radios]

        def callback(data: bytes | None, frames: int, info: Any, status: int) -> tuple[bytes, int]:
            s.last_callback = time.monotonic()
            block = np.zeros((frames, s.channels), dtype=np.float32)
            for radio, column in columns:
                with self._lock:
                    samples, missing = radio.out_fifo.read(frames)
                if missing:
                    radio.underrun_blocks += 1
                if column is None:
                    block[:, :] = samples[:, None]
                else:
                    block[:, column] = samples
            pcm = np.clip(block * 32767.0, -32768, 32767).astype(np.int16)
            return pcm.tobytes(), pyaudio.paContinue

        return callback

    def _skip_clock_frames(self, frames: int) -> None:
        with self._lock:
            self._skip_frames += frames

    # ------------------------------------------------------------------ engine thread
    def receive(self) -> npt.NDArray[np.float32]:
        """One frame per sound-card radio: resampled, drift-corrected, tone-free, levelled.
        Also updates `vox` and `tone` (the wanted CTCSS tone present)."""
        n = len(self.radios)
        raw = np.zeros((n, self.frame), dtype=np.float32)
        skip = 0
        if self._skip_frames:  # rare: no lock taken on the ordinary tick
            with self._lock:
                skip, self._skip_frames = self._skip_frames * self.frame, 0
        for r in self.radios:
            if r.in_lost:
                continue  # silence, and no underruns to count: its port is out of service
            with self._lock:
                fresh, _ = r.in_fifo.read(r.in_fifo.level)
            pcm = r.down.process(fresh) if r.down is not None else fresh
            if r.rx8.write(pcm):
                self.overruns[r.row] += 1
            if skip and r.paced:  # keep this frame, drop what the pacer did not tick
                r.rx8.skip(min(skip, max(0, r.rx8.level - self.frame)))
            before = r.rx_drift.underruns
            raw[r.row] = r.rx_drift.pull(r.rx8, self.frame)
            if r.rx_drift.underruns != before:  # rare: no numpy item arithmetic on every tick
                self.underruns[r.row] += r.rx_drift.underruns - before
        if self._ctcss is not None:
            self.tone = self._ctcss.process(raw)
        clean = np.where(self._highpass_on[:, None], self._highpass.process(raw), raw)
        self.vox = self._vox.process(clean) & self.vox_ports
        levelled = self._level.process(clean)
        out: npt.NDArray[np.float32] = np.where(self._level_on[:, None], levelled, clean).astype(
            np.float32
        )
        return out

    def send(self, frames: npt.NDArray[np.float32]) -> None:
        """One engine frame per sound-card radio to its card (gain, limiter, drift, resample)."""
        radios = [r for r in self.radios if not r.out_lost]
        if not radios:
            return
        # Output gain and limiter for all radios at once (a few numpy calls instead of a few
        # per radio), with the arithmetic of one radio at a time: the gains in the frames'
        # dtype, as a Python float multiplying them would be.
        x_all = np.asarray(frames)
        gains = np.array([r.out_gain for r in self.radios], dtype=x_all.dtype)
        x_all = x_all * gains[:, np.newaxis]
        peaks = np.abs(x_all).max(axis=1, initial=0.0).astype(np.float64)
        # Instant attack, 250 ms release: a loud frame never clips the card's output.
        allowed = np.divide(LIMIT, peaks, out=np.ones_like(peaks), where=peaks > LIMIT)
        held = np.array([r.limiter_gain for r in self.radios])
        limiter = np.minimum(allowed, 1.0 - (1.0 - held) * 0.92)
        x_all = x_all * limiter.astype(x_all.dtype)[:, np.newaxis]
        for r in radios:
            r.limiter_gain = float(limiter[r.row])
            x = x_all[r.row]
            with self._lock:
                level = r.out_fifo.level
            level8 = round(level * SAMPLE_RATE / r.out_rate)
            step = r.tx_drift.decide(level8, x)
            if step > 0:
                x = x[:-1]  # the card is slower than our clock: one sample fewer
            elif step < 0:
                x = np.append(x, x[-1])  # faster: one sample more
            behind = r.tx_drift.catch_up(level8)  # the card stalled and did not catch up
            pcm = r.up.process(x) if r.up is not None else x
            with self._lock:
                if behind:
                    r.out_fifo.skip(round(behind * r.out_rate / SAMPLE_RATE))
                if r.out_fifo.write(pcm):
                    self.overruns[r.row] += 1
            if behind:
                log.warning(
                    "%s: its card fell %.0f ms behind (it stalled): dropped to keep up",
                    r.name,
                    behind * 1000 / SAMPLE_RATE,
                )

    def stats(self) -> dict[str, dict[str, int | float]]:
        """Per radio: FIFO under/overruns, clock-drift corrections so far, and how much audio
        its FIFOs hold now (ms): the receive side waiting for a tick, the transmit side waiting
        for the card. In steady state the transmit FIFO holds about one card block (the target
        of drift control) and at most one more block and frame while a burst is in flight."""
        with self._lock:
            levels = [(r.in_fifo.level, r.out_fifo.level) for r in self.radios]
        return {
            r.name: {
                "underruns": int(self.underruns[r.row]) + r.underrun_blocks,
                "overruns": int(self.overruns[r.row]),
                "rx_drift_corrections": r.rx_drift.drops + r.rx_drift.inserts,
                "tx_drift_corrections": r.tx_drift.drops + r.tx_drift.inserts,
                "rx_resyncs": r.rx_drift.resyncs,
                "tx_resyncs": r.tx_drift.resyncs,
                "rx_fifo_ms": _ms(in_level, r.in_rate) + _ms(r.rx8.level, SAMPLE_RATE),
                "tx_fifo_ms": _ms(out_level, r.out_rate),
            }
            for r, (in_level, out_level) in zip(self.radios, levels, strict=True)
        }

    def clock_stats(self) -> dict[str, int | str] | None:
        """What the engine's clock card did (`PacerStats`), or None when the timer rules."""
        if self.pacer is None or self._clock_stream is None:
            return None
        return {
            "card": self._clock_stream.device.name,
            **self.pacer.stats.summary(),
            "backlog": self.pacer.backlog,
        }


def _ms(samples: int, rate: int) -> float:
    return round(samples * 1000 / rate, 1) if rate else 0.0


def sound_card_radios(names: Sequence[str], radios: Mapping[str, _RadioT]) -> dict[str, _RadioT]:
    """Radios whose audio is a sound card, in engine port order."""
    return {
        n: radios[n]
        for n in names
        if n in radios and radios[n].audio is not None and radios[n].simulated is None
    }


def _open_args(s: _Stream) -> dict[str, Any]:
    """PyAudio's `open` arguments for `s`: its device, direction, format, rate and block."""
    import pyaudio

    args: dict[str, Any] = {
        "format": pyaudio.paInt16,
        "channels": s.channels,
        "rate": s.rate,
        "frames_per_buffer": s.block,
    }
    if s.input:
        return args | {"input": True, "input_device_index": s.device.index}
    return args | {"output": True, "output_device_index": s.device.index}
