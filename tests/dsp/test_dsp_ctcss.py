"""CtcssDetector on real signals: detection and release times under speech, no false detection on
speech or noise, no detection of a neighbouring standard tone, all ports in one detector."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from gateway.core.tones import CTCSS_TONES_HZ
from gateway.dsp.ctcss import CtcssDetector
from gateway.dsp.signals import speech_like, tone

RATE = 8000
FRAME = 160
TONES = np.asarray(CTCSS_TONES_HZ)
NAMED = [67.0, 100.0, 131.8, 192.8, 250.3]
MAX_DETECT_S = 0.250
MAX_RELEASE_S = 0.250

Audio = npt.NDArray[np.float32]


def _speech(ports: int, seconds: float, levels: npt.ArrayLike, seed: int) -> Audio:
    rng = np.random.default_rng(seed)
    lv = np.broadcast_to(np.asarray(levels, dtype=float), (ports,))
    return np.stack([speech_like(seconds, float(lv[p]), rng) for p in range(ports)])


def _add_tone(audio: Audio, port: int, hz: float, start_s: float, stop_s: float) -> None:
    """A -20 dBFS tone (gateway.dsp.signals.tone) from start_s to stop_s on one port."""
    burst = tone(hz, stop_s - start_s, level_dbfs=-20.0)
    first = round(start_s * RATE)
    audio[port, first : first + burst.size] += burst


def _run(detector: CtcssDetector, audio: Audio, method: str = "process") -> npt.NDArray[np.float64]:
    """(frames, ports) results of `method`, frame by frame."""
    step = getattr(detector, method)
    frames = audio.shape[1] // FRAME
    return np.array([step(audio[:, i * FRAME : (i + 1) * FRAME]) for i in range(frames)])


def _frame_end_s(frames: int) -> npt.NDArray[np.float64]:
    return (np.arange(frames) + 1) * FRAME / RATE


def _check_timing(
    on: npt.NDArray[np.bool_], starts: npt.NDArray[np.float64], stops: npt.NDArray[np.float64]
) -> tuple[float, float]:
    """Asserts, per port, off before the tone, on within MAX_DETECT_S, on all along, off within
    MAX_RELEASE_S of the end and off after; returns the worst detection and release times."""
    t = _frame_end_s(on.shape[0])
    worst_detect = worst_release = 0.0
    for p in range(on.shape[1]):
        assert not on[t <= starts[p], p].any(), f"port {p}: on before its tone"
        detected = t[np.argmax(on[:, p])] - starts[p] if on[:, p].any() else np.inf
        assert detected <= MAX_DETECT_S, f"port {p}: detected after {detected * 1000:.0f} ms"
        during = (t >= starts[p] + detected) & (t <= stops[p])
        assert on[during, p].all(), f"port {p}: dropped out while the tone was on"
        after = np.nonzero((t > stops[p]) & ~on[:, p])[0]
        released = t[after[0]] - stops[p]
        assert released <= MAX_RELEASE_S, f"port {p}: released after {released * 1000:.0f} ms"
        assert not on[t > stops[p] + released, p].any(), f"port {p}: on again after the tone"
        worst_detect = max(worst_detect, detected)
        worst_release = max(worst_release, released)
    return worst_detect, worst_release


def test_every_standard_tone_is_detected_under_speech_within_250ms_and_released() -> None:
    ports = len(TONES)
    # Speech at -6 and -12 dBFS peak in turn; tones at -20 dBFS starting at varied points of a
    # frame; all 50 ports in one detector.
    audio = _speech(ports, 4.0, np.where(np.arange(ports) % 2, -6.0, -12.0), seed=1)
    starts = 1.0 + np.arange(ports) * 0.0037
    stops = starts + 2.0
    for p, hz in enumerate(TONES):
        _add_tone(audio, p, float(hz), float(starts[p]), float(stops[p]))
    detector = CtcssDetector(ports, TONES)
    worst_detect, _ = _check_timing(_run(detector, audio) > 0, starts, stops)
    assert worst_detect > 0.1  # sanity: a 200 ms window cannot be much faster than that


@pytest.mark.parametrize("speech_dbfs", [-6.0, -12.0])
def test_named_tones_with_their_neighbours_present_instead(speech_dbfs: float) -> None:
    """Ports 0-4 get their wanted tone, ports 5-14 the tone below or above it instead."""
    wanted: list[float] = []
    present: list[float] = []
    for hz in NAMED:
        k = CTCSS_TONES_HZ.index(hz)
        wanted.append(hz)
        present.append(hz)
        for neighbour in (k - 1, k + 1):
            if 0 <= neighbour < len(TONES):
                wanted.append(hz)
                present.append(float(TONES[neighbour]))
    ports = len(wanted)
    audio = _speech(ports, 4.0, speech_dbfs, seed=int(-speech_dbfs))
    for p, hz in enumerate(present):
        _add_tone(audio, p, hz, 1.0, 3.0)
    on = _run(CtcssDetector(ports, np.asarray(wanted)), audio) > 0
    right = np.asarray(wanted) == np.asarray(present)
    starts = np.full(int(right.sum()), 1.0)
    _check_timing(on[:, right], starts, starts + 2.0)
    assert not on[:, ~right].any(), [wanted[p] for p in np.nonzero(on.any(axis=0) & ~right)[0]]


def test_no_neighbouring_tone_is_ever_taken_for_the_wanted_one() -> None:
    """All 98 (wanted, neighbour) pairs of the table, the closest 2.3 Hz apart, in one detector;
    `detect_any` on the same audio names the tone actually present."""
    pairs = [(k, k + d) for k in range(len(TONES)) for d in (-1, 1) if 0 <= k + d < len(TONES)]
    ports = len(pairs)
    audio = _speech(ports, 3.5, -9.0, seed=4)
    for p, (_, present) in enumerate(pairs):
        _add_tone(audio, p, float(TONES[present]), 0.5, 3.5)
    wanted = TONES[[k for k, _ in pairs]]
    on = _run(CtcssDetector(ports, wanted), audio) > 0
    assert not on.any(), sorted({(wanted[p], TONES[pairs[p][1]]) for p in np.nonzero(on.any(0))[0]})
    found = _run(CtcssDetector(ports, wanted), audio, "detect_any")
    settled = _frame_end_s(found.shape[0]) >= 0.5 + MAX_DETECT_S
    expected = TONES[[present for _, present in pairs]]
    assert np.array_equal(found[settled], np.broadcast_to(expected, found[settled].shape))


def test_no_false_detection_on_speech_alone() -> None:
    """50 ports, each wanting a different tone, 30 s of speech from -12 to 0 dBFS peak each."""
    ports = len(TONES)
    audio = _speech(ports, 30.0, np.linspace(-12.0, 0.0, ports), seed=5)
    on = _run(CtcssDetector(ports, TONES), audio) > 0
    assert not on.any(), TONES[on.any(axis=0)].tolist()
    found = _run(CtcssDetector(ports, TONES), audio, "detect_any")
    assert np.isnan(found).all(), np.unique(found[~np.isnan(found)]).tolist()


@pytest.mark.parametrize("noise_dbfs", [-50.0, -30.0, -20.0, -10.0, -3.0])
def test_no_false_detection_on_white_noise(noise_dbfs: float) -> None:
    ports = len(TONES)
    rng = np.random.default_rng(int(-noise_dbfs))
    audio = (rng.standard_normal((ports, 10 * RATE)) * 10 ** (noise_dbfs / 20)).astype(np.float32)
    audio = np.clip(audio, -1.0, 1.0)
    assert not (_run(CtcssDetector(ports, TONES), audio) > 0).any()
    assert np.isnan(_run(CtcssDetector(ports, TONES), audio, "detect_any")).all()


def test_tone_is_found_in_noise_and_with_an_encoder_frequency_error() -> None:
    """-20 dBFS tones 0.5 Hz off (a sloppy encoder) in white noise at -20 dBFS RMS plus speech."""
    ports = len(NAMED) * 2
    hz = np.repeat(np.asarray(NAMED), 2)
    offsets = np.tile([-0.5, 0.5], len(NAMED))
    rng = np.random.default_rng(8)
    audio = _speech(ports, 3.0, -9.0, seed=8) + (
        rng.standard_normal((ports, 3 * RATE)) * 0.1
    ).astype(np.float32)
    for p in range(ports):
        _add_tone(audio, p, float(hz[p] + offsets[p]), 0.5, 2.5)
    on = _run(CtcssDetector(ports, hz), audio) > 0
    starts = np.full(ports, 0.5)
    _check_timing(on, starts, starts + 2.0)


def test_detect_any_follows_a_change_of_tone_and_process_keeps_the_wanted_one() -> None:
    audio = _speech(1, 4.0, -9.0, seed=9)
    _add_tone(audio, 0, 100.0, 0.5, 2.0)
    _add_tone(audio, 0, 103.5, 2.0, 3.5)
    found = _run(CtcssDetector(1, [np.nan]), audio, "detect_any")[:, 0]
    t = _frame_end_s(found.size)
    assert np.all(found[(t > 0.75) & (t < 2.0)] == 100.0)
    assert np.all(found[(t > 2.25) & (t < 3.5)] == 103.5)
    assert np.isnan(found[t > 3.75]).all() and np.isnan(found[t < 0.5]).all()
    detector = CtcssDetector(1, [100.0])
    on = _run(detector, audio)[:, 0] > 0
    assert on[(t > 0.75) & (t < 2.0)].all() and not on[t > 2.25].any()
    assert detector.tone_hz[0] != 100.0  # both decisions are kept up to date


def test_port_without_tone_never_detects_and_bad_tones_are_refused() -> None:
    audio = np.zeros((2, 2 * RATE), dtype=np.float32)
    _add_tone(audio, 0, 100.0, 0.2, 1.8)
    _add_tone(audio, 1, 100.0, 0.2, 1.8)
    on = _run(CtcssDetector(2, [np.nan, 100.0]), audio) > 0
    assert not on[:, 0].any() and on[:, 1].any()
    with pytest.raises(ValueError, match="not standard"):
        CtcssDetector(1, [101.0])
    with pytest.raises(ValueError, match="entries"):
        CtcssDetector(2, [100.0])


def test_reset_and_set_tones() -> None:
    audio = np.zeros((2, RATE), dtype=np.float32)
    _add_tone(audio, 0, 131.8, 0.0, 1.0)
    _add_tone(audio, 1, 131.8, 0.0, 1.0)
    detector = CtcssDetector(2, [131.8, 131.8])
    assert (_run(detector, audio)[-1] > 0).all()
    detector.reset([0])
    assert detector.process(audio[:, -FRAME:]).tolist() == [False, True]
    detector.set_tones([131.8, 136.5])
    assert detector.process(audio[:, -FRAME:]).tolist() == [False, False]
