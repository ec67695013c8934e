"""Sound files as prompts: decoded (pydub: WAV directly, any other format through ffmpeg), mono,
8 kHz, high-passed at 300 Hz (nothing in the CTCSS band), at a set peak level, faded in and out.

`load_sound_file` is both the check and the decoding: the config loader runs it on every sound
file a config names (`gateway.config.files`), so a file `check` accepts is one the daemon's
announcements (`gateway.run.announcements`) play. pydub is imported only when a file is decoded.

Why pydub, whose last release is from 2021: it is a thin layer over ffmpeg here (WAV parsed in
Python, anything else through ffprobe and ffmpeg), and ffmpeg does the work either way. Measured
on Python 3.11, best of 5 runs: a 10 s WAV decodes in 0.1 ms through pydub as through the
standard `wave` module; a 10 s MP3 in 117 ms through pydub against 65 ms calling ffmpeg directly
(pydub runs ffprobe first), once per config load; a 60 s call encodes to MP3 in 99 against
105 ms and to Opus in 351 against 350 ms (the recorder's path).
Calling ffmpeg directly would also drop audioop, which pydub imports and Python 3.13 removed
(`audioop-lts` is declared for 3.13 and later, and works there), but it would take on what pydub
does now: probing the format, reading a WAV ffmpeg streams with no length in its header, and
ffmpeg's error text. Not clearly better, so pydub stays, behind this module's `_decode`; without
audioop a file is refused in one line that names the package to install, never a traceback.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import signal

from gateway.core.errors import UserError
from gateway.core.timing import SAMPLE_RATE
from gateway.dsp.signals import Samples, dbfs_to_amplitude

RAMP_S = 0.005  # raised-cosine edges of every tone (as gateway.dsp.signals.tone)
HIGHPASS_HZ = 300.0

_HIGHPASS = signal.butter(4, HIGHPASS_HZ, btype="highpass", fs=SAMPLE_RATE, output="sos")


class SoundFileError(UserError):
    """A sound file that cannot be used: one line naming the file and the reason."""


def _audio_segment_class(path: Path) -> Any:
    """pydub's AudioSegment, imported when first needed (pydub has no type hints); without
    pydub or the audioop it needs, a SoundFileError naming the package to install."""
    try:
        with warnings.catch_warnings():
            # pydub imports audioop, deprecated in 3.11-3.12 (audioop-lts stands in from 3.13).
            warnings.simplefilter("ignore", DeprecationWarning)
            from pydub import AudioSegment  # type: ignore[import-untyped, unused-ignore]
    except ImportError as exc:
        # pydub falls back to `pyaudioop` when `audioop` is missing: name what is really gone.
        missing = "audioop" if exc.name in ("audioop", "pyaudioop") else exc.name or "pydub"
        package = _PACKAGE_OF.get(missing, missing)
        raise SoundFileError(
            f"{path}: cannot decode sound files: Python module '{missing}' is missing "
            f"(install the package {package} into crosspatch's environment)"
        ) from None
    return AudioSegment


# The package that brings a module pydub needs. audioop left the standard library in Python 3.13;
# audioop-lts is its copy, which crosspatch declares for 3.13 and later.
_PACKAGE_OF = {"audioop": "audioop-lts", "pydub": "pydub"}


def _decode(path: Path, max_s: float) -> tuple[npt.NDArray[np.float64], int]:
    """The file's samples as float64 (frames x channels, -1..1) and its rate; raises
    SoundFileError. Decodes at most a little more than `max_s`."""
    with warnings.catch_warnings():
        # pydub warns when it cannot find ffmpeg or ffprobe; WAV files need neither, and for
        # any other file the failure is reported below.
        warnings.simplefilter("ignore", RuntimeWarning)
        audio_segment = _audio_segment_class(path)
        try:
            segment = audio_segment.from_file(str(path), duration=max_s + 1)
        except PermissionError:
            raise SoundFileError(f"{path}: cannot read it: permission denied") from None
        except FileNotFoundError as exc:
            if exc.filename in (None, str(path)):
                raise SoundFileError(f"{path}: no such file") from None
            raise SoundFileError(  # ffmpeg or ffprobe itself is missing
                f"{path}: cannot decode it without ffmpeg ({exc.filename} is not installed); "
                "only WAV files play without it"
            ) from None
        except Exception as exc:  # pydub raises whatever its decoders raise, for any bad input
            reason = _decoder_reason(exc, path)
            raise SoundFileError(f"{path}: not a sound file ({reason})") from None
    channels = int(segment.channels)
    # pydub holds signed integers of sample_width bytes (8-bit WAV already made signed).
    scale = float(2 ** (8 * int(segment.sample_width) - 1))
    raw = np.asarray(segment.get_array_of_samples(), dtype=np.float64)
    return raw.reshape(-1, channels) / scale, int(segment.frame_rate)


# ffmpeg's framing around its reason, which differs between releases: ffmpeg 5 (Debian 12) ends
# with `FILE: Invalid data found...`, ffmpeg 7 (Debian 13) with `Error opening input files:
# Invalid data found...`.
_FFMPEG_PREFIXES = (
    "error opening input files:",
    "error opening input file:",
    "error opening input:",
)


def _decoder_reason(exc: Exception, path: Path) -> str:
    """ffmpeg's own last word (`invalid data found...`), else the exception's."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    if len(lines) == 1:
        return lines[0]
    last = lines[-1].removeprefix(f"{path}:").strip()
    for prefix in _FFMPEG_PREFIXES:
        if last.lower().startswith(prefix):
            last = last[len(prefix) :].strip()
            break
    return f"ffmpeg: {last[:1].lower()}{last[1:]}"


