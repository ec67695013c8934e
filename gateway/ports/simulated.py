"""Simulated radios: ports with no hardware that receive scripted or generated traffic and keep
what the gateway sent them while keyed.

One `SimulatedRadios` bank serves every simulated port of a site, so a tick costs one array fill
plus a little work per transmission in progress, never a loop over idle ports.
"""

from __future__ import annotations

import heapq
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt

from gateway.core.timing import SAMPLE_RATE, seconds_to_samples
from gateway.dsp.signals import Samples, speech_like, tone

TransmitSink = Callable[[npt.NDArray[np.float32], npt.NDArray[np.bool_]], None]


@dataclass(order=True)
class _Feed:
    """A stretch of received signal on one port: carrier, with audio or without."""

    start: int  # sample index
    port: int = field(compare=False)
    length: int = field(compare=False)
    audio: Samples | None = field(compare=False, default=None)


@dataclass(frozen=True)
class TrafficPattern:
    """Generated traffic: a speech-like burst of `talk_s` every `every_s`, at a phase drawn from
    `seed` so that simulated radios do not all talk at once."""

    every_s: float
    talk_s: float
    level_dbfs: float = -12.0
    seed: int | None = None


@dataclass
class _Traffic:
    port: int
    pattern: TrafficPattern
    rng: np.random.Generator
    next_start: int  # sample index of the next burst


@dataclass
class PortActivity:
    """What a simulated radio did, for views and tests."""

    received_s: float = 0.0
    keyed_s: float = 0.0
    transmissions: int = 0


class SimulatedRadios:
    def __init__(self, names: Sequence[str], frame_samples: int) -> None:
        self.names = tuple(names)
        self.index = {name: i for i, name in enumerate(self.names)}
        self.frame_samples = frame_samples
        self._pending: list[_Feed] = []  # heap by start
        self._active: list[_Feed] = []
        self._traffic: list[_Traffic] = []
        self._sample = 0  # first sample of the next frame
        self._keyed = np.zeros(len(self.names), dtype=bool)
        self._keyed_frames = np.zeros(len(self.names), dtype=np.int64)
        self._received_frames = np.zeros(len(self.names), dtype=np.int64)
        self._transmissions = np.zeros(len(self.names), dtype=np.int64)
        self.sink: TransmitSink | None = None

    # ------------------------------------------------------------------ what they receive
    def _port(self, name: str) -> int:
        try:
            return self.index[name]
        except KeyError:
            raise KeyError(f"no simulated port named '{name}'") from None

    def receive(self, port: str, audio: Samples, at_s: float) -> None:
        """The port hears `audio` (with carrier) from `at_s` seconds on."""
        feed = _Feed(seconds_to_samples(at_s), self._port(port), len(audio), audio)
        heapq.heappush(self._pending, feed)

    def receive_tone(
        self, port: str, hz: float, seconds: float, level_dbfs: float, at_s: float
    ) -> None:
        self.receive(port, tone(hz, seconds, level_dbfs), at_s)

    def carrier(self, port: str, seconds: float, at_s: float) -> None:
        """Carrier without audio (a stuck or silent transmitter) from `at_s` for `seconds`."""
        start, length = seconds_to_samples(at_s), seconds_to_samples(seconds)
        heapq.heappush(self._pending, _Feed(start, self._port(port), length, None))

    def add_traffic(self, port: str, pattern: TrafficPattern | None) -> None:
        """Generated speech-like traffic on `port` (replacing any it had; None for none),
        repeatable from the pattern's seed (by default derived from the port's name)."""
        i = self._port(port)
        current = [t for t in self._traffic if t.port == i]
        if current and current[0].pattern == pattern:
            return
        self._traffic = [t for t in self._traffic if t.port != i]
        if pattern is None:
            return
        seed = pattern.seed if pattern.seed is not None else zlib.crc32(port.encode())
        rng = np.random.default_rng(seed)
        first = self._sample + seconds_to_samples(rng.uniform(0.0, pattern.every_s))
        self._traffic.append(_Traffic(i, pattern, rng, first))

    def successor(self, names: Sequence[str]) -> SimulatedRadios:
        """The bank for a reloaded site: a port that stays keeps what it is hearing, its
        traffic and its counters, so a reload does not cut a call short."""
        new = SimulatedRadios(names, self.frame_samples)
        new._sample = self._sample
        new.sink = self.sink
        moved = {i: new.index[name] for i, name in enumerate(self.names) if name in new.index}
        for feed in self._pending:
            if feed.port in moved:
                heapq.heappush(new._pending, replace(feed, port=moved[feed.port]))
        new._active = [replace(f, port=moved[f.port]) for f in self._active if f.port in moved]
        new._traffic = [replace(t, port=moved[t.port]) for t in self._traffic if t.port in moved]
        old_rows = np.array(list(moved), dtype=np.int64)
        new_rows = np.array(list(moved.values()), dtype=np.int64)
        for attr in ("_keyed", "_keyed_frames", "_received_frames", "_transmissions"):
            getattr(new, attr)[new_rows] = getattr(self, attr)[old_rows]
        return new

    # ------------------------------------------------------------------ one frame
    def frame(self) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_]]:
        """The next frame every port received, and its carrier flags."""
        n, size = len(self.names), self.frame_samples
        start, stop = self._sample, self._sample + size
        for traffic in self._traffic:
            while traffic.next_start < stop:
                p = traffic.pattern
                burst = speech_like(p.talk_s, p.level_dbfs, traffic.rng)
                heapq.heappush(
                    self._pending, _Feed(traffic.next_start, traffic.port, len(burst), burst)
                )
                traffic.next_start += seconds_to_samples(p.every_s)
        while self._pending and self._pending[0].start < stop:
            self._active.append(heapq.heappop(self._pending))

        rx = np.zeros((n, size), dtype=np.float32)
        carrier = np.zeros(n, dtype=bool)
        still: list[_Feed] = []
        for feed in self._active:
            lo = max(start, feed.start)
            hi = min(stop, feed.start + feed.length)
            if hi > lo:
                carrier[feed.port] = True
                if feed.audio is not None:
                    rx[feed.port, lo - start : hi - start] += feed.audio[
                        lo - feed.start : hi - feed.start
                    ]
            if feed.start + feed.length > stop:
                still.append(feed)
        self._active = still
        self._received_frames += carrier
        self._sample = stop
        return rx, carrier

    # ------------------------------------------------------------------ what they were sent
    def transmit(self, tx: npt.NDArray[np.float32], ptt: npt.NDArray[np.bool_]) -> None:
        """What the gateway sent this frame (silence where unkeyed)."""
        self._transmissions += ptt & ~self._keyed
        self._keyed = ptt.copy()
        self._keyed_frames += ptt
        if self.sink is not None:
            self.sink(tx, ptt)

    def activity(self, port: str) -> PortActivity:
        i = self._port(port)
        frame_s = self.frame_samples / SAMPLE_RATE
        return PortActivity(
            received_s=float(self._received_frames[i] * frame_s),
            keyed_s=float(self._keyed_frames[i] * frame_s),
            transmissions=int(self._transmissions[i]),
        )
