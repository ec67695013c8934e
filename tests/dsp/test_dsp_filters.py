"""HighPass: CTCSS removed, speech kept, per-port state in one call."""

from __future__ import annotations

import itertools
import math

import numpy as np
import numpy.typing as npt

from gateway.core.tones import CTCSS_TONES_HZ
from gateway.dsp.filters import HighPass
from gateway.dsp.signals import speech_like

RATE = 8000


def _gain_db(hz: npt.NDArray[np.float64], kind: str = "ellip") -> npt.NDArray[np.float64]:
    """Measured gain of a HighPass on real sines (one port per frequency, 2 s, steady state)."""
    t = np.arange(2 * RATE) / RATE
    x = (0.5 * np.sin(2 * np.pi * hz[:, np.newaxis] * t)).astype(np.float32)
    filt = HighPass(len(hz), kind=kind)
    y = np.concatenate([filt.process(x[:, i : i + 160]) for i in range(0, x.shape[1], 160)], axis=1)
    settled = slice(RATE, None)
    rms_in = np.sqrt(np.mean(np.square(x[:, settled], dtype=np.float64), axis=1))
    rms_out = np.sqrt(np.mean(np.square(y[:, settled], dtype=np.float64), axis=1))
    return np.asarray(20 * np.log10(rms_out / rms_in), dtype=np.float64)


def test_removes_ctcss_and_keeps_speech_band() -> None:
    gains = _gain_db(np.array([100.0, 1000.0]))
    assert gains[0] <= -30.0, gains
    assert gains[1] > -1.0, gains
    # Every standard tone is removed, not only 100 Hz: an elliptic filter's stop band starts
    # just above 254.1 Hz.
    tones = _gain_db(np.asarray(CTCSS_TONES_HZ))
    assert float(np.max(tones)) <= -39.0, dict(zip(CTCSS_TONES_HZ, np.round(tones, 1), strict=True))
    voice = _gain_db(np.arange(400.0, 3401.0, 100.0))
    assert float(np.max(np.abs(voice))) < 0.5, voice


def test_response_db_agrees_with_measurement() -> None:
    hz = np.array([100.0, 250.3, 300.0, 1000.0])
    np.testing.assert_allclose(HighPass(1).response_db(hz), _gain_db(hz), atol=0.3)


def test_butterworth_option_is_flat_without_ripple() -> None:
    gains = _gain_db(np.array([100.0, 1000.0, 2000.0]), kind="butter")
    assert gains[0] <= -30.0 and abs(gains[1]) < 0.05 and abs(gains[2]) < 0.05


def test_ports_are_filtered_independently_in_one_call() -> None:
    rng = np.random.default_rng(2)
    sources = np.stack([speech_like(1.0, -6.0 - 3 * p, rng) for p in range(4)])
    filt = HighPass(4)
    cuts = [0, 7, 160, 161, 500, 1300, 8000]
    together = np.concatenate(
        [filt.process(sources[:, a:b]) for a, b in itertools.pairwise(cuts)], axis=1
    )
    for p in range(4):
        alone = HighPass(1).process(sources[p : p + 1])
        np.testing.assert_allclose(together[p], alone[0], atol=1e-6)


def test_reset_clears_only_the_masked_ports() -> None:
    filt = HighPass(2)
    filt.process(np.full((2, 160), 0.5, dtype=np.float32))  # a step: the filters ring
    filt.reset(np.array([True, False]))
    y = filt.process(np.zeros((2, 160), dtype=np.float32))
    assert float(np.max(np.abs(y[0]))) == 0.0
    assert float(np.max(np.abs(y[1]))) > 1e-3
    assert math.isclose(float(np.max(np.abs(HighPass(1).process(np.zeros((1, 5)))))), 0.0)
