"""Audio benchmark: CPU per sound-card radio, and the latency the gateway adds between two cards.

    .venv/bin/python -m bench.audio [--radios 8] [--seconds 30]
        [--latency-only | --cpu-only] [--clicks 200] [--rounds 8] [--block-ms 10]
        [--keepalive-ms 10] [--load N] [--soak-s 300]

CPU: `SoundCardAudio` driven as the engine thread does (receive then send, once per 20 ms frame)
with its card FIFOs fed and drained as 48 kHz (or 44.1 kHz) cards would, without devices: the
cost measured is the gateway's own (resampling both ways, drift control, CTCSS decoding, high-pass,
VOX, auto level, limiter), not the sound system's. Target: 8 radios under 15 % of one core.

Latency: what radio A's receiver plays into its card until it comes out of radio B's card, on a
private PulseAudio (tests/support/audio_env.py: null sinks `a_rx`, `a_tx`, `b_rx`, `b_tx` and
their ALSA `pulse` PCMs), side by side for
  (a) a bare passthrough in this process: two PyAudio callback streams, input from `a_rx`'s
      monitor and output into `b_tx`, at the gateway's rate, sample format, channels and block
      size, joined by a FIFO with no priming (the output takes what has come in and plays
      silence for what has not, so the FIFO settles at the least the sound system's jitter
      needs): the floor, what the sound system itself costs;
  (b) the gateway: a real `crosspatch run` subprocess with radio A on `a_rx`/`a_tx`, radio B on
      `b_rx`/`b_tx` (48 kHz, `block_ms` as given, auto level off), patched together,
      `tx_delay_ms: 0`, VOX squelch.
Target: (b) adds at most one frame (20 ms) over (a). The verdict is on the difference of the
medians over all bursts; the differences of each round's medians are printed beside it.

Method. A null sink has no hardware clock: it renders on a timer, up to its block ahead, so a
click played into a sink can reach its monitor "early", and wall-clock timestamps of separate
streams are only good to ~50 ms. So the measurement never uses wall-clock time: one full-duplex
PyAudio stream (the meter) plays into `a_rx` and records `b_tx`'s monitor; its input and output
advance by the same frame count at every callback, so a burst written at output sample n and
found at input sample m took m - n samples. That figure also holds the meter's own buffering and
the sinks' render-ahead (the "rig"), which are fixed while the meter's stream is open. Both paths
therefore run at once through the whole round, each with its streams open on the same sinks, and
only one of them passes audio at a time: the bare passthrough plays silence while muted, and the
gateway's patch is disabled (its card streams keep running, playing silence). The meter switches
between them every segment (a, b, a, b; b, a, b, a in the next round), so the rig's offsets are
the same in both and cancel in the difference. Each round starts everything afresh (daemon,
streams, meter), because where a stream's callbacks fall against a sink's render timer is drawn
anew at each open and shifts that stream's latency by up to a block; the figures are over all
rounds. A round in which the meter's own stream reports an xrun (its input and output no longer
line up) is discarded and run again. "rig loop" is the meter alone (playing into `a_rx`,
recording `a_rx`'s monitor), for scale: it is not subtracted from anything. The counters below
the table (the gateway's card underruns and drift corrections, the bare FIFO's level) are over
the measured stretches only, not the start-up.

Signal. Bursts are 10 ms Hann-windowed chirps from 1 to 3 kHz at -6 dBFS peak (inside the
gateway's 300 Hz high-pass and 3.4 kHz resampler pass-band), found by cross-correlation to the
sample; they are 250-300 ms apart at random sample offsets, so they fall at every phase of the
cards' blocks and of the engine's 20 ms tick. Under them a continuous 500 Hz tone (out of the
chirp's band) holds radio A's VOX squelch open for the whole run: the bursts are inside one long
carrier, so neither VOX attack (which delays the first syllable of a call by design, and a
minimal attack would still cost a frame and key on the burst itself) nor squelch tail nor call
set-up is in the figure, only the audio path. The tone is at -50 dBFS peak (-53 dBFS RMS) and
the VOX threshold at -60 dBFS: open, yet below the -50 dBFS under which the drift control counts
a frame as quiet. With a louder carrier no frame would ever be quiet, the FIFOs would never be
trimmed back towards their targets (only corrected beyond twice the tolerance) and the figure
would depend on where start-up left them; with this one they behave as in speech with pauses.
The first burst of a segment comes 0.8 s after the switch, the last leaves 0.4 s before the
next.

Soak (--soak-s S): one run of at least S seconds (take 300 or more) in which the two paths take
turns as above, without restarting anything; the gateway's added latency is printed minute by
minute. Target: the last minute within 10 ms of the first (the engine ticks once per frame of
its clock card, so nothing piles up in the FIFOs however the cards bunch their blocks).

--load N runs N CPU-burning processes beside everything; the first line says the machine and the
load. Both paths meet the same load at normal priority. The instruments do not: the meter runs in
a process of its own and, with the sound server, at nice -15 (as root), as a desktop's sound
server runs with real-time priority; otherwise under two burners the meter's own stream loses
samples in every round and no round can be measured.

--keepalive-ms sets the latency of the loopback that keeps each null sink rendering in short
blocks. AudioEnv's 50 ms quantises both paths' latencies to 10 ms steps here; the bench's 10 ms
gives finer and steadier figures, at twice PulseAudio's CPU. The machine is shared: the figures
are noisy, but (a) and (b) always see the same load.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing import shared_memory
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from scipy import signal

from bench.machine import cpu_burners, describe
from gateway.config.models import AudioSettings, Radio
from gateway.control.control_socket import request
from gateway.core.timing import SAMPLE_RATE
from gateway.dsp.signals import speech_like
from gateway.hardware.sound.devices import devices_of, find_device, open_portaudio
from gateway.hardware.sound.ports import SoundCardAudio
from tests.support.audio_env import (
    DISCARD_SINK,
    KEEPALIVE_LATENCY_MS,
    AudioEnv,
    missing_requirements,
    raise_priority,
)
from tests.support.daemon import Daemon, Site

if TYPE_CHECKING:
    import pyaudio

Samples = npt.NDArray[np.float32]

FRAME = 160

# ------------------------------------------------------------------------------------------- CPU


def radios(count: int, rate: int) -> dict[str, Radio]:
    return {
        f"r{i}": Radio.model_validate(
            {
                "talkgroup": "ag/tg",
                "audio": {"input": "card", "output": "card", "rate": rate},
                "ptt": {"method": "none"},
                "squelch": {"method": "vox", "ctcss_hz": 100.0},
            }
        )
        for i in range(count)
    }


def measure(count: int, rate: int, seconds: float) -> float:
    """Fraction of one core that `count` radios at `rate` take."""
    audio = SoundCardAudio(radios(count, rate), FRAME)
    # What `open` sets up from the devices, here without devices.
    for r in audio.radios:
        r.in_rate = r.out_rate = rate
    audio.prepare_without_devices()
    frames = round(seconds * SAMPLE_RATE / FRAME)
    per_frame = rate * FRAME // SAMPLE_RATE
    voice = speech_like(seconds + 1, -12, np.random.default_rng(1))
    card = np.repeat(voice, rate // SAMPLE_RATE + 1)[: frames * per_frame + per_frame]
    tx = np.zeros((count, FRAME), dtype=np.float32)
    busy = 0.0
    for f in range(frames):
        block = card[f * per_frame : (f + 1) * per_frame].astype(np.float32)
        for r in audio.radios:
            r.in_fifo.write(block)  # what the input callback would have written
            r.out_fifo.read(per_frame)  # what the output callback would have taken
        start = time.perf_counter()
        rx = audio.receive()
        tx[:] = rx[::-1]
        audio.send(tx)
        busy += time.perf_counter() - start
    return busy / (frames * FRAME / SAMPLE_RATE)


def run_cpu(count: int, seconds: float) -> None:
    print(f"CPU for sound-card radios, all DSP on, {seconds:g} s of audio each")
    print(f"{'radios':>6} {'rate':>7} {'% of one core':>14} {'per radio %':>12}")
    for rate in (48000, 44100):
        for n in (1, count):
            load = measure(n, rate, seconds) * 100
            print(f"{n:>6} {rate:>7} {load:>14.2f} {load / n:>12.2f}", flush=True)


# --------------------------------------------------------------------------------------- latency

RATE = 48000
METER_BLOCK = 480  # the meter's own block (10 ms); it cancels in the difference
BURST_S = 0.010
BURST_DBFS = -6.0
HOLD_HZ = 500.0
HOLD_DBFS = -50.0
VOX_THRESHOLD_DBFS = -60.0
SPACING_S = (0.25, 0.30)  # between bursts; also the search window after each
LEAD_S = 0.8  # from a switch to the first burst of a segment
TAIL_S = 0.4  # from the last burst of a segment to the next switch
KEEPALIVE_MS = 10  # finer than AudioEnv's 50 ms: see the module docstring
RIG_CLICKS = 10  # per round, for the "rig loop" row
SEGMENTS = 2  # per path and round
FOUND = (0.3, 3.0)  # a burst counts when the correlation peak is this fraction of the template's
SINKS = ("a_rx", "a_tx", "b_rx", "b_tx")
PATCH = "bench"
BARE, GATEWAY, RIG = "bare", "gateway", "rig"

SITE = """\
gateway: {{id: bench-audio, frame_ms: 20, state_dir: {state_dir}}}
agencies:
  alpha:
    name: Agency Alpha
    country: CA
    talkgroups:
      tac: {{rx_mhz: 142.470}}
  bravo:
    name: Agency Bravo
    country: US
    talkgroups:
      ops: {{rx_mhz: 163.100}}
