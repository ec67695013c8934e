"""AutoLevel: quiet and loud talkers end at the same level, silence and noise are not pumped up,
gain moves in ramps; the level helpers."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from gateway.dsp.level import AutoLevel, peak_dbfs, rms_dbfs
from gateway.dsp.signals import speech_like, tone

FRAME = 160
Audio = npt.NDArray[np.float32]


def _process(level: AutoLevel, audio: Audio) -> Audio:
    return np.concatenate(
        [level.process(audio[:, i : i + FRAME]) for i in range(0, audio.shape[1], FRAME)], axis=1
    )


def _active_level_dbfs(
    source: Audio, out: Audio, gate_dbfs: float = -50.0
) -> npt.NDArray[np.float64]:
    """Per port, the RMS level of `out` over the frames whose INPUT is above the gate."""
    frames_in = source.reshape(source.shape[0], -1, FRAME).astype(np.float64)
    frames_out = out.reshape(out.shape[0], -1, FRAME).astype(np.float64)
    active = 10 * np.log10(np.mean(frames_in**2, axis=2) + 1e-20) > gate_dbfs
    power = np.mean(frames_out**2, axis=2)
    return np.array([10 * np.log10(power[p, active[p]].mean()) for p in range(source.shape[0])])


def _talkers(peaks_dbfs: list[float], seconds: float, seed: int) -> Audio:
    rng = np.random.default_rng(seed)
    return np.stack([speech_like(seconds, peak, rng) for peak in peaks_dbfs])


def test_quiet_and_loud_talkers_arrive_at_the_target_level() -> None:
    # speech_like's levels are PEAK levels; its speech level (RMS over active frames) is about
    # 16 dB lower: -30 dBFS peak is -46 dBFS speech, which needs +28 dB.
    audio = _talkers([-30.0, -6.0], 30.0, seed=1)
    level = AutoLevel(2, target_dbfs=-18.0, max_gain_db=30.0)
    out = _process(level, audio)
    half = audio.shape[1] // 2
    before = _active_level_dbfs(audio[:, half:], audio[:, half:])
    after = _active_level_dbfs(audio[:, half:], out[:, half:])
    assert before[1] - before[0] > 20.0  # really 24 dB apart going in
    np.testing.assert_allclose(after, -18.0, atol=3.0)
    assert abs(after[1] - after[0]) < 2.0


def test_default_gain_range_levels_speech_at_30_dbfs_and_caps_quieter() -> None:
    audio = _talkers([-30.0, -6.0, -14.0], 30.0, seed=2)
    half = audio.shape[1] // 2
    speech = _active_level_dbfs(audio[:, half:], audio[:, half:])
    audio[2] *= np.float32(10 ** ((-30.0 - speech[2]) / 20))  # speech level -30 dBFS (RMS)
    level = AutoLevel(3)  # -18 dBFS target, gain -20 ... +20 dB
    out = _process(level, audio)
    after = _active_level_dbfs(audio[:, half:], out[:, half:])
    assert abs(after[1] + 18.0) < 3.0 and abs(after[2] + 18.0) < 3.0, after
    # -30 dBFS peak (-46 dBFS speech) would need 28 dB: it gets the maximum, 20 dB, no more.
    assert level.gain_db[0] == pytest.approx(20.0, abs=0.1)
    assert after[0] == pytest.approx(speech[0] + 20.0, abs=0.5)


def test_silence_and_noise_are_not_pumped_up() -> None:
    rng = np.random.default_rng(3)
    talk = speech_like(10.0, -20.0, rng)
    hiss = (rng.standard_normal(10 * 8000) * 10 ** (-65 / 20)).astype(np.float32)
    audio = np.stack(
        (
            np.concatenate((talk, hiss, talk)),  # a talker, a long pause with hiss, the talker
            np.concatenate((hiss, hiss, hiss)),  # an open squelch with no one talking
        )
    )
    level = AutoLevel(2)
    gains = []
    for i in range(0, audio.shape[1], FRAME):
        level.process(audio[:, i : i + FRAME])
        gains.append(level.gain_db.copy())
    gain = np.array(gains)
    pause = slice(int(10.5 / 0.02), int(20.0 / 0.02))
    assert np.ptp(gain[pause, 0]) < 0.5  # frozen through the pause (after settling)
    assert np.all(gain[:, 1] == 0.0)  # hiss alone never moves the gain
    # Noise between words (above the absolute gate but 20 dB under the talker) does not pull
    # the speech level down either: the same gain with and without it.
    bursts = [speech_like(1.5, -6.0, rng) for _ in range(10)]
    gap = np.zeros(12000, dtype=np.float32)
    clean = np.concatenate([np.concatenate((b, gap)) for b in bursts])
    noisy = np.concatenate(
        [
            np.concatenate(
                (b, (rng.standard_normal(gap.size) * 10 ** (-46 / 20)).astype(np.float32))
            )
            for b in bursts
        ]
    )
    clean_level, noisy_level = AutoLevel(1), AutoLevel(1)
    _process(clean_level, clean[np.newaxis])
    _process(noisy_level, noisy[np.newaxis])
    assert abs(noisy_level.gain_db[0] - clean_level.gain_db[0]) < 1.0


def test_gain_moves_in_per_sample_ramps() -> None:
    # A constant input makes out/in the gain itself, sample by sample.
    x = np.concatenate((np.full(100 * FRAME, 0.01), np.full(100 * FRAME, 0.3))).astype(np.float32)
    out = _process(AutoLevel(1), x[np.newaxis])[0]
    gain_db = 20 * np.log10(out / x)
    steps = np.abs(np.diff(gain_db))
    assert np.ptp(gain_db) > 20.0  # it does move a lot...
    assert float(np.max(steps)) < 0.1  # ...but never by a frame-sized step (no zipper)
    per_frame = gain_db.reshape(-1, FRAME)
    inside = np.abs(np.diff(per_frame, axis=1))
    assert float(np.max(inside)) > 0.0  # changes happen within frames, not at their edges


def test_reset_returns_to_unity_gain() -> None:
    level = AutoLevel(2)
    _process(level, _talkers([-30.0, -30.0], 5.0, seed=4))
    assert np.all(level.gain_db > 5.0)
    level.reset(np.array([True, False]))
    assert level.gain_db[0] == 0.0 and level.gain_db[1] > 5.0


def test_peak_and_rms_helpers() -> None:
    sine = tone(1000.0, 1.0, level_dbfs=-6.0)
    frames = np.stack((sine[:8000], np.zeros(8000, np.float32)))
    np.testing.assert_allclose(peak_dbfs(frames), [-6.0, -120.0], atol=0.01)
    np.testing.assert_allclose(rms_dbfs(frames), [-6.0 - 3.01, -120.0], atol=0.05)
    assert peak_dbfs(np.full(10, -0.5)) == pytest.approx(-6.02, abs=0.01)


def test_each_port_has_its_own_target() -> None:
    audio = _talkers([-12.0, -12.0], 20.0, seed=2)
    level = AutoLevel(2, target_dbfs=[-18.0, -24.0])
    out = _process(level, audio)
    half = audio.shape[1] // 2
    after = _active_level_dbfs(audio[:, half:], out[:, half:])
    np.testing.assert_allclose(after, [-18.0, -24.0], atol=3.0)
    assert after[0] - after[1] > 4.0
