"""SampleFifo and DriftCorrector: one hour of two clocks 200 ppm apart, both ways; FIFO overrun
and underrun accounting; corrections without clicks."""

from __future__ import annotations

import time

import numpy as np
import numpy.typing as npt
import pytest

from gateway.dsp.drift import DriftCorrector, SampleFifo
from tests.support.speech import talk_with_pauses

RATE = 8000
FRAME = 160
HOUR_FRAMES = 180_000
TARGET = 640  # 80 ms
TOLERANCE = 48
JITTER_FRAMES = 0.45  # the producer's writes come up to 9 ms early or late


@pytest.fixture(scope="module")
def talk() -> npt.NDArray[np.float32]:
    return talk_with_pauses(150.0, np.random.default_rng(0))


@pytest.mark.parametrize("ppm", [200.0, -200.0])
def test_one_hour_of_200_ppm_drift(talk: npt.NDArray[np.float32], ppm: float) -> None:
    """The producer (a sound card's clock) delivers 160 * (1 + ppm) samples per engine frame on
    average, in jittered writes; the consumer takes 160 per frame through the corrector."""
    started = time.perf_counter()
    rng = np.random.default_rng(1 if ppm > 0 else 2)
    ratio = 1.0 + ppm * 1e-6
    # Samples delivered by the end of each frame: the producer's clock, jittered by up to
    # 0.45 frame per write (the order of writes is kept).
    when = np.arange(HOUR_FRAMES + 1) + rng.uniform(-JITTER_FRAMES, JITTER_FRAMES, HOUR_FRAMES + 1)
    when[0] = 0.0
    delivered = np.floor(FRAME * ratio * when).astype(np.int64)
    stream = np.resize(talk, int(delivered[-1]))  # the talk, looped over the hour
    fifo = SampleFifo(4000)
    corrector = DriftCorrector(TARGET, TOLERANCE)
    levels = np.empty(HOUR_FRAMES, dtype=np.int64)  # before each read
    start_frame = -1
    for i in range(HOUR_FRAMES):
        fifo.write(stream[delivered[i] : delivered[i + 1]])
        levels[i] = fifo.level
        corrector.pull(fifo, FRAME)
        if start_frame < 0 and corrector.started:
            start_frame = i
    elapsed = time.perf_counter() - started

    assert 0 <= start_frame < 10  # primed within a few frames
    running = levels[start_frame:]
    # Within bounds all the time: target +- (twice the tolerance + the producer's jitter + the
    # priming overshoot of one write), never empty, never full.
    bound = 2 * TOLERANCE + JITTER_FRAMES * 2 * FRAME + FRAME
    assert np.all(np.abs(running - TARGET) <= bound), (running.min(), running.max())
    settled = levels[start_frame + 500 :]  # after the priming overshoot is trimmed
    assert np.all(np.abs(settled - TARGET) <= 2 * TOLERANCE + JITTER_FRAMES * 2 * FRAME)
    assert corrector.underruns == 0 and fifo.underrun_samples == 0 and fifo.overrun_samples == 0
    # The corrections add up to the drift (200 ppm of 28.8 M samples = 5760), all one way.
    expected = abs(ppm) * 1e-6 * FRAME * HOUR_FRAMES
    made, wrong_way = (
        (corrector.drops, corrector.inserts) if ppm > 0 else (corrector.inserts, corrector.drops)
    )
    assert abs(made - wrong_way - expected) < 0.03 * expected, (made, wrong_way, expected)
    assert wrong_way < 0.01 * expected
    # Mostly in pauses: speech spurts are short enough to wait for the next quiet frame.
    assert corrector.loud_corrections < 0.05 * made, corrector.loud_corrections
    assert elapsed < 20.0


def test_corrections_are_click_free_on_a_continuous_tone() -> None:
    """Even forced into a loud 400 Hz tone (level far off target), dropping or inserting one
    sample leaves no step in the waveform: the largest sample-to-sample change stays that of
    the tone."""
    t = np.arange(40 * FRAME) / RATE
    sine = (0.5 * np.sin(2 * np.pi * 400.0 * t)).astype(np.float32)
    max_step = 0.5 * 2 * np.pi * 400.0 / RATE
    # Producer far ahead (a 2000-sample burst then 200 a frame) or far behind (100 a frame).
    for first, per_frame, expect in ((2000, 200, "drops"), (1000, 100, "inserts")):
        fifo = SampleFifo(20000)
        corrector = DriftCorrector(1000, 20)
        fifo.write(sine[:first])
        written = first
        out = []
        for _ in range(12):
            out.append(corrector.pull(fifo, FRAME))
            fifo.write(sine[written : written + per_frame])
            written += per_frame
        made = getattr(corrector, expect)
        assert made >= 8, (expect, made)  # one per frame once far off target
        assert corrector.underruns == 0
        steps = np.abs(np.diff(np.concatenate(out)))
        assert float(np.max(steps)) < max_step * 1.04, float(np.max(steps)) / max_step


