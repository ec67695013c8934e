"""Streaming rational resampling between the radios' sound cards (48 kHz, 44.1 kHz) and the
engine's 8 kHz, in blocks of any length, without clicks at block edges or drift in sample count."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import signal

from gateway.dsp._common import Float32Array

# Tap patterns kept per block shape (a stream of steady blocks uses one or two).
_CACHE_SIZE = 8
# A period (see `StreamingResampler._by_periods`) has at least this many samples on its shorter
# side, and its matrix (two periods) at most this many entries (8 MB); beyond, one window per
# output (`_by_outputs`).
_MIN_PERIOD = 80
_MAX_MATRIX = 1 << 21
# A period matrix of at least this many entries is used one matrix-vector product per period,
# for blocks of up to _GEMV_PERIODS periods (see `_by_periods`).
_GEMV_MATRIX = 1 << 14
_GEMV_PERIODS = 4


class StreamingResampler:
    """Resamples a continuous stream by `rate_out / rate_in` (reduced to L/M, e.g. 1/6 for
    48 kHz -> 8 kHz, 80/441 for 44.1 kHz -> 8 kHz), one block of any length at a time.

    Method: an ideal polyphase FIR resampler (upsample by L, low-pass, keep every M-th sample),
    computed only at the output instants: output j is the dot product of the K newest input
    samples at input index floor(j*M/L) with phase (j*M mod L) of the polyphase filter. The last
    K-1 input samples are carried over between calls, and output j is produced exactly when its
    newest input sample has arrived, so the result does not depend on how the stream is cut into
    blocks (a sine stays a sine across block edges), and after N input samples in all exactly
    ceil(N*L/M) output samples have come out (integer bookkeeping, no drift). The dot products
    are computed a period of the ratio at a time, as one matrix product per block (see
    `_by_periods`): per-output gathers and small numpy calls cost far more than the arithmetic.

    The filter is a Kaiser-window low-pass (scipy.signal.firwin/kaiserord) at the rate
    rate_in*L with its transition band from `passband_hz` to `stopband_hz`:
    - `stopband_hz` defaults to the lower rate's Nyquist frequency (4 kHz for 8 kHz): nothing at
      all aliases into the output band, and nothing of the input above 4 kHz is imaged into a
      48 kHz output;
    - `passband_hz` defaults to 85 % of it (3.4 kHz, the top of the land-mobile voice band):
      the narrower the transition, the longer the filter (cost and latency grow as 1/width);
    - `attenuation_db` (default 70 dB) is both the stop-band attenuation and, as Kaiser filters
      have equal ripple, the pass-band accuracy (3e-4, i.e. an error near -70 dB relative).
    These defaults give about 350 taps per output sample at 48 kHz/44.1 kHz -> 8 kHz and
    about 58 per output sample the other way, and a group delay of 3.6 ms.

    `minimum_phase=True` turns the same filter into its minimum-phase twin (same magnitude
    response, scipy.signal.minimum_phase with `half=False`): the delay through the voice band
    drops from 3.6 ms to about 0.3 ms at 1 kHz (1.2 ms at the 3.4 kHz band edge), at the price
    of a phase response that is no longer linear, which the ear does not hear in speech. The
    sound-card ports use it: every millisecond of a radio-to-radio path counts, and a patch has
    a resampler at each end.

    `x` is float32 of shape (n,) for one channel or (n, channels); the output has the same layout.

    One resampler per sound-card stream and direction: each card delivers blocks of its own size
    at its own times, so streams of different radios cannot share a call (the channels of one
    card can). Cost per 20 ms (this 2-core Xeon, gateway.dsp.bench): about 30 us for 48 kHz ->
    8 kHz, 20 us for 8 kHz -> 48 kHz, 45 us each way for 44.1 kHz; 8 radios both ways at 48 kHz
    are 2 % of one core.
    """

    def __init__(
        self,
        rate_in: int,
        rate_out: int,
        channels: int = 1,
        *,
        passband_hz: float | None = None,
        stopband_hz: float | None = None,
        attenuation_db: float = 70.0,
        minimum_phase: bool = False,
    ) -> None:
        if rate_in <= 0 or rate_out <= 0 or channels <= 0:
            raise ValueError("rates and channels must be positive")
        common = math.gcd(rate_in, rate_out)
        self.rate_in = rate_in
        self.rate_out = rate_out
        self.channels = channels
        self.up = rate_out // common  # L
        self.down = rate_in // common  # M
        nyquist = min(rate_in, rate_out) / 2.0
        stop = nyquist if stopband_hz is None else float(stopband_hz)
        passband = 0.85 * stop if passband_hz is None else float(passband_hz)
        if not 0.0 < passband < stop <= max(rate_in, rate_out) / 2.0:
            raise ValueError(f"need 0 < passband_hz ({passband}) < stopband_hz ({stop})")
        # The design depends only on these numbers: made once per process and shared by every
        # resampler that asks for it (the minimum-phase one takes a quarter of a second).
        design = _design(rate_in, rate_out, passband, stop, attenuation_db, minimum_phase)
        self._poly = design.poly
        self._k = design.k
        self.numtaps = design.numtaps
        self.latency_samples: float = design.latency_samples
        self._period_in = design.period_in
        self._period_out = design.period_out
        self._width = design.width
        self._matrix = design.matrix
        self._gemv = channels == 1 and self._period_out * self._width >= _GEMV_MATRIX
        self._history = np.zeros((channels, self._k - 1), dtype=np.float32)
        self._n_in = 0  # input samples consumed, modulo whole periods of `_period_in`
        self._n_out = 0  # output samples produced, modulo whole periods of `_period_out`
        self.total_in = 0
        self.total_out = 0
        self._cache: dict[tuple[int, int], Float32Array] = {}

    @property
    def latency_seconds(self) -> float:
        return self.latency_samples / self.rate_out

    def output_count(self, n_in: int) -> int:
        """How many output samples the next `n_in` input samples will produce."""
        total = self._n_in + n_in
        return -(-(total * self.up) // self.down) - self._n_out

    def reset(self) -> None:
        """Forget the stream (history and counters), as after a device restart."""
        self._history[:] = 0.0
        self._n_in = self._n_out = self.total_in = self.total_out = 0

    def process(self, x: npt.ArrayLike) -> Float32Array:
        """Resamples the next block of the stream: `x` of shape (n,) or (n, channels), any n
        (0 included); returns `output_count(n)` samples in the same layout."""
        block = np.asarray(x, dtype=np.float32)
        mono = block.ndim == 1
        if mono:
            if self.channels != 1:
                raise ValueError(f"expected shape (n, {self.channels}), got {block.shape}")
            chans = block[np.newaxis, :]
        elif block.ndim == 2 and block.shape[1] == self.channels:
            chans = block.T
        else:
            raise ValueError(f"expected shape (n, {self.channels}), got {block.shape}")
        n = chans.shape[1]
        n_out = self.output_count(n)
        ext = np.concatenate((self._history, chans), axis=1)
        if n_out == 0:
            out: Float32Array = np.zeros((self.channels, 0), dtype=np.float32)
        elif self._matrix is not None:
            out = self._by_periods(ext, n, n_out, self._matrix)
        else:
            out = self._by_outputs(ext, n, n_out)
        self._history = ext[:, ext.shape[1] - (self._k - 1) :]  # a view: ext stays private
        self._advance(n, n_out)
        return out[0] if mono else np.ascontiguousarray(out.T)

    def _by_periods(
        self, ext: Float32Array, n: int, n_out: int, matrix: Float32Array
    ) -> Float32Array:
        """The outputs of this block as matrix products over whole periods of the ratio.

        A period is `_period_in` = g*M inputs, which make exactly `_period_out` = g*L outputs
        with the same taps in every period, so the outputs of a period are one matrix (its
        rows: the outputs' taps, each placed at its window's offset) times the period's input
        stretch, and all periods of a block are one BLAS matrix product. The matrix holds two
        periods; the block starting at input phase f (its first input's place in a period)
        uses the one-period slice of it that starts there. A last partial period uses the first
        rows of the same slice. Per output it multiplies `_width` samples instead of K (2.4 x
        at 44.1 kHz): far cheaper than gathering each output's window (~200 kB a block)."""
        period_in, period_out, width, k = self._period_in, self._period_out, self._width, self._k
        f = self._n_in
        first = -(-f * self.up // self.down)
        taps = matrix[first : first + period_out, f : f + width]
        periods, rest = divmod(n, period_in)
        left = n_out - periods * period_out  # outputs of the last, partial period
        at = periods * period_in
        if self._gemv and periods <= _GEMV_PERIODS:
            # A few periods of a large matrix (44.1 kHz: 80 x 758, 441 x 137): one
            # matrix-vector product each. As one matrix product, BLAS would copy (pack) the
            # whole matrix first on every call, which costs more than the products.
            row = ext[0]
            parts = [taps @ row[s * period_in : s * period_in + width] for s in range(periods)]
            if left:
                parts.append(taps[:left, : rest - 1 + k] @ row[at : at + rest - 1 + k])
            single: Float32Array = parts[0] if len(parts) == 1 else np.concatenate(parts)
            return single.reshape(1, n_out)
        blocks: list[Float32Array] = []
        if periods:
            item = ext.itemsize
            stretches = np.ndarray(
                (self.channels, periods, width),
                np.float32,
                ext,
                0,
                (ext.strides[0], period_in * item, item),
            )
            # A copy (small): BLAS cannot take the overlapping rows of the view.
            stretch = np.ascontiguousarray(stretches).reshape(self.channels * periods, width)
            blocks.append((stretch @ taps.T).reshape(self.channels, periods * period_out))
        if left:
            blocks.append(ext[:, at : at + rest - 1 + k] @ taps[:left, : rest - 1 + k].T)
        return blocks[0] if len(blocks) == 1 else np.concatenate(blocks, axis=1)

    def _by_outputs(self, ext: Float32Array, n: int, n_out: int) -> Float32Array:
        """The outputs of this block one window each (ratios whose period matrix would be too
        large): each output's window gathered, times its phase's taps."""
        item = ext.itemsize
        # windows[c, i] holds the K input samples ending with the i-th sample of this block.
        windows: Float32Array = np.ndarray(
            (self.channels, n, self._k), np.float32, ext, 0, (ext.strides[0], item, item)
        )
        j = np.arange(self._n_out, self._n_out + n_out, dtype=np.int64) * self.down
        rows = windows[:, j // self.up - self._n_in, :]
        out: Float32Array = np.einsum("cjk,jk->cj", rows, self._taps_by_output(n_out))
        return out

    def _advance(self, n_in: int, n_out: int) -> None:
        self._n_in += n_in
        self._n_out += n_out
        periods = self._n_in // self._period_in  # keep the counters small: 0 <= _n_in < period
        self._n_in -= periods * self._period_in
        self._n_out -= periods * self._period_out
        self.total_in += n_in
        self.total_out += n_out

    def _taps_by_output(self, n_out: int) -> Float32Array:
        """Taps (n_out, K) of the next n_out outputs (their phases repeat every L outputs);
        kept per block pattern (a stream of steady blocks uses one or two)."""
        first = self._n_out % self.up
        key = (first, n_out)
        taps = self._cache.get(key)
        if taps is None:
            phase = (np.arange(first, first + n_out, dtype=np.int64) * self.down) % self.up
            taps = np.ascontiguousarray(self._poly[phase])
            if len(self._cache) >= _CACHE_SIZE:
                del self._cache[next(iter(self._cache))]
            self._cache[key] = taps
        return taps


@dataclass(frozen=True)
class _Design:
    """A resampling filter, shared by the resamplers that use it (its arrays are read-only)."""

    poly: Float32Array  # (L, K): poly[p, s] multiplies input (newest - (K-1-s)) for phase p
    k: int  # taps per phase
    numtaps: int
    latency_samples: float
    period_in: int  # inputs of a period (g*M) ...
    period_out: int  # ... and its outputs (g*L)
    width: int  # the input stretch a period's outputs read: period_in - 1 + K
    matrix: Float32Array | None  # two periods' taps (None: too large, see `_by_outputs`)


def _readonly(a: Float32Array) -> Float32Array:
    a.setflags(write=False)
    return a


@functools.lru_cache(maxsize=16)
def _design(
    rate_in: int,
    rate_out: int,
    passband: float,
    stop: float,
    attenuation_db: float,
    minimum_phase: bool,
) -> _Design:
    common = math.gcd(rate_in, rate_out)
    up, down = rate_out // common, rate_in // common
    fs_up = float(rate_in * up)
    numtaps, beta = signal.kaiserord(attenuation_db, (stop - passband) / (fs_up / 2.0))
    numtaps |= 1  # odd: a whole-sample group delay at the upsampled rate
    taps = signal.firwin(
        numtaps, (passband + stop) / 2.0, window=("kaiser", beta), fs=fs_up, scale=True
    )
    if minimum_phase:
        # An FFT of 8x the filter keeps the magnitude within 0.01 dB of the original's.
        n_fft = 1 << (8 * numtaps - 1).bit_length()
        taps = signal.minimum_phase(taps, method="homomorphic", half=False, n_fft=n_fft)
    taps *= up  # zero-stuffing by L divides the amplitude by L
    k = -(-numtaps // up)  # taps per phase
    padded = np.zeros(k * up)
    padded[:numtaps] = taps
    # poly[p, s] multiplies input sample (newest - (k-1-s)) for output phase p: rows in the
    # order of a window of the input (oldest first), so an output is window . poly[p].
    poly = np.ascontiguousarray(padded.reshape(k, up).T[:, ::-1], dtype=np.float32)
    # (numtaps-1)/2 samples at rate_in*L, in output samples (rate_in*L/M); a minimum-phase
    # filter's delay varies with frequency: its value at 1 kHz, the middle of speech.
    if minimum_phase:
        _, delay = signal.group_delay((taps, 1.0), w=[1000.0], fs=fs_up)
        latency = float(delay[0]) / down
    else:
        latency = (numtaps - 1) / 2.0 / down
    # Periods of at least _MIN_PERIOD samples on the side with fewer (48 kHz <-> 8 kHz: 16 of
    # 8 kHz, 96 of 48 kHz), so that a block is a few periods, not 160 one-sample ones.
    g = -(-_MIN_PERIOD // min(up, down))
    period_in, period_out = g * down, g * up
    width = period_in - 1 + k
    matrix: Float32Array | None = None
    if 2 * period_out * (period_in + width) <= _MAX_MATRIX:
        # Row j: output j of two periods from input 0; its newest input is floor(j*M/L), its
        # phase j*M mod L, and its taps end at its newest input's column (+K-1).
        j = np.arange(2 * period_out, dtype=np.int64)
        newest = j * down // up
        matrix = np.zeros((2 * period_out, period_in + width), dtype=np.float32)
        columns = newest[:, np.newaxis] + np.arange(k)
        matrix[j[:, np.newaxis], columns] = poly[(j * down) % up]
        matrix = _readonly(matrix)
    return _Design(_readonly(poly), k, numtaps, latency, period_in, period_out, width, matrix)
