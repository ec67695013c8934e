"""What an announcement sounds like: prompts as 8 kHz mono float32 samples, ready for
`Engine.announce`.

An announcement is a sound file (decoded by pydub: WAV directly, any other format through
ffmpeg; see `gateway.dsp.sound_files`), a tone sequence, or a built-in prompt. Built-ins are
short tone prompts in the manner of the courtesy tones hardware gateways (JPS ACU-1000/2000)
send when a cross-connect is made or broken: tonal, under a second, the same every time, so a
user knows the patch changed without a word being said:

- `enable`: three rising tones, 600, 900, 1200 Hz, 120 ms each ("joined");
- `disable`: the same three falling, 1200, 900, 600 Hz ("parted");
- `id`: two short 800 Hz beeps, the periodic reminder that a channel is patched.

Every tone is in the voice band (300-3000 Hz), above every CTCSS tone, so a prompt never opens or
closes a tone squelch; sound files are high-passed at 300 Hz for the same reason.

`AnnouncementPlan.from_config` decodes every file once, when the config is loaded, so a missing or
broken file is found then, not when a dispatcher enables a patch. The config models cannot know
the config file's directory, against which relative `file:` paths are taken, so the caller passes
it (`base_dir`: the directory of the file given to `load_config`). `check_announcements` lists
every problem, one line each, as the config loader finds them (`gateway.config.files`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from gateway.config.files import announcement_problems
from gateway.config.models import (
    MAX_ANNOUNCEMENT_S,
    Announcement,
    BuiltinAnnouncement,
    Config,
)
from gateway.config.yaml_source import format_key_path
from gateway.core.timing import seconds_to_samples
from gateway.dsp.signals import Samples, tone
from gateway.dsp.sound_files import SoundFileError, load_sound_file

EventKind = Literal["enable", "disable", "id"]

DEFAULT_LEVEL_DBFS = -12.0

# (hz, ms) sequences; hz 0 is a pause.
BUILTIN_TONES: dict[BuiltinAnnouncement, tuple[tuple[float, int], ...]] = {
    "enable": ((600.0, 120), (0.0, 30), (900.0, 120), (0.0, 30), (1200.0, 120)),
    "disable": ((1200.0, 120), (0.0, 30), (900.0, 120), (0.0, 30), (600.0, 120)),
    "id": ((800.0, 100), (0.0, 80), (800.0, 100)),
}


# An announcement that cannot be used: one line naming the file (or key) and the reason.
AnnouncementError = SoundFileError


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
            parts.append(np.zeros(seconds_to_samples(seconds), dtype=np.float32))
        else:
            parts.append(tone(hz, seconds, level_dbfs))
    if not parts:
        return np.zeros(0, dtype=np.float32)
    return np.concatenate(parts).astype(np.float32, copy=False)


def builtin(name: BuiltinAnnouncement, level_dbfs: float = DEFAULT_LEVEL_DBFS) -> Samples:
    """A built-in prompt (`enable`, `disable`, `id`) at `level_dbfs`."""
    return tone_sequence(BUILTIN_TONES[name], level_dbfs)


def load_audio_file(path: str | Path, level_dbfs: float = DEFAULT_LEVEL_DBFS) -> Samples:
    """A sound file as an announcement (`gateway.dsp.sound_files.load_sound_file`): mono,
    8 kHz, high-passed at 300 Hz, its peak at `level_dbfs`, faded in and out over 5 ms.

    Raises AnnouncementError, one line naming the file: missing, not audio, empty, silent, or
    longer than MAX_ANNOUNCEMENT_S.
    """
    return load_sound_file(path, level_dbfs, MAX_ANNOUNCEMENT_S)


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


def check_announcements(cfg: Config, base_dir: Path) -> list[str]:
    """`announcement_problems` as lines `key.path: FILE: reason`; empty when every file plays.

    `base_dir` is the config file's directory. The daemon calls this (or builds the plan) at
    start and on reload; `crosspatch check` can print the lines.
    """
    return [
        f"{format_key_path(problem.path)}: {problem.message}"
        for problem in announcement_problems(cfg, base_dir)
    ]
