"""Announcements: the prompts and tones played on patch changes and station ids."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, WithJsonSchema, field_validator, model_validator

from gateway.config.sections.common import (
    ANNOUNCEMENT_TONE_HZ,
    ANNOUNCEMENT_TONE_MS,
    MAX_ANNOUNCEMENT_S,
    ConfigPath,
    RuleProblems,
    StrictModel,
    rule_error,
)

# --- announcements -----------------------------------------------------------------------------


def _check_tone(value: Any) -> Any:
    # Checked before pydantic so the message speaks of tones, at the tone's own index.
    if not (isinstance(value, list) and len(value) == 2):
        raise rule_error(
            f"a tone is [hz, ms], like [1000, 100], with hz 0 for a pause (got {value!r})"
        )
    hz, ms = value
    if not all(isinstance(part, (int, float)) and not isinstance(part, bool) for part in value):
        return value  # pydantic reports the type
    low_hz, high_hz = ANNOUNCEMENT_TONE_HZ
    if hz != 0 and not low_hz <= hz <= high_hz:
        raise rule_error(
            f"a tone's hz must be 0 (a pause) or {low_hz:g} to {high_hz:g} Hz, the voice band "
            f"above every CTCSS tone (got {hz:g})"
        )
    shortest, longest = ANNOUNCEMENT_TONE_MS
    if not shortest <= ms <= longest:
        raise rule_error(f"a tone's ms must be {shortest} to {longest} (got {ms:g})")
    return value


Tone = Annotated[
    tuple[float, int],
    BeforeValidator(_check_tone),
    WithJsonSchema(
        {
            "type": "array",
            "prefixItems": [{"type": "number"}, {"type": "integer"}],
            "minItems": 2,
            "maxItems": 2,
        }
    ),
]

BuiltinAnnouncement = Literal["enable", "disable", "id"]


class Announcement(StrictModel):
    """One prompt: a sound file, a tone sequence or a built-in prompt; exactly one of them.

    `file` is any format ffmpeg reads (WAV needs no ffmpeg); a relative path is relative to the
    config file's directory (`file_path`). `tones` is `[[hz, ms], ...]`, hz 0 for a pause.
    `level_dbfs` is the prompt's peak level; None takes the announcements section's.
    """

    file: ConfigPath | None = None
    tones: list[Tone] | None = Field(default=None, min_length=1)
    builtin: BuiltinAnnouncement | None = None
    level_dbfs: float | None = Field(default=None, le=0)

    @field_validator("file", mode="before")
    @classmethod
    def _check_file(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            raise rule_error("file must name a sound file, like sounds/patch-on.wav")
        return value

    @model_validator(mode="after")
    def _check_source(self) -> Announcement:
        problems = RuleProblems()
        given = [key for key in ("file", "tones", "builtin") if getattr(self, key) is not None]
        if not given:
            problems.add(
                (),
                "an announcement needs one of file (a sound file), tones ([[hz, ms], ...]) "
                "or builtin (enable, disable or id)",
            )
        for extra in given[1:]:
            problems.add(
                (extra,),
                f"give one of file, tones and builtin, not both {given[0]} and {extra}",
                getattr(self, extra),
            )
        if self.tones is not None:
            seconds = sum(ms for _, ms in self.tones) / 1000
            if all(hz == 0 for hz, _ in self.tones):
                problems.add(("tones",), "tones has only pauses (hz 0): add a tone")
            elif seconds > MAX_ANNOUNCEMENT_S:
                problems.add(
                    ("tones",),
                    f"tones last {seconds:g} s; an announcement lasts at most "
                    f"{MAX_ANNOUNCEMENT_S:g} s",
                )
        problems.raise_if_any(type(self).__name__)
        return self

    def file_path(self, base_dir: Path) -> Path | None:
        """The sound file, a relative `file` taken relative to `base_dir` (the config file's
        directory: models do not know where their file was); None if this is no file."""
        if self.file is None:
            return None
        return base_dir / self.file  # an absolute `file` stays as it is


def _builtin(name: BuiltinAnnouncement) -> Announcement:
    return Announcement(builtin=name)


class PatchId(StrictModel):
    """The periodic identification of every enabled patch, on its members' channels."""

    every_s: float = Field(default=600.0, ge=60, le=3600)
    announcement: Announcement = Field(default_factory=lambda: _builtin("id"))


class Announcements(StrictModel):
    """Prompts on a patch's channels when it is enabled or disabled, and its periodic ID.

    `on_enable` and `on_disable` default to the built-in prompts; null means silence. Without
    this section there are no announcements; `enabled: false` keeps it but silences it, and a
    patch's `announce: false` silences that patch.
    """

    enabled: bool = True
    level_dbfs: float = Field(default=-12.0, le=0)
    on_enable: Announcement | None = Field(default_factory=lambda: _builtin("enable"))
    on_disable: Announcement | None = Field(default_factory=lambda: _builtin("disable"))
    patch_id: PatchId | None = None

    def level_of(self, announcement: Announcement) -> float:
        """The peak level of `announcement`: its own level_dbfs, else the section's."""
        if announcement.level_dbfs is not None:
            return announcement.level_dbfs
        return self.level_dbfs

    def sources(self) -> list[tuple[tuple[str, ...], Announcement]]:
        """Every configured announcement with its key path below `announcements`."""
        found: list[tuple[tuple[str, ...], Announcement]] = []
        if self.on_enable is not None:
            found.append((("on_enable",), self.on_enable))
        if self.on_disable is not None:
            found.append((("on_disable",), self.on_disable))
        if self.patch_id is not None:
            found.append((("patch_id", "announcement"), self.patch_id.announcement))
        return found