radios:
  radio-a:
    talkgroup: alpha/tac
    audio: {{input: a_rx_rec, output: a_tx_play, rate: {rate}, block_ms: {block_ms},
             auto_level: false}}
    ptt: {{method: none}}
    squelch: {{method: vox, vox_threshold_dbfs: {vox}}}
    timing: {{tx_delay_ms: 0, hang_ms: 300}}
  radio-b:
    talkgroup: bravo/ops
    audio: {{input: b_rx_rec, output: b_tx_play, rate: {rate}, block_ms: {block_ms},
             auto_level: false}}
    ptt: {{method: none}}
    squelch: {{method: vox, vox_threshold_dbfs: {vox}}}
    timing: {{tx_delay_ms: 0, hang_ms: 300}}
patches:
  {patch}: {{members: [alpha/tac, bravo/ops], enabled: false}}
access:
  technicians: [tech1]
"""


class BenchAudioEnv(AudioEnv):
    """AudioEnv whose sinks' keep-alive loopbacks ask for `keepalive_ms` instead of 50 ms."""

    def __init__(self, keepalive_ms: int) -> None:
        super().__init__()
        self.keepalive_ms = keepalive_ms

    def add_sink(self, name: str, *, rate: int = 48000, channels: int = 2) -> str:
        sink = super().add_sink(name, rate=rate, channels=channels)
        if self.keepalive_ms != KEEPALIVE_LATENCY_MS:
            entry = self._sinks[sink]
            shorter = self.pactl(
                "load-module",
                "module-loopback",
                f"source={sink}.monitor",
                f"sink={DISCARD_SINK}",
                f"latency_msec={self.keepalive_ms}",
                "source_dont_move=true",
                "sink_dont_move=true",
            )
            self.pactl("unload-module", entry.keepalive_module)
            entry.keepalive_module = shorter
            self._wake(sink)  # restart its clock with the new block
        return sink


