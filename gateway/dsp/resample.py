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
        self._design = design
        self._poly = design.poly
        self._k = design.k
        self.numtaps = design.numtaps
        self.latency_samples: float = design.latency_samples
        # The last K-1 input samples: (K-1,) for one channel, (channels, K-1) for more.
        shape = (self._k - 1,) if channels == 1 else (channels, self._k - 1)
        self._history: Float32Array = np.zeros(shape, dtype=np.float32)
        self._n_in = 0  # input samples consumed, modulo whole periods (design.period_in)
        self._n_out = 0  # output samples produced, modulo whole periods (design.period_out)
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
        self._history = np.zeros_like(self._history)
        self._n_in = self._n_out = self.total_in = self.total_out = 0

    def process(self, x: npt.ArrayLike) -> Float32Array:
        """Resamples the next block of the stream: `x` of shape (n,) or (n, channels), any n
        (0 included); returns `output_count(n)` samples in the same layout."""
        block = np.asarray(x, dtype=np.float32)
        if block.ndim == 1 and self.channels == 1:
            chans = block  # one channel: the arithmetic below on 1-D arrays
        elif block.ndim == 2 and block.shape[1] == self.channels:
            chans = block.T if self.channels > 1 else block[:, 0]
        else:
            raise ValueError(f"expected shape (n, {self.channels}), got {block.shape}")
        n = block.shape[0]
        n_out = self.output_count(n)
        ext = np.concatenate((self._history, chans), axis=-1)
        if n_out == 0:
            out: Float32Array = np.zeros((*ext.shape[:-1], 0), dtype=np.float32)
        elif self._design.matrix is not None:
            out = self._by_periods(ext, n, n_out, self._design)
        else:
            out = self._by_outputs(ext, n, n_out)
        self._history = ext[..., n:]  # a view: ext stays private
        self._advance(n, n_out)
        if block.ndim == 1:
            return out
        return out[:, np.newaxis] if self.channels == 1 else np.ascontiguousarray(out.T)

    def _by_periods(self, ext: Float32Array, n: int, n_out: int, d: _Design) -> Float32Array:
        """The outputs of this block, a period of the ratio at a time, from `ext` (the history
        and the block, (..., K-1+n)).

        A period is `d.period_in` (g*M) inputs, which make exactly `d.period_out` (g*L) outputs
        with the same taps in every period: its outputs are a fixed matrix (each row an output's
        taps, placed at its window's offset) times the period's stretch of input. The design
        holds that matrix for two periods, and a block starting at input phase f (its first
        input's place in a period) uses the one-period slice of it that starts there. The slice
        is cut into `d.blocks` sub-blocks of `d.rows` outputs whose windows start `d.step`
        inputs apart and span `d.span` inputs (1.3 x K at 44.1 kHz, where the whole period's
        rows span 2.4 x K), and every period's sub-blocks are strided views of the block: all
        full periods are one numpy matrix product (matrix-vector products, one per sub-block and
        period), with no window gathered and nothing copied. A last partial period uses the
        first rows of the same slice. Each numpy call costs more than a sub-block's arithmetic
        at these sizes, so the count of calls is what this is laid out for."""
        period_in, period_out = d.period_in, d.period_out
        f = self._n_in
        first = -(-f * self.up // self.down)  # the first output's row in the matrix
        matrix = d.matrix
        assert matrix is not None
        item = matrix.itemsize
        periods, rest = divmod(n, period_in)
        parts: list[Float32Array] = []
        if periods:
            row_bytes = matrix.strides[0]
            taps: Float32Array = np.ndarray(
                (d.blocks, d.rows, d.span),
                np.float32,
                matrix,
                first * row_bytes + f * item,
                (d.rows * row_bytes + d.step * item, row_bytes, item),
            )
            lead = ext.shape[:-1]
            stretches: Float32Array = np.ndarray(
                (*lead, periods, d.blocks, d.span, 1),
                np.float32,
                ext,
                0,
                (*ext.strides[:-1], period_in * item, d.step * item, item, item),
            )
            parts.append(np.matmul(taps, stretches).reshape((*lead, periods * period_out)))
        left = n_out - periods * period_out  # outputs of the last, partial period
        if left:
            at = periods * period_in
            span = rest - 1 + self._k
            parts.append(ext[..., at : at + span] @ matrix[first : first + left, f : f + span].T)
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=-1)

    def _by_outputs(self, ext: Float32Array, n: int, n_out: int) -> Float32Array:
        """The outputs of this block one window each (ratios whose period matrix would be too
        large): each output's window gathered, times its phase's taps."""
        rows2d = ext.reshape(-1, ext.shape[-1])
        item = rows2d.itemsize
        # windows[c, i] holds the K input samples ending with the i-th sample of this block.
        windows: Float32Array = np.ndarray(
            (rows2d.shape[0], n, self._k), np.float32, rows2d, 0, (rows2d.strides[0], item, item)
        )
        j = np.arange(self._n_out, self._n_out + n_out, dtype=np.int64) * self.down
        rows = windows[:, j // self.up - self._n_in, :]
        out: Float32Array = np.einsum("cjk,jk->cj", rows, self._taps_by_output(n_out))
        return out.reshape((*ext.shape[:-1], n_out))

    def _advance(self, n_in: int, n_out: int) -> None:
        self._n_in += n_in
        self._n_out += n_out
        periods = self._n_in // self._design.period_in  # keep the counters small
        self._n_in -= periods * self._design.period_in
        self._n_out -= periods * self._design.period_out
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
    """A resampling filter and its period matrix, shared by the resamplers that use it (its
    arrays are read-only). See `StreamingResampler._by_periods`."""

    poly: Float32Array  # (L, K): poly[p, s] multiplies input (newest - (K-1-s)) for phase p
    k: int  # taps per phase
    numtaps: int
    latency_samples: float
    period_in: int  # inputs of a period (g*M) ...
    period_out: int  # ... and its outputs (g*L)
    matrix: Float32Array | None  # two periods' taps (None: too large, see `_by_outputs`)
    rows: int  # outputs of a sub-block of a period (a divisor of period_out) ...
    blocks: int  # ... sub-blocks in a period (period_out // rows) ...
    step: int  # ... inputs between the starts of two sub-blocks' windows ...
    span: int  # ... and the inputs a sub-block's outputs read


def _readonly(a: Float32Array) -> Float32Array:
    a.setflags(write=False)
    return a


def _sub_blocks(period_in: int, period_out: int, k: int) -> tuple[int, int, int]:
    """(rows, step, span) of the sub-blocks a period's outputs are computed in.

    Sub-block s has rows s*rows ... s*rows+rows-1 of the period and starts its window at
    input s*step, step = floor(rows*M/L): no output of it reads an earlier input, whatever the
    period's phase, since output t of a period reads from floor(t*M/L) on at the least. Its
    last output reads at most up to input ceil((s+1)*rows*M/L) - 1 + K-1, so a span of
    step + K-1 + (period_in - blocks*step) inputs covers every sub-block. The size is the one
    with the least cost, counting a call per sub-block as worth 2000 multiplications."""
    best: tuple[float, int, int, int] | None = None
    for rows in range(1, period_out + 1):
        if period_out % rows:
            continue
        blocks = period_out // rows
        step = rows * period_in // period_out
        span = step + k - 1 + (period_in - blocks * step)
        cost = blocks * 2000.0 + period_out * span
        if best is None or cost < best[0]:
            best = (cost, rows, step, span)
    assert best is not None
    return best[1], best[2], best[3]


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
    # Periods of at least _MIN_PERIOD samples on the side with fewer (48 kHz <-> 8 kHz: 80 of
    # 8 kHz, 480 of 48 kHz), so that a 20 ms block is a period or two, not 160 short ones.
    g = -(-_MIN_PERIOD // min(up, down))
    period_in, period_out = g * down, g * up
    rows, step, span = _sub_blocks(period_in, period_out, k)
    columns = 2 * period_in - 1 + k  # two periods' inputs and the history before them
    matrix: Float32Array | None = None
    if 2 * period_out * columns <= _MAX_MATRIX:
        # Row j: output j of two periods from input 0; its newest input is floor(j*M/L), its
        # phase j*M mod L, and its taps end at its newest input's column (+K-1).
        j = np.arange(2 * period_out, dtype=np.int64)
        newest = j * down // up
        matrix = np.zeros((2 * period_out, columns), dtype=np.float32)
        matrix[j[:, np.newaxis], newest[:, np.newaxis] + np.arange(k)] = poly[(j * down) % up]
        matrix = _readonly(matrix)
    return _Design(
        _readonly(poly),
        k,
        numtaps,
        latency,
        period_in,
        period_out,
        matrix,
        rows,
        period_out // rows,
        step,
        span,
    )
