"""Recording: where and how calls are written to disk."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from gateway.config.sections.common import ConfigPath, StrictModel


class RecordingSettings(StrictModel):
    dir: ConfigPath
    format: Literal["wav", "mp3", "opus"] = "wav"
    keep_days: int | None = Field(default=None, gt=0)