def test_no_correction_within_tolerance_nor_in_speech_until_far_off() -> None:
    loud = (0.1 * np.sin(2 * np.pi * 1000.0 * np.arange(FRAME) / RATE)).astype(np.float32)
    quiet = np.zeros(FRAME, dtype=np.float32)
    corrector = DriftCorrector(640, 40, smoothing_frames=1)
    assert corrector.decide(670, quiet) == 0  # within tolerance
    assert corrector.decide(700, loud) == 0  # beyond it, but someone is talking
    assert corrector.decide(700, quiet) == 1  # drop on a quiet frame
    assert corrector.decide(740, loud) == 1  # far off: anywhere
    assert corrector.decide(580, quiet) == -1
    assert corrector.decide(700, quiet, can_drop=False) == 0


def test_fifo_overrun_drops_the_oldest_and_underrun_pads_with_zeros() -> None:
    fifo = SampleFifo(10)
    assert fifo.write(np.arange(6, dtype=np.float32)) == 0
    assert fifo.write(np.arange(6, 12, dtype=np.float32)) == 2  # 0 and 1 are dropped
    assert fifo.level == 10 and fifo.overrun_samples == 2
    samples, missing = fifo.read(4)
    assert samples.tolist() == [2, 3, 4, 5] and missing == 0
    assert fifo.write(np.arange(12, 16, dtype=np.float32)) == 0  # wraps around the ring
    assert fifo.peek(3).tolist() == [6, 7, 8]
    samples, missing = fifo.read(12)
    assert samples.tolist() == [6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 0, 0] and missing == 2
    assert fifo.underrun_samples == 2 and fifo.level == 0
    assert fifo.write(np.arange(25, dtype=np.float32)) == 15  # larger than the whole ring
    assert fifo.read(10)[0].tolist() == list(range(15, 25))


def test_corrector_primes_and_reprimes_after_the_source_stops() -> None:
    fifo = SampleFifo(4000)
    corrector = DriftCorrector(400, 200)
    fifo.write(np.ones(300, dtype=np.float32))
    assert not corrector.pull(fifo, FRAME).any() and fifo.level == 300  # waits for the target
    fifo.write(np.ones(200, dtype=np.float32))
    assert corrector.pull(fifo, FRAME).all() and corrector.started
    for _ in range(2):
        corrector.pull(fifo, FRAME)
    assert corrector.underruns == 0
    out = corrector.pull(fifo, FRAME)  # 20 samples were left
    assert out[:20].all() and not out[20:].any()
    assert corrector.underruns == 1 and not corrector.started


def test_a_source_that_piles_up_a_second_is_cut_back_at_once_and_a_burst_is_not() -> None:
    frame, target = 160, 240
    corrector = DriftCorrector(
        target, 40, smoothing_frames=50, resync_samples=960
    )  # 120 ms at 8 kHz
    fifo = SampleFifo(16000)
    tone = (0.3 * np.sin(np.arange(frame) * 0.3)).astype(np.float32)

    def run(frames: int, extra: int = 0) -> int:
        """Feeds a frame per pulled frame (plus `extra` samples once); the highest level seen."""
        fifo.write(np.zeros(extra, np.float32))
        highest = 0
        for _ in range(frames):
            fifo.write(tone)
            corrector.pull(fifo, frame)
            highest = max(highest, fifo.level)
        return highest

    run(100, extra=target)  # settled at the target
    assert abs(fifo.level - target) <= frame
    # A burst of 100 ms that the consumer takes back within a few frames: no resync.
    fifo.write(np.zeros(800, np.float32))
    for _ in range(4):
        corrector.pull(fifo, frame)
        corrector.pull(fifo, frame)
        fifo.write(tone)
    run(50)
    assert corrector.resyncs == 0
    # A second piled up for good (the card stalled and went on): back near the target within
    # a fifth of a second, in one cut, not six minutes of one sample a frame.
    run(10, extra=8000)
    assert corrector.resyncs == 1 and corrector.resynced_samples > 7000
    assert fifo.level <= target + frame
