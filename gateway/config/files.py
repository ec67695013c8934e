"""The files a config names, checked where the config file's place is known: announcement
sound files (named relative to it) and SRTP key files. A missing prompt or key is then a
located config error, not a refusal at start or a surprise at the first patch.

The checks are the readers the daemon uses (`gateway.dsp.sound_files`,
`gateway.links.key_file`), imported only when a config names such a file: they pull in scipy
and pydub, which a thin client loading a config must not pay for.
"""

from __future__ import annotations

from pathlib import Path

from gateway.config.models import MAX_ANNOUNCEMENT_S, Announcements, Config
from gateway.config.references import ReferenceProblem


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
        from gateway.dsp.sound_files import SoundFileError, load_sound_file

        try:
            load_sound_file(file_path, section.level_of(announcement), MAX_ANNOUNCEMENT_S)
        except SoundFileError as exc:
            problems.append(ReferenceProblem(("announcements", *path, "file"), str(exc)))
    return problems


def key_file_problems(cfg: Config) -> list[ReferenceProblem]:
    """Every SRTP key file of `cfg` that cannot be used, at its `srtp_key_file` key."""
    problems: list[ReferenceProblem] = []
    for name, link in cfg.links.items():
        if link.srtp_key_file is None:
            continue
        from gateway.links.key_file import KeyFileError, read_key_file

        try:
            read_key_file(link.srtp_key_file)  # as `run` reads it: the path as written
        except KeyFileError as exc:
            problems.append(ReferenceProblem(("links", name, "srtp_key_file"), str(exc)))
    return problems