# ---- the signal


def burst() -> Samples:
    """The template: a Hann-windowed 1-3 kHz chirp."""
    t = np.arange(round(BURST_S * RATE)) / RATE
    chirp: npt.NDArray[np.float64] = signal.chirp(t, f0=1000.0, t1=t[-1], f1=3000.0)
    peak = 10 ** (BURST_DBFS / 20)
    template: Samples = (peak * np.hanning(t.size) * chirp).astype(np.float32)
    return template


@dataclass
class Program:
    """What the meter plays: the hold tone throughout, bursts at `bursts` (output sample, path),
    and `switches` (output sample, path): where the path that passes audio changes."""

    samples: Samples
    bursts: list[tuple[int, str]]
    switches: list[tuple[int, str]]


def make_program(order: list[str], clicks: int, rng: np.random.Generator) -> Program:
    """Segments of `clicks` bursts, one per entry of `order`, each passed by that path."""
    template = burst()
    bursts: list[tuple[int, str]] = []
    switches: list[tuple[int, str]] = []
    at = 0
    low, high = (round(s * RATE) for s in SPACING_S)
    for path in order:
        switches.append((at, path))
        at += round(LEAD_S * RATE)
        for k in range(clicks):
            if k:
                at += int(rng.integers(low, high))
            bursts.append((at, path))
        at += low + round(TAIL_S * RATE)
    t = np.arange(at) / RATE
    samples = (10 ** (HOLD_DBFS / 20) * np.sin(2 * np.pi * HOLD_HZ * t)).astype(np.float32)
    for start, _ in bursts:
        samples[start : start + template.size] += template
    return Program(samples, bursts, switches)


