"""What an announcement sounds like: prompts as 8 kHz mono float32 samples, ready for
`Engine.announce`.

An announcement is a sound file (decoded by pydub: WAV directly, any other format through
ffmpeg), a tone sequence, or a built-in prompt. Built-ins are short tone prompts in the manner of
the courtesy tones hardware gateways (JPS ACU-1000/2000) send when a cross-connect is made or
broken: tonal, under a second, the same every time, so a user knows the patch changed without a
word being said:

- `enable`: three rising tones, 600, 900, 1200 Hz, 120 ms each ("joined");
- `disable`: the same three falling, 1200, 900, 600 Hz ("parted");
- `id`: two short 800 Hz beeps, the periodic reminder that a channel is patched.

Every tone is in the voice band (300-3000 Hz), above every CTCSS tone, so a prompt never opens or
closes a tone squelch; sound files are high-passed at 300 Hz for the same reason.

`AnnouncementPlan.from_config` decodes every file once, when the config is loaded, so a missing or
broken file is found then, not when a dispatcher enables a patch. The config models cannot know
the config file's directory, against which relative `file:` paths are taken, so the caller passes
it (`base_dir`: the directory of the file given to `load_config`). `check_announcements` lists
every problem, one line each, for `crosspatch check` and the daemon's start.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from scipy import signal

from gateway.config.models import (
    MAX_ANNOUNCEMENT_S,
    SAMPLE_RATE_HZ,
    Announcement,
    Announcements,
    BuiltinAnnouncement,
    Config,
)
from gateway.config.references import ReferenceProblem
from gateway.config.yaml_source import format_key_path
from gateway.dsp.signals import Samples, dbfs_to_amplitude, tone

EventKind = Literal["enable", "disable", "id"]

DEFAULT_LEVEL_DBFS = -12.0
RAMP_S = 0.005  # raised-cosine edges of every tone (as gateway.dsp.signals.tone)
HIGHPASS_HZ = 300.0

# (hz, ms) sequences; hz 0 is a pause.
BUILTIN_TONES: dict[BuiltinAnnouncement, tuple[tuple[float, int], ...]] = {
    "enable": ((600.0, 120), (0.0, 30), (900.0, 120), (0.0, 30), (1200.0, 120)),
    "disable": ((1200.0, 120), (0.0, 30), (900.0, 120), (0.0, 30), (600.0, 120)),
    "id": ((800.0, 100), (0.0, 80), (800.0, 100)),
}

_HIGHPASS = signal.butter(4, HIGHPASS_HZ, btype="highpass", fs=SAMPLE_RATE_HZ, output="sos")


class AnnouncementError(Exception):
    """An announcement that cannot be used: one line naming the file (or key) and the reason."""


# --- sounds ------------------------------------------------------------------------------------


def _frozen(samples: Samples) -> Samples:
    # Plans hand the same array to every port and every event: nobody may change it.
    samples.setflags(write=False)
    return samples


def tone_sequence(
    tones: Sequence[tuple[float, int]], level_dbfs: float = DEFAULT_LEVEL_DBFS
) -> Samples:
    """`[(hz, ms), ...]` as one prompt: each tone a sine whose peak is `level_dbfs`, with 5 ms
    raised-cosine ramps at both ends (no clicks); hz 0 is a pause of `ms`."""
    parts: list[Samples] = []
    for hz, ms in tones:
        seconds = ms / 1000
        if hz == 0:
            parts.append(np.zeros(round(seconds * SAMPLE_RATE_HZ), dtype=np.float32))
        else:
            parts.append(tone(hz, seconds, level_dbfs))
    if not parts:
        return np.zeros(0, dtype=np.float32)
    return np.concatenate(parts).astype(np.float32, copy=False)


def builtin(name: BuiltinAnnouncement, level_dbfs: float = DEFAULT_LEVEL_DBFS) -> Samples:
    """A built-in prompt (`enable`, `disable`, `id`) at `level_dbfs`."""
    return tone_sequence(BUILTIN_TONES[name], level_dbfs)


def _audio_segment_class() -> Any:
    """pydub's AudioSegment, imported when first needed (pydub has no type hints)."""
    with warnings.catch_warnings():
        # pydub imports audioop, deprecated in 3.11-3.12 (audioop-lts stands in from 3.13).
        warnings.simplefilter("ignore", DeprecationWarning)
        from pydub import AudioSegment  # type: ignore[import-untyped, unused-ignore]
    return AudioSegment


