"""StreamingResampler: continuity across arbitrary block edges, exact sample counts, alias
rejection, channels."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pytest

from gateway.dsp.resample import StreamingResampler

RATE_PAIRS = [(48000, 8000), (8000, 48000), (44100, 8000), (8000, 44100)]


def _sine(
    hz: float, rate: int, n: int, amplitude: float = 0.5, phase: float = 0.3
) -> npt.NDArray[np.float32]:
    t = np.arange(n, dtype=np.float64) / rate
    return (amplitude * np.sin(2 * np.pi * hz * t + phase)).astype(np.float32)


def _random_blocks(
    resampler: StreamingResampler, x: npt.NDArray[np.float32], rng: np.random.Generator
) -> npt.NDArray[np.float32]:
    """Feeds x in blocks of random size (0, 1, and up to 2000 samples)."""
    out = []
    pos = 0
    while pos < len(x):
        size = int(rng.choice([0, 1, 2, int(rng.integers(3, 2000))]))
        out.append(resampler.process(x[pos : pos + size]))
        pos += size
    return np.concatenate(out)


@pytest.mark.parametrize(("rate_in", "rate_out"), RATE_PAIRS)
def test_sine_through_random_blocks_matches_ideal_after_group_delay(
    rate_in: int, rate_out: int
) -> None:
    rng = np.random.default_rng(rate_in + rate_out)
    n = rate_in * 2
    resampler = StreamingResampler(rate_in, rate_out)
    y = _random_blocks(resampler, _sine(1000.0, rate_in, n), rng)
    j = np.arange(len(y), dtype=np.float64)
    ideal = 0.5 * np.sin(2 * np.pi * 1000.0 * (j - resampler.latency_samples) / rate_out + 0.3)
    settled = slice(rate_out // 20, None)  # after the filter's start-up transient (50 ms)
    error_dbfs = 20 * math.log10(float(np.max(np.abs(y[settled] - ideal[settled]))))
    assert error_dbfs < -70.0, error_dbfs
    # No click anywhere: the largest sample-to-sample step is that of the sine itself.
    max_step = 0.5 * 2 * np.pi * 1000.0 / rate_out
    assert float(np.max(np.abs(np.diff(y[settled])))) <= max_step * 1.001


@pytest.mark.parametrize(("rate_in", "rate_out"), RATE_PAIRS)
def test_output_does_not_depend_on_block_sizes(rate_in: int, rate_out: int) -> None:
    rng = np.random.default_rng(7)
    x = (rng.standard_normal(rate_in // 2) * 0.2).astype(np.float32)
    whole = StreamingResampler(rate_in, rate_out).process(x)
    pieces = _random_blocks(StreamingResampler(rate_in, rate_out), x, rng)
    assert len(whole) == len(pieces)
    np.testing.assert_allclose(pieces, whole, atol=2e-6)


@pytest.mark.parametrize(("rate_in", "rate_out"), RATE_PAIRS)
def test_sample_count_is_exact_over_many_blocks(rate_in: int, rate_out: int) -> None:
    rng = np.random.default_rng(1)
    resampler = StreamingResampler(rate_in, rate_out)
    fed = produced = 0
    for _ in range(20000):
        size = int(rng.integers(0, 60))
        expected = resampler.output_count(size)
        produced += len(resampler.process(np.zeros(size, dtype=np.float32)))
        fed += size
        assert produced == resampler.total_out
        assert expected >= 0
        # ceil(N * out / in): never more than one sample from the exact ratio, never drifting.
        assert 0 <= produced - fed * rate_out / rate_in < 1
    assert resampler.total_in == fed


def test_steady_20ms_blocks_give_steady_output_blocks() -> None:
    resampler = StreamingResampler(44100, 8000)
    sizes = {len(resampler.process(np.zeros(882, dtype=np.float32))) for _ in range(200)}
    assert sizes == {160}
    back = StreamingResampler(8000, 44100)
    assert {len(back.process(np.zeros(160, dtype=np.float32))) for _ in range(200)} == {882}


@pytest.mark.parametrize(("rate_in", "hz"), [(48000, 5000.0), (48000, 11000.0), (44100, 4400.0)])
def test_rejects_what_would_alias_into_the_8k_band(rate_in: int, hz: float) -> None:
    resampler = StreamingResampler(rate_in, 8000)
    y = resampler.process(_sine(hz, rate_in, rate_in))[800:]
    level_db = 20 * math.log10(float(np.max(np.abs(y))) / 0.5)
    assert level_db < -60.0, level_db


def test_passband_is_flat_in_the_voice_band() -> None:
    for hz in (300.0, 1000.0, 2000.0, 3000.0, 3400.0):
        y = StreamingResampler(48000, 8000).process(_sine(hz, 48000, 96000))[8000:]
        amplitude = math.sqrt(2 * float(np.mean(np.square(y, dtype=np.float64))))
        gain_db = 20 * math.log10(amplitude / 0.5)
        assert abs(gain_db) < 0.05, (hz, gain_db)


def test_channels_are_independent_and_keep_the_layout() -> None:
    rng = np.random.default_rng(3)
    left = _sine(700.0, 48000, 9600)
    right = (rng.standard_normal(9600) * 0.1).astype(np.float32)
    stereo = StreamingResampler(48000, 8000, channels=2)
    y = _random_blocks(stereo, np.stack((left, right), axis=1), rng)
    assert y.shape == (1600, 2) and y.dtype == np.float32
    np.testing.assert_allclose(y[:, 0], StreamingResampler(48000, 8000).process(left), atol=2e-6)
    np.testing.assert_allclose(y[:, 1], StreamingResampler(48000, 8000).process(right), atol=2e-6)


def test_rejects_wrong_shapes() -> None:
    with pytest.raises(ValueError, match="expected shape"):
        StreamingResampler(48000, 8000, channels=2).process(np.zeros(10, dtype=np.float32))
    with pytest.raises(ValueError, match="expected shape"):
        StreamingResampler(48000, 8000).process(np.zeros((10, 3), dtype=np.float32))


def test_latency_is_a_few_milliseconds() -> None:
    for rate_in, rate_out in RATE_PAIRS:
        assert 0.002 < StreamingResampler(rate_in, rate_out).latency_seconds < 0.005


# --- the minimum-phase filter the sound-card ports use ---------------------------------------


def _burst_delay_ms(hz: float, resampler: StreamingResampler) -> float:
    """Group delay at `hz`: how far the energy centroid of a 20 ms Hann-windowed burst moves."""
    n = 960  # 20 ms at 48 kHz
    t = np.arange(4 * n) / 48000
    envelope = np.zeros(4 * n)
    envelope[n : 2 * n] = np.hanning(n)
    x = (0.5 * envelope * np.sin(2 * np.pi * hz * t)).astype(np.float32)
    y = resampler.process(x).astype(np.float64)
    before = float(np.sum(np.arange(len(x)) * x.astype(np.float64) ** 2) / np.sum(x**2.0)) / 6
    after = float(np.sum(np.arange(len(y)) * y**2) / np.sum(y**2))
    return (after - before) / 8000 * 1000


@pytest.mark.parametrize(("rate_in", "rate_out"), RATE_PAIRS)
def test_minimum_phase_is_continuous_and_block_independent(rate_in: int, rate_out: int) -> None:
    rng = np.random.default_rng(11)
    y = _random_blocks(
        StreamingResampler(rate_in, rate_out, minimum_phase=True),
        _sine(1000.0, rate_in, rate_in),
        rng,
    )
    settled = y[rate_out // 20 :]
    max_step = 0.5 * 2 * np.pi * 1000.0 / rate_out
    assert float(np.max(np.abs(np.diff(settled)))) <= max_step * 1.001
    amplitude = math.sqrt(2 * float(np.mean(np.square(settled, dtype=np.float64))))
    assert abs(20 * math.log10(amplitude / 0.5)) < 0.05
    x = (rng.standard_normal(rate_in // 4) * 0.2).astype(np.float32)
    whole = StreamingResampler(rate_in, rate_out, minimum_phase=True).process(x)
    pieces = _random_blocks(StreamingResampler(rate_in, rate_out, minimum_phase=True), x, rng)
    np.testing.assert_allclose(pieces, whole, atol=2e-6)


def test_minimum_phase_keeps_the_magnitude_and_cuts_the_delay() -> None:
    linear = StreamingResampler(48000, 8000)
    quick = StreamingResampler(48000, 8000, minimum_phase=True)
    assert quick.latency_seconds < 0.0005 < 0.003 < linear.latency_seconds
    assert 3.0 < _burst_delay_ms(1000.0, StreamingResampler(48000, 8000)) < 4.0
    for hz, most_ms in ((300.0, 0.6), (1000.0, 0.6), (3000.0, 1.5)):
        delay = _burst_delay_ms(hz, StreamingResampler(48000, 8000, minimum_phase=True))
        assert 0.0 < delay < most_ms, (hz, delay)
        y = StreamingResampler(48000, 8000, minimum_phase=True).process(_sine(hz, 48000, 48000))
        y = y[4000:]
        amplitude = math.sqrt(2 * float(np.mean(np.square(y, dtype=np.float64))))
        assert abs(20 * math.log10(amplitude / 0.5)) < 0.05, hz
    for hz in (5000.0, 11000.0):  # still nothing aliases into the 8 kHz band
        y = StreamingResampler(48000, 8000, minimum_phase=True).process(_sine(hz, 48000, 48000))
        assert 20 * math.log10(float(np.max(np.abs(y[800:]))) / 0.5) < -60.0, hz
