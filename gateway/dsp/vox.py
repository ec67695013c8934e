"""Voice-operated carrier detect: for radios (or lines) without a usable COR/squelch output, the
received audio itself says when someone is talking."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from gateway.core.timing import DEFAULT_VOX_ATTACK_MS, DEFAULT_VOX_HANG_MS
from gateway.dsp._common import (
    FRAME_MS,
    BoolArray,
    Float64Array,
    IntArray,
    as_frames,
    as_port_mask,
    power_to_db,
)


class Vox:
    """Per-port VOX on frame RMS, all ports at once.

    A port opens once its frame RMS (20*log10 of the RMS, full-scale square wave = 0 dBFS; a
    full-scale sine is -3 dBFS) has been at or above its threshold for `attack_ms` in a row, so a
    click or a burst of static shorter than that does not key a patch; it closes once the RMS
    has stayed below for `hang_ms` in a row, so pauses between words (typically 50-300 ms) do
    not chop the call. Both are rounded up to whole frames of `frame_ms`; attack 0 (or one
    frame) opens on the first loud frame. Feed it high-passed audio (the caller's job), or the
    CTCSS tone and hum count as voice.

    `threshold_dbfs` is one value per port (or one for all).
    """

    def __init__(
        self,
        ports: int,
        threshold_dbfs: npt.ArrayLike,
        attack_ms: npt.ArrayLike = float(DEFAULT_VOX_ATTACK_MS),
        hang_ms: npt.ArrayLike = float(DEFAULT_VOX_HANG_MS),
        frame_ms: float = FRAME_MS,
    ) -> None:
        if ports <= 0 or frame_ms <= 0:
            raise ValueError("ports and frame_ms must be positive")
        self.ports = ports
        self.threshold_dbfs: Float64Array = np.broadcast_to(
            np.asarray(threshold_dbfs, dtype=np.float64), (ports,)
        ).copy()
        # Per port (a scalar applies to all): whole frames, at least one.
        self.attack_frames: IntArray = self._frames(attack_ms, frame_ms)
        self.hang_frames: IntArray = self._frames(hang_ms, frame_ms)
        self.open: BoolArray = np.zeros(ports, dtype=np.bool_)
        self._above: IntArray = np.zeros(ports, dtype=np.int64)
        self._below: IntArray = np.zeros(ports, dtype=np.int64)

    def _frames(self, ms: npt.ArrayLike, frame_ms: float) -> IntArray:
        per_port = np.broadcast_to(np.asarray(ms, dtype=np.float64), (self.ports,))
        frames: IntArray = np.maximum(1, np.ceil(per_port / frame_ms - 1e-9)).astype(np.int64)
        return frames

    def process(self, frames: npt.ArrayLike) -> BoolArray:
        """One frame per port ((ports, n)); returns per port whether VOX is open after it."""
        x = as_frames(frames, self.ports).astype(np.float64)
        level = power_to_db(np.einsum("pn,pn->p", x, x) / max(x.shape[1], 1))
        loud = level >= self.threshold_dbfs
        self._above = (self._above + 1) * loud
        self._below = (self._below + 1) * ~loud
        # An open port closes after `hang_frames` quiet frames, a closed one opens after
        # `attack_frames` loud ones.
        self.open = np.where(
            self.open, self._below < self.hang_frames, self._above >= self.attack_frames
        )
        return self.open.copy()

    def reset(self, port_mask: npt.ArrayLike | None = None) -> None:
        """Closes the masked ports (all by default) and forgets their counts."""
        mask = as_port_mask(port_mask, self.ports)
        self.open[mask] = False
        self._above[mask] = 0
        self._below[mask] = 0
