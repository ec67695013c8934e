"""Vox: attack and hang per port, all ports in one call."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from gateway.dsp.signals import speech_like
from gateway.dsp.vox import Vox

FRAME = 160


def _frames(levels_dbfs: list[float], rng: np.random.Generator) -> npt.NDArray[np.float32]:
    """One noise frame per entry, at that RMS level (-inf: digital silence)."""
    noise = rng.standard_normal((len(levels_dbfs), FRAME))
    noise /= np.sqrt(np.mean(noise**2, axis=1, keepdims=True))
    return (noise * (10 ** (np.asarray(levels_dbfs)[:, np.newaxis] / 20))).astype(np.float32)


def _run(vox: Vox, per_port: list[list[float]]) -> npt.NDArray[np.bool_]:
    """(frames, ports) open flags for per-port lists of frame levels."""
    rng = np.random.default_rng(0)
    out = []
    for step in zip(*per_port, strict=True):
        out.append(vox.process(_frames(list(step), rng)))
    return np.array(out)


def test_opens_after_attack_and_closes_after_hang() -> None:
    loud, quiet = -20.0, -60.0
    # attack 60 ms = 3 frames, hang 200 ms = 10 frames.
    levels = (
        [quiet] * 5 + [loud] * 2 + [quiet] * 3 + [loud] * 6 + [quiet] * 9 + [loud] + [quiet] * 12
    )
    opened = _run(Vox(1, -40.0, attack_ms=60, hang_ms=200), [levels])[:, 0]
    expected = np.zeros(len(levels), dtype=bool)
    expected[12:16] = True  # 2 loud frames: too short; the 3rd of 6 loud frames opens it
    expected[16:25] = True  # 9 quiet frames: still open (hang is 10)
    expected[25:26] = True  # a loud frame resets the hang
    expected[26:35] = True  # closes on the 10th quiet frame
    assert opened.tolist() == expected.tolist()


def test_thresholds_and_timing_are_per_port_in_one_call() -> None:
    levels = [-35.0] * 10 + [-70.0] * 20
    opened = _run(Vox(3, [-40.0, -30.0, -40.0], attack_ms=20, hang_ms=100), [levels] * 3)
    assert opened[:10, 0].all() and not opened[:, 1].any()
    assert opened[:, 0].tolist() == opened[:, 2].tolist()
    assert opened[10:14, 0].all() and not opened[14:, 0].any()  # hang 5 frames


def test_speech_keeps_it_open_across_word_gaps_and_silence_closes_it() -> None:
    rng = np.random.default_rng(3)
    speech = speech_like(3.0, -12.0, rng)
    audio = np.concatenate((np.zeros(8000, np.float32), speech, np.zeros(8000, np.float32)))
    vox = Vox(1, -45.0, attack_ms=40, hang_ms=400)
    opened = np.array(
        [vox.process(audio[np.newaxis, i : i + FRAME])[0] for i in range(0, audio.size, FRAME)]
    )
    t = np.arange(opened.size) * 0.02
    assert not opened[t < 1.0].any()
    first = t[np.argmax(opened)]
    assert 1.0 <= first <= 1.2
    assert opened[(t > first) & (t < 4.0)].all()  # pauses between syllables are bridged
    assert not opened[t > 4.5].any()


def test_reset() -> None:
    vox = Vox(2, -40.0, attack_ms=20, hang_ms=1000)
    vox.process(np.full((2, FRAME), 0.5, dtype=np.float32))
    vox.reset([1])
    assert vox.process(np.zeros((2, FRAME), dtype=np.float32)).tolist() == [True, False]


def test_attack_and_hang_are_per_port() -> None:
    vox = Vox(2, -30.0, attack_ms=[20, 100], hang_ms=[40, 200])
    loud = np.full((2, 160), 0.5, dtype=np.float32)
    quiet = np.zeros((2, 160), dtype=np.float32)
    opened = [vox.process(loud).tolist() for _ in range(5)]
    assert [o[0] for o in opened] == [True] * 5
    assert [o[1] for o in opened] == [False, False, False, False, True]
    closed = [vox.process(quiet).tolist() for _ in range(10)]
    assert [c[0] for c in closed] == [True, False] + [False] * 8
    assert [c[1] for c in closed] == [True] * 9 + [False]
