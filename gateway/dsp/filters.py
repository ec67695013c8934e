"""High-pass filtering of received audio: removes the sub-audible CTCSS tone (67-254 Hz) before
the audio is patched to another radio, and any DC or hum below it."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt
from scipy import signal

from gateway.core.timing import SAMPLE_RATE
from gateway.dsp._common import Float32Array, Float64Array, as_frames, as_port_mask


def _sosfilt_kernel() -> Callable[[Float64Array, Float64Array, Float64Array], None] | None:
    """scipy's compiled second-order-sections loop (what scipy.signal.sosfilt runs after its
    argument checks), if this scipy has it with the signature known here and it gives what
    sosfilt gives; None otherwise (SosFilter then calls sosfilt)."""
    try:
        from scipy.signal._sosfilt import _sosfilt

        rng = np.random.default_rng(0)
        sos = signal.butter(4, 0.1, output="sos")
        x = rng.standard_normal((3, 50))
        zi = rng.standard_normal((sos.shape[0], 3, 2))
        want, want_zf = signal.sosfilt(sos, x, axis=-1, zi=zi)
        got = x.copy()
        got_zf = np.ascontiguousarray(zi.transpose(1, 0, 2))
        _sosfilt(np.ascontiguousarray(sos), got, got_zf)
        if np.allclose(got, want) and np.allclose(got_zf.transpose(1, 0, 2), want_zf):
            kernel: Callable[[Float64Array, Float64Array, Float64Array], None] = _sosfilt
            return kernel
    except Exception:  # another scipy: the public function it is
        pass
    return None


_SOSFILT = _sosfilt_kernel()


class SosFilter:
    """A cascade of second-order sections run on (ports, n) frames, each port with its own state:
    scipy.signal.sosfilt with `zi`, minus its per-call overhead.

    On 160-sample frames sosfilt spends ~100 us checking and reshaping its arguments for ~5 us of
    filtering (scipy 1.17, here); the sections and the state are checked once here, kept in the
    layout scipy's compiled loop works on, and that loop is called directly. Should a scipy lack
    it (a private function, checked against sosfilt at import), sosfilt itself is called: the
    same result either way.
    """

    def __init__(self, sos: npt.ArrayLike, ports: int) -> None:
        self.sos: Float64Array = np.ascontiguousarray(sos, dtype=np.float64)
        if self.sos.ndim != 2 or self.sos.shape[1] != 6:
            raise ValueError(f"sos must have shape (sections, 6), not {self.sos.shape}")
        self.ports = ports
        # (ports, sections, 2): sosfilt's zi (sections, ports, 2) with its axes as the loop wants
        self._zi: Float64Array = np.zeros((ports, self.sos.shape[0], 2))

    def process(self, frames: Float32Array | Float64Array) -> Float64Array:
        """Filters (ports, n) frames (any float dtype); returns (ports, n) float64."""
        y = np.array(frames, dtype=np.float64, order="C")  # a copy: filtered in place
        if _SOSFILT is not None:
            _SOSFILT(self.sos, y, self._zi)
            return y
        out, zf = signal.sosfilt(self.sos, y, axis=-1, zi=self._zi.transpose(1, 0, 2))
        self._zi = np.ascontiguousarray(np.asarray(zf).transpose(1, 0, 2))
        return np.asarray(out, dtype=np.float64)

    def reset(self, port_mask: npt.ArrayLike | None = None) -> None:
        """Clears the state of the masked ports (all by default)."""
        self._zi[as_port_mask(port_mask, self.ports)] = 0.0


class HighPass:
    """An elliptic high-pass run on all ports at once, with per-port state.

    Defaults: order 6, pass band from `cutoff_hz` = 300 Hz with at most `ripple_db` = 0.25 dB of
    ripple, stop band at least `stop_db` = 40 dB down. With these numbers the stop band starts at
    259 Hz, so every standard CTCSS tone (67.0 ... 254.1 Hz) is at least 40 dB down (a -20 dBFS
    tone leaves at -60 dBFS) while speech from 300 Hz up passes within 0.25 dB. An elliptic
    filter because the CTCSS band ends 46 Hz below the voice band: a Butterworth of the same
    order only takes 10 dB off a 250 Hz tone. Its group delay peaks near 300 Hz (a few ms),
    which is inaudible on speech. `kind="butter"` gives a maximally flat filter of `order` instead
    (order 6: 57 dB at 100 Hz, 10 dB at 250 Hz) for those who prefer no ripple.

    `process(frames)` takes (ports, n) float32 for any n and filters every port with its own
    state (scipy.signal.sosfilt's loop through `SosFilter`): one call, no loop.
    """

    def __init__(
        self,
        ports: int,
        rate: int = SAMPLE_RATE,
        cutoff_hz: float = 300.0,
        order: int = 6,
        *,
        ripple_db: float = 0.25,
        stop_db: float = 40.0,
        kind: str = "ellip",
    ) -> None:
        if ports <= 0:
            raise ValueError("ports must be positive")
        if not 0.0 < cutoff_hz < rate / 2.0:
            raise ValueError(f"cutoff_hz {cutoff_hz} is outside (0, {rate / 2})")
        if kind == "ellip":
            sos = signal.ellip(
                order, ripple_db, stop_db, cutoff_hz, "highpass", fs=rate, output="sos"
            )
        elif kind == "butter":
            sos = signal.butter(order, cutoff_hz, "highpass", fs=rate, output="sos")
        else:
            raise ValueError(f"kind must be 'ellip' or 'butter', not {kind!r}")
        self.ports = ports
        self.rate = rate
        self.sos: Float64Array = np.asarray(sos, dtype=np.float64)
        self._filter = SosFilter(self.sos, ports)

    def process(self, frames: npt.ArrayLike) -> Float32Array:
        """Filters (ports, n) frames; returns (ports, n) float32."""
        return self._filter.process(as_frames(frames, self.ports)).astype(np.float32)

    def reset(self, port_mask: npt.ArrayLike | None = None) -> None:
        """Clears the state of the masked ports (all by default), as for a new stream."""
        self._filter.reset(port_mask)

    def response_db(self, hz: npt.ArrayLike) -> Float64Array:
        """The filter's gain in dB at the given frequencies."""
        _, h = signal.sosfreqz(self.sos, worN=np.atleast_1d(np.asarray(hz, float)), fs=self.rate)
        return np.asarray(20.0 * np.log10(np.maximum(np.abs(h), 1e-12)), dtype=np.float64)