def _decode(path: Path) -> tuple[npt.NDArray[np.float64], int]:
    """The file's samples as float64 (frames x channels, -1..1) and its rate; raises
    AnnouncementError. Decodes at most a little more than the longest announcement."""
    with warnings.catch_warnings():
        # pydub warns when it cannot find ffmpeg or ffprobe; WAV files need neither, and for
        # any other file the failure is reported below.
        warnings.simplefilter("ignore", RuntimeWarning)
        audio_segment = _audio_segment_class()
        try:
            segment = audio_segment.from_file(str(path), duration=MAX_ANNOUNCEMENT_S + 1)
        except PermissionError:
            raise AnnouncementError(f"{path}: cannot read it: permission denied") from None
        except FileNotFoundError as exc:
            if exc.filename in (None, str(path)):
                raise AnnouncementError(f"{path}: no such file") from None
            raise AnnouncementError(  # ffmpeg or ffprobe itself is missing
                f"{path}: cannot decode it without ffmpeg ({exc.filename} is not installed); "
                "only WAV files play without it"
            ) from None
        except Exception as exc:  # pydub raises whatever its decoders raise, for any bad input
            reason = _decoder_reason(exc, path)
            raise AnnouncementError(f"{path}: not a sound file ({reason})") from None
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
    edge = min(faded.size // 2, round(RAMP_S * SAMPLE_RATE_HZ))
    if edge:
        ramp = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, edge))
        faded[:edge] *= ramp
        faded[faded.size - edge :] *= ramp[::-1]
    return faded


