"""Test and traffic signals at the engine's rate: tones, speech-like bursts, WAV files, levels."""

from __future__ import annotations

import math
import warnings
import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt
from scipy import signal
from scipy.io import wavfile

from gateway.core.errors import UserError
from gateway.core.timing import SAMPLE_RATE

Samples = npt.NDArray[np.float32]


class AudioFileError(UserError):
    """A WAV file that cannot be used; the message says which and why."""


def dbfs_to_amplitude(level_dbfs: float) -> float:
    return float(10 ** (level_dbfs / 20))


def peak_dbfs(samples: Samples) -> float:
    peak = float(np.max(np.abs(samples))) if samples.size else 0.0
    return 20 * math.log10(peak) if peak > 1e-6 else -120.0


def tone(hz: float, seconds: float, level_dbfs: float = -12.0) -> Samples:
    """A sine at `hz` whose peak is `level_dbfs`, with 5 ms raised-cosine edges (no clicks)."""
    n = round(seconds * SAMPLE_RATE)
    t = np.arange(n, dtype=np.float64) / SAMPLE_RATE
    wave_ = np.sin(2 * np.pi * hz * t) * dbfs_to_amplitude(level_dbfs)
    edge = min(n // 2, round(0.005 * SAMPLE_RATE))
    if edge:
        ramp = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, edge))
        wave_[:edge] *= ramp
        wave_[n - edge :] *= ramp[::-1]
    return wave_.astype(np.float32)


_VOICE_BAND = signal.butter(4, [300, 3000], btype="bandpass", fs=SAMPLE_RATE, output="sos")


def speech_like(seconds: float, level_dbfs: float, rng: np.random.Generator) -> Samples:
    """A burst that looks like speech to a gateway: voiced syllables at a wandering pitch with
    formant colouring, short pauses between syllables, in the 300-3000 Hz voice band.

    Generated, not recorded, so the demo and simulations need no audio files and stay exactly
    repeatable from a seed.
    """
    n = round(seconds * SAMPLE_RATE)
    envelope = np.zeros(n)
    pos = 0
    while pos < n:
        length = int(rng.integers(round(0.12 * SAMPLE_RATE), round(0.32 * SAMPLE_RATE)))
        seg = np.sin(np.linspace(0, np.pi, length)) ** 0.6
        seg *= rng.uniform(0.5, 1.0)
        envelope[pos : pos + length] = seg[: n - pos]
        pos += length + int(rng.integers(round(0.03 * SAMPLE_RATE), round(0.12 * SAMPLE_RATE)))
    # Glottal pulse train: pitch drifts between 95 and 190 Hz like a talker's intonation.
    pitch = 140 + 45 * np.sin(2 * np.pi * rng.uniform(0.3, 0.9) * np.arange(n) / SAMPLE_RATE)
    phase = np.cumsum(pitch / SAMPLE_RATE)
    pulses = (np.diff(np.floor(phase), prepend=0.0) > 0).astype(np.float64)
    voiced = np.zeros(n)
    for formant_hz, width_hz in ((rng.uniform(500, 800), 90.0), (rng.uniform(1100, 1800), 120.0)):
        r = math.exp(-math.pi * width_hz / SAMPLE_RATE)
        theta = 2 * math.pi * formant_hz / SAMPLE_RATE
        voiced += signal.lfilter([1 - r], [1, -2 * r * math.cos(theta), r * r], pulses)
    noise = rng.standard_normal(n) * 0.15
    burst = signal.sosfilt(_VOICE_BAND, (voiced / (np.max(np.abs(voiced)) + 1e-9) + noise))
    burst *= envelope
    peak = np.max(np.abs(burst)) if n else 0.0
    if peak > 0:
        burst *= dbfs_to_amplitude(level_dbfs) / peak
    return np.asarray(burst, dtype=np.float32)


def read_wav(path: Path, level_dbfs: float | None = None) -> Samples:
    """A WAV file as mono float32 at the engine's rate (mixed down and resampled as needed);
    scaled so its peak is `level_dbfs` when given."""
    with warnings.catch_warnings():
        # scipy only warns of a truncated file and returns what it found; a dry run must not
        # silently play half a recording, so that is an error here.
        warnings.simplefilter("error", wavfile.WavFileWarning)
        try:
            rate, data = wavfile.read(path)
        except wavfile.WavFileWarning as exc:
            raise AudioFileError(f"{path}: damaged WAV file: {exc}") from None
        except (OSError, ValueError) as exc:
            raise AudioFileError(f"{path}: cannot read WAV file: {exc}") from None
    if data.ndim == 2:
        data = data.mean(axis=1)
    if data.dtype.kind == "i":
        samples = data.astype(np.float64) / float(-np.iinfo(data.dtype).min)
    elif data.dtype.kind == "u":  # 8-bit WAV is unsigned
        samples = (data.astype(np.float64) - 128.0) / 128.0
    else:
        samples = data.astype(np.float64)
    if rate != SAMPLE_RATE:
        common = math.gcd(int(rate), SAMPLE_RATE)
        samples = signal.resample_poly(samples, SAMPLE_RATE // common, int(rate) // common)
    if level_dbfs is not None:
        peak = np.max(np.abs(samples)) if samples.size else 0.0
        if peak > 0:
            samples = samples * (dbfs_to_amplitude(level_dbfs) / peak)
    clipped: Samples = np.clip(samples, -1.0, 1.0).astype(np.float32)
    return clipped


def to_pcm16(samples: Samples) -> npt.NDArray[np.int16]:
    return np.asarray(np.clip(np.round(samples * 32767.0), -32768, 32767), dtype=np.int16)


class WavWriter:
    """Streams 8 kHz mono 16-bit PCM to a WAV file (the stdlib writer patches the header's
    lengths on close, so a long simulation never holds its whole output in memory)."""

    def __init__(self, path: Path) -> None:
        self._file = wave.open(str(path), "wb")  # noqa: SIM115 - closed in close()
        self._file.setnchannels(1)
        self._file.setsampwidth(2)
        self._file.setframerate(SAMPLE_RATE)

    def write(self, samples: Samples) -> None:
        self._file.writeframes(to_pcm16(samples).tobytes())

    def close(self) -> None:
        self._file.close()