def find_bursts(program: Program, recorded: Samples) -> dict[str, list[float | None]]:
    """Per path, each burst's latency in ms from output to input sample (None: not found)."""
    template = burst()
    energy = float(np.dot(template, template))
    window = round(SPACING_S[0] * RATE)
    found: dict[str, list[float | None]] = {}
    for at, path in program.bursts:
        part = recorded[at : at + window + template.size]
        latency: float | None = None
        if part.size >= template.size:
            corr = signal.correlate(part, template, mode="valid")
            k = int(np.argmax(corr))
            if FOUND[0] <= corr[k] / energy <= FOUND[1]:
                latency = k / RATE * 1000
        found.setdefault(path, []).append(latency)
    return found


# ---- the streams


def device(pa: pyaudio.PyAudio, pcm: str, direction: str) -> int:
    devices = devices_of(pa)
    return find_device(pcm, "input" if direction == "input" else "output", devices).index


def meter_child(
    play_pcm: str,
    record_pcm: str,
    play_name: str,
    record_name: str,
    total: int,
    position: Any,
    xruns: Any,
    done: Any,
) -> None:
    """The meter's process: one full-duplex stream, program out, recording in, sample for sample
    on the same count, at raised priority (set before PortAudio starts its threads)."""
    import pyaudio

    raise_priority(os.getpid())
    play = shared_memory.SharedMemory(play_name)
    record = shared_memory.SharedMemory(record_name)
    program: Samples = np.ndarray((total,), dtype=np.float32, buffer=play.buf)
    recorded: Samples = np.ndarray((total,), dtype=np.float32, buffer=record.buf)

    def callback(data: bytes | None, frames: int, info: Any, status: int) -> tuple[bytes, int]:
        at = position.value
        if data:
            got = np.frombuffer(data, dtype=np.float32)[: max(0, total - at)]
            recorded[at : at + got.size] = got
        out = np.zeros(frames, dtype=np.float32)
        part = program[at : at + frames]
        out[: part.size] = part
        position.value = at + frames
        xruns.value += status != 0
        if at + frames >= total:
            done.set()
            return out.tobytes(), pyaudio.paComplete
        return out.tobytes(), pyaudio.paContinue

    with open_portaudio() as pa:
        stream = pa.open(
            rate=RATE,
            channels=1,
            format=pyaudio.paFloat32,
            input=True,
            output=True,
            input_device_index=device(pa, record_pcm, "input"),
            output_device_index=device(pa, play_pcm, "output"),
            frames_per_buffer=METER_BLOCK,
            stream_callback=callback,
        )
        done.wait(total / RATE + 10)
        stream.close()
    # The shared blocks stay mapped until this process exits; the parent unlinks them.


class Meter:
    """One full-duplex stream in a process of its own at raised priority: plays a program into
    one sink while recording another's monitor, sample for sample on the same count."""

    def __init__(self, play_pcm: str, record_pcm: str, program: Program):
        self.program = program
        total = program.samples.size
        self._play = shared_memory.SharedMemory(create=True, size=max(4, total * 4))
        self._record = shared_memory.SharedMemory(create=True, size=max(4, total * 4))
        np.ndarray((total,), dtype=np.float32, buffer=self._play.buf)[:] = program.samples
        context = multiprocessing.get_context("spawn")  # no fork of this process's PortAudio
        self._position = context.Value("q", 0, lock=False)
        self._xruns = context.Value("q", 0, lock=False)
        self.done = context.Event()
        self._process = context.Process(
            target=meter_child,
            args=(
                play_pcm,
                record_pcm,
                self._play.name,
                self._record.name,
                total,
                self._position,
                self._xruns,
                self.done,
            ),
            daemon=True,
        )
        self._process.start()
        self.recorded: Samples = np.zeros(total, dtype=np.float32)

    @property
    def position(self) -> int:
        return int(self._position.value)

    @property
    def xruns(self) -> int:
        return int(self._xruns.value)

    def close(self) -> None:
        self._process.join(10)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()
        total = self.program.samples.size
        self.recorded = np.ndarray((total,), dtype=np.float32, buffer=self._record.buf).copy()
        for memory in (self._play, self._record):
            memory.close()
            memory.unlink()