def load_audio_file(path: str | Path, level_dbfs: float = DEFAULT_LEVEL_DBFS) -> Samples:
    """A sound file as an announcement: mono (channels averaged), 8 kHz (anti-aliased
    resampling), high-passed at 300 Hz (nothing in the CTCSS band), its peak at `level_dbfs`,
    faded in and out over 5 ms.

    Raises AnnouncementError, one line naming the file: missing, not audio, empty, silent, or
    longer than MAX_ANNOUNCEMENT_S.
    """
    path = Path(path)
    if path.is_dir():
        raise AnnouncementError(f"{path}: is a directory, not a sound file")
    if not path.exists():
        raise AnnouncementError(f"{path}: no such file")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise AnnouncementError(f"{path}: cannot read it: {exc.strerror or exc}") from None
    if size == 0:
        raise AnnouncementError(f"{path}: the file is empty")
    frames, rate = _decode(path)
    seconds = frames.shape[0] / rate if rate else 0.0
    if frames.shape[0] == 0:
        raise AnnouncementError(f"{path}: the file holds no audio (0 s)")
    if seconds > MAX_ANNOUNCEMENT_S:
        raise AnnouncementError(
            f"{path}: longer than {MAX_ANNOUNCEMENT_S:g} s; an announcement must be short "
            "(trim the recording)"
        )
    mono = frames.mean(axis=1)
    if rate != SAMPLE_RATE_HZ:
        common = math.gcd(rate, SAMPLE_RATE_HZ)
        mono = signal.resample_poly(mono, SAMPLE_RATE_HZ // common, rate // common)
    # A recording cut mid-sound would click on the air, and its edges would ring in the filter:
    # fade its first and last 5 ms before filtering, and again after (the filter's tails).
    mono = _fade(signal.sosfiltfilt(_HIGHPASS, _fade(mono), padlen=min(15, mono.size - 1)))
    peak = float(np.max(np.abs(mono))) if mono.size else 0.0
    if peak < 1e-4:
        raise AnnouncementError(f"{path}: the file is silent (no sound above 300 Hz)")
    mono = mono * (dbfs_to_amplitude(level_dbfs) / peak)
    samples: Samples = np.clip(mono, -1.0, 1.0).astype(np.float32)
    return samples


def render(
    announcement: Announcement, base_dir: Path, level_dbfs: float = DEFAULT_LEVEL_DBFS
) -> Samples:
    """The samples of one configured announcement (files relative to `base_dir`)."""
    level = announcement.level_dbfs if announcement.level_dbfs is not None else level_dbfs
    path = announcement.file_path(base_dir)
    if path is not None:
        return load_audio_file(path, level)
    if announcement.tones is not None:
        return tone_sequence(announcement.tones, level)
    assert announcement.builtin is not None  # the model holds exactly one source
    return builtin(announcement.builtin, level)


# --- the plan ----------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)  # == on numpy arrays compares element by element
class AnnouncementPlan:
    """Every prompt of a site, rendered once; `for_event` says what to play (or nothing).

    Arrays are read-only and shared: pass them to `Engine.announce` as they are.
    """

    enabled: bool = False
    on_enable: Samples | None = None
    on_disable: Samples | None = None
    patch_id: Samples | None = None
    id_every_s: float | None = None  # None: no periodic ID
    patches: frozenset[str] = frozenset()  # every patch of the config
    silent_patches: frozenset[str] = frozenset()  # `announce: false`

    @classmethod
    def from_config(cls, cfg: Config, base_dir: Path) -> AnnouncementPlan:
        """Render every announcement of `cfg`; relative files are taken from `base_dir`.

        Raises AnnouncementError on the first file that cannot be used, its key path first.
        """
        section = cfg.announcements
        patches = frozenset(cfg.patches)
        silent = frozenset(name for name, patch in cfg.patches.items() if not patch.announce)
        if section is None or not section.enabled:
            return cls(patches=patches, silent_patches=silent)
        rendered: dict[tuple[str, ...], Samples] = {}
        for path, announcement in section.sources():
            try:
                rendered[path] = _frozen(render(announcement, base_dir, section.level_dbfs))
            except AnnouncementError as exc:
                where = format_key_path(("announcements", *path, "file"))
                raise AnnouncementError(f"{where}: {exc}") from None
        patch_id = section.patch_id
        return cls(
            enabled=True,
            on_enable=rendered.get(("on_enable",)),
            on_disable=rendered.get(("on_disable",)),
            patch_id=rendered.get(("patch_id", "announcement")),
            id_every_s=patch_id.every_s if patch_id is not None else None,
            patches=patches,
            silent_patches=silent,
        )

    def for_event(self, kind: EventKind, patch: str) -> Samples | None:
        """What to play on `patch`'s channels when it is enabled, disabled or identified:
        None when announcements are off, the patch has `announce: false`, or the event has no
        prompt. Raises KeyError for a patch the config does not define."""
        if patch not in self.patches:
            raise KeyError(f"patch {patch!r} is not defined")
        if not self.enabled or patch in self.silent_patches:
            return None
        if kind == "enable":
            return self.on_enable
        if kind == "disable":
            return self.on_disable
        return self.patch_id


def announcement_problems(cfg: Config, base_dir: Path) -> list[ReferenceProblem]:
    """Every sound file of `cfg` that cannot be used, at its `file` key (for located errors)."""
    section: Announcements | None = cfg.announcements
    if section is None or not section.enabled:
        return []
    problems: list[ReferenceProblem] = []
    for path, announcement in section.sources():
        file_path = announcement.file_path(base_dir)
        if file_path is None:
            continue
        try:
            load_audio_file(file_path, section.level_of(announcement))
        except AnnouncementError as exc:
            problems.append(ReferenceProblem(("announcements", *path, "file"), str(exc)))
    return problems


def check_announcements(cfg: Config, base_dir: Path) -> list[str]:
    """`announcement_problems` as lines `key.path: FILE: reason`; empty when every file plays.

    `base_dir` is the config file's directory. The daemon calls this (or builds the plan) at
    start and on reload; `crosspatch check` can print the lines.
    """
    return [
        f"{format_key_path(problem.path)}: {problem.message}"
        for problem in announcement_problems(cfg, base_dir)
    ]
