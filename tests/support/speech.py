"""Speech-like test audio: talk spurts between pauses over receiver hiss."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from gateway.dsp.signals import speech_like

RATE = 8000


def talk_with_pauses(seconds: float, rng: np.random.Generator) -> npt.NDArray[np.float32]:
    """Talk spurts of 2-8 s (speech_like: syllables with short gaps) between pauses of 0.5-4 s,
    over a receiver hiss at -70 dBFS."""
    parts = []
    total = 0
    while total < seconds * RATE:
        spurt = speech_like(float(rng.uniform(2, 8)), float(rng.uniform(-20, -3)), rng)
        pause = np.zeros(int(rng.uniform(0.5, 4) * RATE), dtype=np.float32)
        parts += [spurt, pause]
        total += spurt.size + pause.size
    audio = np.concatenate(parts)
    return audio + (rng.standard_normal(audio.size) * 10 ** (-70 / 20)).astype(np.float32)