def _fade(samples: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """`samples` with 5 ms raised-cosine fades at both ends (as every tone has)."""
    faded = np.array(samples, dtype=np.float64)
    edge = min(faded.size // 2, round(RAMP_S * SAMPLE_RATE))
    if edge:
        ramp = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, edge))
        faded[:edge] *= ramp
        faded[faded.size - edge :] *= ramp[::-1]
    return faded


def load_sound_file(path: str | Path, level_dbfs: float, max_s: float) -> Samples:
    """A sound file as a prompt: mono (channels averaged), 8 kHz (anti-aliased resampling),
    high-passed at 300 Hz, its peak at `level_dbfs`, faded in and out over 5 ms.

    Raises SoundFileError, one line naming the file: missing, not audio, empty, silent, or
    longer than `max_s`.
    """
    path = Path(path)
    if path.is_dir():
        raise SoundFileError(f"{path}: is a directory, not a sound file")
    if not path.exists():
        raise SoundFileError(f"{path}: no such file")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise SoundFileError(f"{path}: cannot read it: {exc.strerror or exc}") from None
    if size == 0:
        raise SoundFileError(f"{path}: the file is empty")
    frames, rate = _decode(path, max_s)
    seconds = frames.shape[0] / rate if rate else 0.0
    if frames.shape[0] == 0:
        raise SoundFileError(f"{path}: the file holds no audio (0 s)")
    if seconds > max_s:
        raise SoundFileError(
            f"{path}: longer than {max_s:g} s; an announcement must be short (trim the recording)"
        )
    mono = frames.mean(axis=1)
    if rate != SAMPLE_RATE:
        common = math.gcd(rate, SAMPLE_RATE)
        mono = signal.resample_poly(mono, SAMPLE_RATE // common, rate // common)
    # A recording cut mid-sound would click on the air, and its edges would ring in the filter:
    # fade its first and last 5 ms before filtering, and again after (the filter's tails).
    mono = _fade(signal.sosfiltfilt(_HIGHPASS, _fade(mono), padlen=min(15, mono.size - 1)))
    peak = float(np.max(np.abs(mono))) if mono.size else 0.0
    if peak < 1e-4:
        raise SoundFileError(f"{path}: the file is silent (no sound above 300 Hz)")
    mono = mono * (dbfs_to_amplitude(level_dbfs) / peak)
    samples: Samples = np.clip(mono, -1.0, 1.0).astype(np.float32)
    return samples
