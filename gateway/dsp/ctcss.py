"""Software CTCSS decoder: is the wanted sub-audible tone on each port's received audio, and which
standard tone is there (for the technician's level meter)."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from scipy import signal

from gateway.core.timing import SAMPLE_RATE
from gateway.core.tones import CTCSS_TONES_HZ
from gateway.dsp._common import (
    FRAME_SAMPLES,
    BoolArray,
    Float64Array,
    IntArray,
    as_frames,
    as_port_mask,
)
from gateway.dsp.filters import SosFilter

Complex128Array = npt.NDArray[np.complex128]

_DECIMATE = 8  # analysis at 1 kHz: the CTCSS band ends at 254.1 Hz
_NO_TONE = -1
_RESUM_FRAMES = 256  # running sums recomputed from the ring this often (rounding)


class CtcssDetector:
    """Decodes the 50 standard CTCSS tones on every port at once, 20 ms frame by frame.

    Signal path per port (vectorised across ports: one sosfilt, one matrix product per frame):
    a band-pass (Butterworth high-pass at 50 Hz against DC and subsonics; elliptic low-pass, flat
    to 260 Hz, 60 dB down from 320 Hz, against speech), decimation by 8 to 1 kHz, then a bank of
    50 complex DFT bins (one per standard tone, phase referenced to absolute time) summed over a
    sliding window of `window_ms` (200 ms, 10 frames) in two halves, `old` and `new` (100 ms
    each). For a steady tone at bin frequency f the two half-sums are the same phasor; a tone at
    f + d turns by 2*pi*d*0.1 s from the old half to the new one, which measures d to a fraction
    of a hertz: the 200 ms window alone only separates tones 5 Hz apart, the standard tones are as
    close as 2.3 Hz (67.0/69.3) and 2.4 Hz (159.8/162.2).

    The rule. Tone k is ONSET-qualified on a frame when all of these hold:
    - level: its amplitude over the window is at least `min_level_dbfs` (-36 dBFS peak, 16 dB
      under the -20 dBFS of a typical tone, well above the speech leaking into its band);
    - dominance: its power over the window is at least `min_share` (50 %) of all power in the
      50-260 Hz band over the same window (speech, noise and hum spread their power, a tone
      concentrates it);
    - strongest: it is the strongest of the 50 bins (a neighbour tone reads 3-4 dB stronger in
      its own bin than in ours);
    - on frequency: |d| <= `max_offset_hz` (1.0 Hz: under half the smallest tone spacing, as a
      neighbour gives |d| >= 2.3 Hz, and well over an encoder's error; the measure wraps at
      +-5 Hz, where the strongest-bin rule has long taken over);
    - steady: the two halves differ by at most 6 dB (speech syllables come and go).
    `confirm_frames` (2) consecutive qualified frames switch detection on. While on, the tone is
    HELD as long as the newest 100 ms alone keep it above `min_level_dbfs - 6 dB`, at least 25 %
    of the band, within 1.5 x `max_offset_hz`, and no more than 10 dB below the older half;
    `release_frames` (2) consecutive frames failing that switch it off.

    Measured on all 50 tones at -20 dBFS under speech at -6 to -12 dBFS
    (tests/dsp/test_dsp_ctcss.py): detection 175-205 ms after the tone starts, release 90-120 ms
    after it stops; not one onset-qualified frame in 100 minutes of speech (up to 0 dBFS) or of
    white noise, for any wanted tone.

    `tones_hz` gives the wanted tone of each port, one of gateway.core.tones.CTCSS_TONES_HZ (within
    0.05 Hz), or nan for a port without one (never detected). Call ONE of `process` (wanted tone
    present, per port) and `detect_any` (which standard tone is present, per port) per frame:
    each advances the analysis by the frame; both results of the latest frame stay readable as
    `present` and `tone_hz`.

    Cost: about 40 us per port per frame (8 ports in one call), a third of it the band-pass.
    """

    def __init__(
        self,
        ports: int,
        tones_hz: npt.ArrayLike,
        rate: int = SAMPLE_RATE,
        *,
        frame_samples: int = FRAME_SAMPLES,
        window_ms: float = 200.0,
        min_level_dbfs: float = -36.0,
        min_share: float = 0.5,
        max_offset_hz: float = 1.0,
        confirm_frames: int = 2,
        release_frames: int = 2,
    ) -> None:
        if rate % _DECIMATE or frame_samples % _DECIMATE:
            raise ValueError(f"rate and frame_samples must be multiples of {_DECIMATE}")
        frame_ms = 1000.0 * frame_samples / rate
        window_frames = round(window_ms / frame_ms)
        if window_frames < 2 or window_frames % 2:
            raise ValueError("window_ms must be an even number (>= 2) of frames")
        self.ports = ports
        self.rate = rate
        self.frame_samples = frame_samples
        self.table: Float64Array = np.asarray(CTCSS_TONES_HZ, dtype=np.float64)
        self.wanted = self._tone_indices(tones_hz)
        self.min_level_dbfs = min_level_dbfs
        self.min_share = min_share
        self.max_offset_hz = max_offset_hz
        self.confirm_frames = confirm_frames
        self.release_frames = release_frames

        self._sos = np.concatenate(
            (
                signal.butter(2, 50.0, "highpass", fs=rate, output="sos"),
                signal.ellip(7, 0.5, 60.0, 260.0, "lowpass", fs=rate, output="sos"),
            )
        )
        self._bandpass = SosFilter(self._sos, ports)
        rate_d = rate / _DECIMATE
        self._n_frame = frame_samples // _DECIMATE
        bins = len(self.table)
        self._bins = bins
        omega = 2.0 * np.pi * self.table / rate_d
        basis = np.exp(-1j * np.outer(np.arange(self._n_frame), omega))
        # The same basis as real numbers, each bin's real and imaginary part side by side: a real
        # frame times it is a real matrix product whose result is the complex one in memory.
        self._basis_ri: Float64Array = np.ascontiguousarray(
            basis.view(np.float64).reshape(self._n_frame, 2 * bins)
        )
        self._omega_frame: Float64Array = omega * self._n_frame
        self._theta: Float64Array = np.zeros(bins)
        self._half = window_frames // 2
        # Per port and frame of the window: the 50 bins' phasors and, last, the frame's energy in
        # the band (a real number in a complex slot), so that one sum carries both.
        self._ring: Complex128Array = np.zeros((ports, window_frames, bins + 1), complex)
        self._slot = 0  # the ring's oldest frame, overwritten next
        self._frames = 0
        # Running sums over the two halves of the window: [old, new], laid out as the ring.
        self._halves: Complex128Array = np.zeros((2, ports, bins + 1), dtype=np.complex128)
        self._entry: Complex128Array = np.zeros((ports, bins + 1), dtype=np.complex128)
        self._strongest: IntArray = np.zeros(ports, dtype=np.int64)
        self._row_starts: IntArray = np.arange(ports, dtype=np.int64) * (bins + 1)
        self._half_seconds = self._half * frame_samples / rate
        self._half_samples = self._half * self._n_frame
        self._min_sq = 10.0 ** (min_level_dbfs / 10.0)  # squared peak amplitude
        self._hold_sq = 10.0 ** ((min_level_dbfs - 6.0) / 10.0)
        self._max_turn = 2.0 * math.pi * max_offset_hz * self._half_seconds

        self.present: BoolArray = np.zeros(ports, dtype=np.bool_)
        self._wanted_count: IntArray = np.zeros(ports, dtype=np.int64)
        self._wanted_off: IntArray = np.zeros(ports, dtype=np.int64)
        self._any: IntArray = np.full(ports, _NO_TONE, dtype=np.int64)
        self._cand: IntArray = np.full(ports, _NO_TONE, dtype=np.int64)
        self._cand_count: IntArray = np.zeros(ports, dtype=np.int64)
        self._any_off: IntArray = np.zeros(ports, dtype=np.int64)

    def _tone_indices(self, tones_hz: npt.ArrayLike) -> IntArray:
        tones = np.asarray(tones_hz, dtype=np.float64).reshape(-1)
        if tones.shape != (self.ports,):
            raise ValueError(f"tones_hz has {tones.size} entries for {self.ports} ports")
        index = np.full(self.ports, _NO_TONE, dtype=np.int64)
        given = ~np.isnan(tones)
        nearest = np.argmin(np.abs(tones[given, np.newaxis] - self.table), axis=1)
        off = np.abs(self.table[nearest] - tones[given]) > 0.05
        if np.any(off):
            raise ValueError(f"not standard CTCSS tones: {tones[given][off].tolist()}")
        index[given] = nearest
        return index

    def set_tones(self, tones_hz: npt.ArrayLike) -> None:
        """Changes the wanted tones (a retuned channel); ports whose tone changed restart."""
        new = self._tone_indices(tones_hz)
        changed = new != self.wanted
        self.wanted = new
        self.present[changed] = False
        self._wanted_count[changed] = 0
        self._wanted_off[changed] = 0

    def reset(self, port_mask: npt.ArrayLike | None = None) -> None:
        """Forgets the masked ports' audio and decisions (all by default)."""
        mask = as_port_mask(port_mask, self.ports)
        self._bandpass.reset(mask)
        self._ring[mask] = 0.0
        self._resum()
        self.present[mask] = False
        self._wanted_count[mask] = 0
        self._wanted_off[mask] = 0
        self._any[mask] = _NO_TONE
        self._cand[mask] = _NO_TONE
        self._cand_count[mask] = 0
        self._any_off[mask] = 0

    @property
    def tone_hz(self) -> Float64Array:
        """Per port, the standard tone `detect_any` found on the latest frame (nan: none)."""
        return np.where(self._any >= 0, self.table[np.maximum(self._any, 0)], np.nan)

    def process(self, frames: npt.ArrayLike) -> BoolArray:
        """Analyses one frame per port ((ports, frame_samples)); True where the port's wanted
        tone is present."""
        self._update(frames)
        return self.present.copy()

    def detect_any(self, frames: npt.ArrayLike) -> Float64Array:
        """Analyses one frame per port; per port the standard tone present, or nan."""
        self._update(frames)
        return self.tone_hz

    # --- analysis -------------------------------------------------------------------------

    def _update(self, frames: npt.ArrayLike) -> None:
        # Each numpy call costs microseconds on these small arrays, more than the arithmetic:
        # the steps below are laid out to take few calls (old and new half in one array, the
        # energy beside the bins), with the arithmetic the class docstring describes.
        x = as_frames(frames, self.ports)
        if x.shape[1] != self.frame_samples:
            raise ValueError(f"frames must have {self.frame_samples} samples, not {x.shape[1]}")
        low = self._bandpass.process(x)[:, ::_DECIMATE]  # (ports, 20) at 1 kHz
        bins = self._bins
        entry = self._entry
        spectrum = (low @ self._basis_ri).view(np.complex128)  # low @ the complex basis
        np.multiply(spectrum, np.exp(-1j * self._theta), out=entry[:, :bins])
        entry[:, bins] = np.einsum("pn,pn->p", low, low)
        self._theta = np.mod(self._theta + self._omega_frame, 2.0 * np.pi)
        # Slide both halves by one frame: the oldest frame leaves, the middle one moves from the
        # new half to the old, this one enters. (Running sums, made exact again now and then.)
        window = self._ring.shape[1]
        leaving = self._ring[:, self._slot]
        middle = self._ring[:, (self._slot + self._half) % window]
        self._halves[0] += middle - leaving
        self._halves[1] += entry - middle
        leaving[...] = entry  # the oldest slot takes this frame
        self._slot = (self._slot + 1) % window
        self._frames += 1
        if self._frames % _RESUM_FRAMES == 0:
            self._resum()
        whole = self._halves[0, :, :bins] + self._halves[1, :, :bins]
        # Power of each bin over the whole window; only its argmax is needed for all bins.
        self._strongest = np.argmax(_power(whole), axis=1)
        # The three bins each port's decisions look at, measured in one go.
        onset, hold = self._qualify(np.stack((self.wanted, self._strongest, self._any)))
        self._decide_wanted(onset[0], hold[0])
        self._decide_any(onset[1], hold[2])

    def _resum(self) -> None:
        window = self._ring.shape[1]
        order = (self._slot + np.arange(window)) % window  # oldest first
        self._halves[0] = self._ring[:, order[: self._half]].sum(axis=1)
        self._halves[1] = self._ring[:, order[self._half :]].sum(axis=1)

    def _qualify(self, index: IntArray) -> tuple[BoolArray, BoolArray]:
        """For bins `index` (k, ports) (-1: none), whether the onset rule and the hold rule of
        the class docstring hold: two (k, ports) bool arrays."""
        tiny = 1e-20
        half = self._half_samples
        # (2, k, ports): old, new; taken from the flat sums, which gives a contiguous array
        at = self._row_starts + np.maximum(index, 0)
        halves = self._halves.reshape(2, -1).take(at, axis=1)
        old, new = halves
        # A tone A*cos() gives |sum| = A*N/2 over N samples: power A^2/2 = 2|sum|^2/N^2, and
        # A^2 = 2 * power (levels are peak levels, as for gateway.dsp.signals.tone).
        power = 2.0 * _power(old + new) / (2 * half) ** 2
        p_old, p_new = 2.0 * _power(halves) / half**2
        energy = self._halves[:, :, self._bins].real  # (2, ports): old, new
        band = (energy[0] + energy[1]) / (2 * half)
        new_band = energy[1] / half  # (ports,): broadcasts over the k rows
        turn = np.abs(np.angle(new * np.conj(old)))  # 2*pi*offset*half_seconds
        steady = (p_new + tiny) / (p_old + tiny)  # new half over old half, in power
        exists = index >= 0
        # (2 * power >= min_sq is power >= min_sq / 2 exactly: a factor of 2 rounds nothing.)
        onset: BoolArray = (
            exists
            & (power >= self._min_sq / 2.0)
            & (power >= self.min_share * band)
            & (self._strongest == index)
            & (turn <= self._max_turn)
            & (steady >= 0.25)
            & (steady <= 4.0)
        )
        hold: BoolArray = (
            exists
            & (p_new >= self._hold_sq / 2.0)
            & (p_new >= 0.5 * self.min_share * new_band)
            & (turn <= 1.5 * self._max_turn)
            & (steady >= 0.1)
        )
        return onset, hold

    def _decide_wanted(self, onset: BoolArray, hold: BoolArray) -> None:
        # Qualified frames in a row (count) and, while on, failing frames in a row (off): on at
        # `confirm_frames` of the one, off at `release_frames` of the other (which then restarts
        # from 0).
        self._wanted_count = (self._wanted_count + 1) * onset
        self._wanted_off = (self._wanted_off + 1) * (self.present & ~hold)
        self.present = np.where(
            self.present,
            self._wanted_off < self.release_frames,
            self._wanted_count >= self.confirm_frames,
        )
        self._wanted_off *= self.present

    def _decide_any(self, onset: BoolArray, hold: BoolArray) -> None:
        strongest = self._strongest
        same = onset & (strongest == self._cand)
        self._cand_count = np.where(same, self._cand_count + 1, onset)
        self._cand = np.where(onset, strongest, _NO_TONE)
        self._any_off = (self._any_off + 1) * ((self._any >= 0) & ~hold)
        kept = self._any_off < self.release_frames
        self._any = np.where(kept, self._any, _NO_TONE)
        self._any_off *= kept
        confirmed = (self._cand_count >= self.confirm_frames) & (self._cand != self._any)
        self._any = np.where(confirmed, self._cand, self._any)


def _power(z: Complex128Array) -> Float64Array:
    """|z|^2 of a C-contiguous complex array: z.real**2 + z.imag**2, the same arithmetic in
    three numpy calls instead of five."""
    parts = z.view(np.float64)
    squares = parts * parts
    power: Float64Array = squares[..., ::2] + squares[..., 1::2]
    return power