class BarePassthrough:
    """Input callback stream from `a_rx`'s monitor, output callback stream into `b_tx`, joined by
    a FIFO of raw blocks; muted, it plays silence but takes from the FIFO all the same."""

    def __init__(self, pa: pyaudio.PyAudio, in_pcm: str, out_pcm: str, block: int) -> None:
        import pyaudio

        self.muted = True
        self.underruns = 0
        self.levels: list[int] = []  # frames left in the FIFO after each output block
        self._buffer = bytearray()
        self._lock = threading.Lock()
        self._frame_bytes = 2 * 2  # int16 stereo, like the gateway's streams
        streams: dict[str, Any] = {
            "rate": RATE,
            "channels": 2,
            "format": pyaudio.paInt16,
            "frames_per_buffer": block,
        }
        self._output = pa.open(
            output=True,
            output_device_index=device(pa, out_pcm, "output"),
            stream_callback=self._play,
            **streams,
        )
        self._input = pa.open(
            input=True,
            input_device_index=device(pa, in_pcm, "input"),
            stream_callback=self._record,
            **streams,
        )

    def _record(self, data: bytes | None, frames: int, info: Any, status: int) -> tuple[None, int]:
        import pyaudio

        if data:
            with self._lock:
                self._buffer += data
        return None, pyaudio.paContinue

    def _play(self, data: bytes | None, frames: int, info: Any, status: int) -> tuple[bytes, int]:
        import pyaudio

        wanted = frames * self._frame_bytes
        with self._lock:
            out = bytes(self._buffer[:wanted])
            del self._buffer[:wanted]
            self.levels.append(len(self._buffer) // self._frame_bytes)
        if len(out) < wanted:
            self.underruns += 1
            out += bytes(wanted - len(out))
        return (bytes(wanted) if self.muted else out), pyaudio.paContinue

    def close(self) -> None:
        for stream in (self._input, self._output):
            stream.close()


class Gateway:
    """`crosspatch run` on the bench's site; `passing` enables or disables its patch."""

    def __init__(self, folder: Path, rate: int, block_ms: int) -> None:
        self.site = Site(folder)
        self.site.config.write_text(
            SITE.format(
                state_dir=self.site.state_dir,
                rate=rate,
                block_ms=block_ms,
                vox=VOX_THRESHOLD_DBFS,
                patch=PATCH,
            )
        )
        self.daemon: Daemon = self.site.start()
        self.site.wait_ready(self.daemon)

    def passing(self, on: bool) -> None:
        command = "patch.enable" if on else "patch.disable"
        reply = request(self.site.socket, command, {"patch": PATCH})
        if not reply["ok"]:
            raise SystemExit(f"{command}: {reply['error']}")

    def audio_totals(self) -> dict[str, int]:
        """The cards' counters so far (underruns, overruns, drift corrections), both radios."""
        totals: dict[str, int] = {}
        radios: dict[str, dict[str, int]] = self.site.status()["audio"]
        for stats in radios.values():
            for key, value in stats.items():
                if not key.endswith("_ms"):  # FIFO depths are levels, not counters
                    totals[key] = totals.get(key, 0) + value
        return totals

    def close(self) -> None:
        try:
            if self.daemon.proc.poll() is None and self.daemon.stop() != 0:
                print("crosspatch run did not exit cleanly:\n" + self.daemon.log())
        finally:
            self.site.close()


# ---- one round


@dataclass
class Round:
    """What one round found: per path, each burst's latency in ms (None: not found)."""

    found: dict[str, list[float | None]] = field(default_factory=dict)
    meter_xruns: int = 0
    bare_underruns: int = 0
    bare_levels: list[int] = field(default_factory=list)
    gateway_stats: dict[str, int] = field(default_factory=dict)


@dataclass
class Results:
    latencies: dict[str, list[float]] = field(default_factory=dict)
    missed: dict[str, int] = field(default_factory=dict)
    round_medians: dict[str, list[float]] = field(default_factory=dict)
    discarded: int = 0  # rounds in which the meter's stream lost samples
    bare_underruns: int = 0
    bare_levels: list[int] = field(default_factory=list)
    gateway_stats: dict[str, int] = field(default_factory=dict)

    def add(self, result: Round) -> None:
        for path, values in result.found.items():
            good = [v for v in values if v is not None]
            self.latencies.setdefault(path, []).extend(good)
            self.missed[path] = self.missed.get(path, 0) + len(values) - len(good)
            if good:
                self.round_medians.setdefault(path, []).append(statistics.median(good))
        self.bare_underruns += result.bare_underruns
        self.bare_levels += result.bare_levels
        for key, value in result.gateway_stats.items():
            self.gateway_stats[key] = self.gateway_stats.get(key, 0) + value


def wait_until(meter: Meter, position: int) -> None:
    while meter.position < position and not meter.done.is_set():
        time.sleep(0.005)


def finish(meter: Meter) -> None:
    if not meter.done.wait(meter.program.samples.size / RATE + 10):
        raise SystemExit("the meter's stream stalled")
    meter.close()


def run_round(
    env: AudioEnv,
    folder: Path,
    order: list[str],
    clicks: int,
    block_ms: int,
    rng: np.random.Generator,
) -> Round:
    result = Round()
    gateway = Gateway(folder, RATE, block_ms)
    try:
        with open_portaudio() as pa:
            bare = BarePassthrough(
                pa, env.pcm_record("a_rx"), env.pcm_play("b_tx"), round(RATE * block_ms / 1000)
            )
            try:
                # The meter alone, A's card to its own monitor, for scale.
                rig = make_program([RIG], RIG_CLICKS, rng)
                meter = Meter(env.pcm_play("a_rx"), env.pcm_record("a_rx"), rig)
                finish(meter)
                result.found |= find_bursts(rig, meter.recorded)
                result.meter_xruns += meter.xruns

                before = gateway.audio_totals()
                bare_before = bare.underruns
                program = make_program(order, clicks, rng)
                meter = Meter(env.pcm_play("a_rx"), env.pcm_record("b_tx"), program)
                for at, path in program.switches:
                    wait_until(meter, at)
                    # Mute one before the other passes: never both at once.
                    if path == BARE:
                        gateway.passing(False)
                        bare.muted = False
                    else:
                        bare.muted = True
                        gateway.passing(True)
                finish(meter)
                result.found |= find_bursts(program, meter.recorded)
                result.meter_xruns += meter.xruns
                result.bare_underruns = bare.underruns - bare_before
                result.bare_levels = bare.levels[len(bare.levels) // 2 :]  # settled
                after = gateway.audio_totals()
                result.gateway_stats = {key: after[key] - before.get(key, 0) for key in after}
            finally:
                bare.close()
    finally:
        gateway.close()
    return result


@contextmanager
def audio_env(keepalive_ms: int) -> Iterator[AudioEnv]:
    reason = missing_requirements()
    if reason is not None:
        raise SystemExit(f"{reason}: run scripts/setup, which installs it")
    with BenchAudioEnv(keepalive_ms) as env:
        for sink in SINKS:
            env.add_sink(sink)
        if env.pid is None or not raise_priority(env.pid):
            print("(could not raise the sound server's priority: run as root)", file=sys.stderr)
        yield env


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0 to 100) by lower nearest rank."""
    return sorted(values)[int(q / 100 * (len(values) - 1))]


def run_latency(clicks: int, rounds: int, block_ms: int, keepalive_ms: int) -> bool:
    """Prints the latency table; True when the target is met."""
    per_segment = max(1, round(clicks / rounds / SEGMENTS))
    print(
        f"latency, radio A's card to radio B's card: {RATE} Hz, {block_ms} ms card blocks, "
        f"{per_segment * SEGMENTS * rounds} bursts per path in {rounds} rounds, "
        f"keep-alive {keepalive_ms} ms",
        flush=True,
    )
    results = Results()
    rng = np.random.default_rng(1)
    done = 0
    with audio_env(keepalive_ms) as env, tempfile.TemporaryDirectory() as tmp:
        for attempt in range(2 * rounds):
            order = [BARE, GATEWAY] if done % 2 == 0 else [GATEWAY, BARE]
            folder = Path(tmp) / f"round{attempt}"
            folder.mkdir()
            result = run_round(env, folder, order * SEGMENTS, per_segment, block_ms, rng)
            if result.meter_xruns:  # its output and input no longer line up: start again
                results.discarded += 1
                print(f"  round {done + 1}: the meter lost samples, again", file=sys.stderr)
                continue
            results.add(result)
            done += 1
            print(f"  round {done}/{rounds} done", file=sys.stderr, flush=True)
            if done == rounds:
                break
    labels = {
        RIG: "rig loop (meter into A, A's monitor)",
        BARE: "(a) bare pyaudio passthrough",
        GATEWAY: "(b) crosspatch run, tx_delay 0",
    }
    header = f"{'path':<38} {'bursts':>6} {'missed':>6} {'median ms':>9} {'p95 ms':>7} "
    print(header + f"{'min ms':>7} {'max ms':>7}  round medians ms")
    for path, label in labels.items():
        values = results.latencies.get(path, [])
        missed = results.missed.get(path, 0)
        if not values:
            print(f"{label:<38} {0:>6} {missed:>6}  (nothing found)")
            continue
        rounds_text = " ".join(f"{m:.1f}" for m in results.round_medians[path])
        print(
            f"{label:<38} {len(values):>6} {missed:>6} {statistics.median(values):>9.2f} "
            f"{percentile(values, 95):>7.2f} {min(values):>7.2f} {max(values):>7.2f}  "
            f"{rounds_text}"
        )
    bare, gw = results.latencies.get(BARE, []), results.latencies.get(GATEWAY, [])
    if not bare or not gw:
        print("no difference: a path passed no burst")
        return False
    added = statistics.median(gw) - statistics.median(bare)
    added95 = percentile(gw, 95) - percentile(bare, 95)
    paired = [
        g - b
        for g, b in zip(results.round_medians[GATEWAY], results.round_medians[BARE], strict=False)
    ]
    print(
        f"{'(b) - (a)':<38} {'':>6} {'':>6} {added:>9.2f} {added95:>7.2f} {'':>7} {'':>7}  "
        + " ".join(f"{d:.1f}" for d in paired)
    )
    stats = ", ".join(f"{key} {value}" for key, value in results.gateway_stats.items())
    print(f"gateway's cards while measured (both radios): {stats}")
    if results.bare_levels:
        fifo_ms = statistics.median(results.bare_levels) / RATE * 1000
        print(
            f"bare passthrough: FIFO holds {fifo_ms:.1f} ms (median), "
            f"underruns while measured {results.bare_underruns}"
        )
    if results.discarded:
        print(f"rounds discarded (the meter's stream lost samples): {results.discarded}")
    met = added <= 20.0
    verdict = "met" if met else "NOT met"
    print(
        f"target: the gateway adds at most one frame (20 ms): {verdict} (+{added:.1f} ms; "
        f"median of the rounds' differences +{statistics.median(paired):.1f} ms)"
    )
    return met


def segment_medians(values: list[float | None], per_segment: int) -> list[float | None]:
    """The median latency of each segment's bursts (None: the segment found none)."""
    medians: list[float | None] = []
    for start in range(0, len(values), per_segment):
        good = [v for v in values[start : start + per_segment] if v is not None]
        medians.append(statistics.median(good) if good else None)
    return medians


def run_soak(seconds: float, block_ms: int, keepalive_ms: int) -> bool:
    """One long round, the two paths taking turns, and the gateway's added latency minute by
    minute: it must not drift (the last minute within 10 ms of the first)."""
    per_segment = 20
    segment_s = LEAD_S + per_segment * statistics.mean(SPACING_S) + TAIL_S
    pairs = max(2, math.ceil(seconds / (2 * segment_s)))
    print(
        f"soak, radio A's card to radio B's card for {2 * pairs * segment_s / 60:.1f} min in one "
        f"run: {RATE} Hz, {block_ms} ms card blocks, keep-alive {keepalive_ms} ms",
        flush=True,
    )
    rng = np.random.default_rng(2)
    with audio_env(keepalive_ms) as env, tempfile.TemporaryDirectory() as tmp:
        for attempt in range(3):
            folder = Path(tmp) / f"soak{attempt}"
            folder.mkdir()
            result = run_round(env, folder, [BARE, GATEWAY] * pairs, per_segment, block_ms, rng)
            if not result.meter_xruns:
                break
            print("  the meter lost samples, again", file=sys.stderr)
        else:
            print("every attempt lost samples in the meter: no figure")
            return False
    bare = segment_medians(result.found.get(BARE, []), per_segment)
    gateway = segment_medians(result.found.get(GATEWAY, []), per_segment)
    rows: dict[int, list[tuple[float, float]]] = {}
    for k, (b, g) in enumerate(zip(bare, gateway, strict=False)):
        if b is not None and g is not None:
            rows.setdefault(int(k * 2 * segment_s // 60), []).append((b, g))
    print(f"{'minute':>6} {'(a) ms':>8} {'(b) ms':>8} {'(b)-(a) ms':>11}")
    added: dict[int, float] = {}
    for minute, pairs_in in sorted(rows.items()):
        a = statistics.median(b for b, _ in pairs_in)
        g = statistics.median(g for _, g in pairs_in)
        added[minute] = statistics.median(g - b for b, g in pairs_in)
        print(f"{minute + 1:>6} {a:>8.1f} {g:>8.1f} {added[minute]:>+11.1f}")
    stats = ", ".join(f"{key} {value}" for key, value in result.gateway_stats.items())
    print(f"gateway's cards over the run (both radios): {stats}")
    if len(added) < 2:
        print("too short to tell a drift")
        return False
    first, last = added[min(added)], added[max(added)]
    met = abs(last - first) <= 10.0
    print(
        f"target: the last minute within 10 ms of the first: {'met' if met else 'NOT met'} "
        f"({first:+.1f} ms, then {last:+.1f} ms)"
    )
    return met


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--radios", type=int, default=8, help="radios in the CPU table's 2nd row")
    parser.add_argument("--seconds", type=float, default=30.0, help="audio per CPU row")
    only = parser.add_mutually_exclusive_group()
    only.add_argument("--latency-only", action="store_true", help="skip the CPU table")
    only.add_argument("--cpu-only", action="store_true", help="skip the latency table")
    parser.add_argument("--clicks", type=int, default=200, help="bursts per path (default 200)")
    parser.add_argument("--rounds", type=int, default=8, help="fresh starts (default 8)")
    default_block: int = AudioSettings.model_fields["block_ms"].default
    parser.add_argument(
        "--block-ms",
        type=int,
        choices=(5, 10, 20),
        default=default_block,
        help=f"card block of both paths (default {default_block}, the gateway's default)",
    )
    parser.add_argument(
        "--keepalive-ms",
        type=int,
        default=KEEPALIVE_MS,
        help=f"null sinks' keep-alive latency (default {KEEPALIVE_MS}; AudioEnv's is "
        f"{KEEPALIVE_LATENCY_MS})",
    )
    parser.add_argument(
        "--load", type=int, default=0, metavar="N", help="N CPU-burning processes beside it"
    )
    parser.add_argument(
        "--soak-s",
        type=float,
        default=0.0,
        metavar="S",
        help="also one run of S seconds (300 or more) to show the latency does not drift",
    )
    args = parser.parse_args()
    if args.clicks < 1 or args.rounds < 1:
        parser.error("--clicks and --rounds must be at least 1")
    with cpu_burners(args.load):
        print(describe(args.load))
        if not args.latency_only:
            run_cpu(args.radios, args.seconds)
        if not args.latency_only and not args.cpu_only:
            print()
        if not args.cpu_only:
            run_latency(args.clicks, args.rounds, args.block_ms, args.keepalive_ms)
        if args.soak_s > 0:
            print()
            run_soak(args.soak_s, args.block_ms, args.keepalive_ms)
    return 0


if __name__ == "__main__":
    sys.exit(main())
