"""Clock-drift control between a sound card and the engine: each radio's sound card runs on its own
crystal, so over an hour its "48 kHz" (resampled to 8 kHz) delivers a few hundred ppm more or
fewer samples than the engine's 20 ms ticks consume. A FIFO per port absorbs the jitter, and
dropping or repeating ONE sample now and then keeps its level on target."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from gateway.dsp._common import Float32Array, Float64Array, db_to_amplitude


class SampleFifo:
    """A ring buffer of float32 samples for one port.

    `write` never blocks and never fails: when the samples do not fit, the OLDEST ones are
    dropped (latency must not grow without bound; the newest audio is the one to keep) and
    counted in `overrun_samples`. `read(n)` always returns n samples: what is there, then zeros
    for what is missing, counted in `underrun_samples` and returned with the samples.
    """

    def __init__(self, capacity: int) -> None:
        if capacity <= 0:
            raise ValueError("capacity must be positive")
        self.capacity = capacity
        self._buf: Float32Array = np.zeros(capacity, dtype=np.float32)
        self._start = 0
        self._level = 0
        self.overrun_samples = 0
        self.underrun_samples = 0

    @property
    def level(self) -> int:
        """Samples waiting to be read."""
        return self._level

    def clear(self) -> None:
        self._start = 0
        self._level = 0

    def write(self, samples: npt.ArrayLike) -> int:
        """Appends samples; returns how many of the oldest were dropped to make room."""
        x = np.asarray(samples, dtype=np.float32)
        if x.ndim != 1:
            x = x.reshape(-1)
        size = x.size
        capacity = self.capacity
        dropped = 0
        if size > capacity:
            dropped = size - capacity
            x = x[dropped:]
            size = capacity
        excess = self._level + size - capacity
        if excess > 0:
            self._start = (self._start + excess) % capacity
            self._level -= excess
            dropped += excess
        end = (self._start + self._level) % capacity
        first = capacity - end  # room before the end of the buffer
        if size <= first:
            self._buf[end : end + size] = x
        else:
            self._buf[end:] = x[:first]
            self._buf[: size - first] = x[first:]
        self._level += size
        self.overrun_samples += dropped
        return dropped

    def peek(self, n: int) -> Float32Array:
        """Up to n of the oldest samples, without consuming them (fewer when fewer are there)."""
        n = min(n, self._level)
        first = min(n, self.capacity - self._start)
        if first == n:
            return self._buf[self._start : self._start + n].copy()
        return np.concatenate((self._buf[self._start :], self._buf[: n - first]))

    def skip(self, n: int) -> int:
        """Consumes up to n samples unread; returns how many were missing."""
        taken = min(n, self._level)
        self._start = (self._start + taken) % self.capacity
        self._level -= taken
        return n - taken

    def read(self, n: int) -> tuple[Float32Array, int]:
        """Consumes n samples: (the samples, zero-padded at the end, how many were missing)."""
        got = self.peek(n)
        missing = self.skip(n)
        self.underrun_samples += missing
        if missing:
            got = np.concatenate((got, np.zeros(missing, dtype=np.float32)))
        return got, missing


class DriftCorrector:
    """Keeps one port's FIFO near `target_samples` by consuming, per output frame, n+1 input
    samples (drop one: the FIFO is too full, the source's clock is fast) or n-1 (insert one: too
    empty, the source is slow) instead of n.

    Rule, per frame:
    - the FIFO level is smoothed over `smoothing_frames` frames (the producer delivers in bursts,
      by USB packet or sound-card period, so the raw level jitters by a burst), and each
      correction moves the smoothed level by its one sample at once (no overshoot while the
      average catches up);
    - nothing is done while the level is within `tolerance_samples` of target;
    - beyond it, a correction is made only on a QUIET frame (RMS below `silence_dbfs`), where it
      cannot be heard; speech spurts last seconds and 200 ppm is 1.6 samples a second, so the
      next pause comes long before the level is far off;
    - beyond twice the tolerance, a correction is made on any frame.
    A correction is a time shift of one sample spread over `crossfade_samples` (linear
    interpolation between the unshifted and the shifted signal, 4 ms by default) placed where
    the frame is quietest: a 1-sample step at 8 kHz over 32 samples is inaudible even in a tone.

    `pull(fifo, n)` does it all and returns n samples. It returns silence without reading until
    the FIFO has first reached the target (priming), and primes again after an underrun (the
    source stopped): `underruns` counts frames that found the FIFO short once started.

    One per port, not vectorised across ports: each FIFO is filled by its own sound card's
    callbacks, at their own times and sizes, so ports have nothing in common to share a call;
    a frame costs about 7 us (write and pull).
    """

    def __init__(
        self,
        target_samples: int,
        tolerance_samples: int,
        *,
        silence_dbfs: float = -50.0,
        crossfade_samples: int = 32,
        smoothing_frames: float = 10.0,
        resync_samples: int | None = None,
    ) -> None:
        if target_samples <= 0 or tolerance_samples <= 0 or crossfade_samples <= 0:
            raise ValueError("target, tolerance and crossfade must be positive")
        self.target = target_samples
        self.tolerance = tolerance_samples
        self.crossfade = crossfade_samples
        self._silence_power = float(db_to_amplitude(silence_dbfs)) ** 2
        self._alpha = 1.0 / max(smoothing_frames, 1.0)
        self._smoothed: float | None = None
        self.started = False
        self.drops = 0
        self.inserts = 0
        self.underruns = 0
        self.loud_corrections = 0  # corrections that could not wait for a quiet frame
        # Beyond this excess, averaged, the FIFO is cut back to target at once (`catch_up`).
        self.resync = resync_samples
        self.resyncs = 0
        self.resynced_samples = 0
        self._ramps: dict[int, Float64Array] = {}

    @property
    def smoothed_level(self) -> float:
        return self.target if self._smoothed is None else self._smoothed

    def decide(self, level: int, frame: npt.ArrayLike, *, can_drop: bool = True) -> int:
        """Given the FIFO level and the next frame, the extra samples to consume this frame:
        +1 (drop one), -1 (insert one) or 0; updates the smoothed level accordingly.
        `can_drop` False: the FIFO holds no sample beyond the frame, so no drop this time."""
        smooth = float(level) if self._smoothed is None else self._smoothed
        smooth += self._alpha * (level - smooth)
        error = smooth - self.target
        step = 0
        if abs(error) > self.tolerance and (error < 0 or can_drop):
            x = np.asarray(frame, dtype=np.float32)
            quiet = x.size == 0 or float(np.dot(x, x)) / x.size < self._silence_power
            if quiet or abs(error) > 2 * self.tolerance:
                step = 1 if error > 0 else -1
                self.loud_corrections += not quiet
        self._smoothed = smooth - step
        self.drops += step > 0
        self.inserts += step < 0
        return step

    def catch_up(self, level: int) -> int:
        """Samples to drop at once from a FIFO at `level`: all beyond target, when the averaged
        level has been more than `resync_samples` over it. One sample a frame takes back 6 ms a
        second; a card that stalled without catching up (a busy machine: the sound server
        underran and went on) leaves up to a second of audio behind, which would otherwise be
        heard that late for minutes. A burst in flight passes: the average barely moves."""
        if self.resync is None or self._smoothed is None:
            return 0
        if self._smoothed - self.target <= self.resync or level <= self.target:
            return 0
        excess = level - self.target
        self._smoothed = float(self.target)
        self.resyncs += 1
        self.resynced_samples += excess
        return excess

    def pull(self, fifo: SampleFifo, n: int) -> Float32Array:
        """The next n output samples from `fifo`, with drift correction."""
        if not self.started:
            if fifo.level < self.target:
                return np.zeros(n, dtype=np.float32)
            self.started = True
            self._smoothed = None
        fifo.skip(self.catch_up(fifo.level))
        ahead = fifo.peek(n + 1)
        if ahead.size < n:  # the source stopped or stalled: play what is left, then re-prime
            fifo.read(n)
            self.underruns += 1
            self.started = False
            return np.concatenate((ahead, np.zeros(n - ahead.size, dtype=np.float32)))
        step = self.decide(fifo.level, ahead[:n], can_drop=ahead.size > n)
        fifo.skip(n + step)
        if step == 0:
            return ahead[:n]
        return self._shift(ahead[: n + step], n, step)

    def _shift(self, x: Float32Array, n: int, step: int) -> Float32Array:
        """n samples from the n+step of x, moving by one sample over the crossfade, placed on
        the quietest stretch of the frame."""
        width = min(self.crossfade, n - 1)
        energy = np.concatenate(([0.0], np.cumsum(np.square(x[: n - 1], dtype=np.float64))))
        windows = energy[width:] - energy[: energy.size - width]
        at = int(np.argmin(windows[: n - width]))
        ramp = self._ramps.get(width)
        if ramp is None:
            ramp = (np.arange(1, width + 1, dtype=np.float64)) / (width + 1)
            self._ramps[width] = ramp
        shift: Float64Array = np.zeros(n)
        shift[at : at + width] = ramp
        shift[at + width :] = 1.0
        positions = np.arange(n, dtype=np.float64) + step * shift
        return np.interp(positions, np.arange(x.size, dtype=np.float64), x).astype(np.float32)
