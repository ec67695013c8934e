"""Automatic level control, so a quiet radio and a loud one arrive in a patch at the same level,
and the level meters' helpers."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from gateway.dsp._common import (
    FRAME_MS,
    SILENCE_DBFS,
    BoolArray,
    Float32Array,
    Float64Array,
    IntArray,
    as_frames,
    as_port_mask,
    power_to_db,
)


def peak_dbfs(frames: npt.ArrayLike) -> Float64Array:
    """Per row (port) of (ports, n) frames, or for one (n,) block: 20*log10(max |x|), with
    silence at -120 dBFS."""
    x = np.asarray(frames, dtype=np.float64)
    peak = np.max(np.abs(x), axis=-1, initial=0.0)
    return power_to_db(peak * peak)


def rms_dbfs(frames: npt.ArrayLike) -> Float64Array:
    """Per row (port) of (ports, n) frames, or for one (n,) block: 20*log10(RMS) (a full-scale
    sine is -3 dBFS), with silence at -120 dBFS."""
    x = np.asarray(frames, dtype=np.float64)
    if x.shape[-1] == 0:
        return np.full(x.shape[:-1], SILENCE_DBFS)
    return power_to_db(np.mean(x * x, axis=-1))


class AutoLevel:
    """Per-port automatic gain towards a common speech level, all ports at once.

    Speech level: a running mean of frame power over ACTIVE frames only, with a time constant of
    `window_ms` (2 s: several words, so the level of a talker, not of a syllable). A frame is
    active when its RMS is above `gate_dbfs` (-50 dBFS) and no more than `relative_gate_db`
    (20 dB) below the current estimate: pauses, breaths, hiss between words and silence leave
    the estimate (and so the gain) frozen instead of pumping the noise up. The first active
    frames of a port are averaged plainly (the running mean starts as a cumulative mean), so
    the first words already set the level. Being a mean of power, the estimate rises within a
    frame or two when a much louder talker appears and falls slowly.

    Gain: in dB, target_dbfs - speech level, clamped to [min_gain_db, max_gain_db] (no more than
    +20 dB by default: a radio 30 dB too quiet is a misadjusted radio, and more gain mostly
    raises its noise). The applied gain follows it with a time constant of `attack_ms` (50 ms)
    when it must fall (loud talker: quickly) and `release_ms` (500 ms) when it may rise. Within a
    frame the gain moves linearly sample by sample from the previous frame's value to the new
    one, so changes are ramps, not 20 ms steps (no zipper noise). Peaks above full scale are the
    engine limiter's business, not this block's.

    Until a port has had an active frame its gain is 0 dB.
    """

    def __init__(
        self,
        ports: int,
        target_dbfs: npt.ArrayLike = -18.0,
        max_gain_db: float = 20.0,
        min_gain_db: float = -20.0,
        attack_ms: float = 50.0,
        release_ms: float = 500.0,
        *,
        window_ms: float = 2000.0,
        gate_dbfs: float = -50.0,
        relative_gate_db: float = 20.0,
        frame_ms: float = FRAME_MS,
    ) -> None:
        if ports <= 0 or min(attack_ms, release_ms, window_ms, frame_ms) <= 0:
            raise ValueError("ports and the times must be positive")
        if min_gain_db > max_gain_db:
            raise ValueError("min_gain_db is above max_gain_db")
        self.ports = ports
        # Per port (a scalar applies to all).
        self.target_dbfs = np.broadcast_to(
            np.asarray(target_dbfs, dtype=np.float64), (ports,)
        ).copy()
        self.max_gain_db = max_gain_db
        self.min_gain_db = min_gain_db
        self.gate_dbfs = gate_dbfs
        self.relative_gate_db = relative_gate_db
        self._attack = 1.0 - math.exp(-frame_ms / attack_ms)
        self._release = 1.0 - math.exp(-frame_ms / release_ms)
        self._window = 1.0 - math.exp(-frame_ms / window_ms)
        self._level: Float64Array = np.zeros(ports)  # speech power estimate
        self._active_frames: IntArray = np.zeros(ports, dtype=np.int64)
        self.gain_db: Float64Array = np.zeros(ports)
        self._ramps: dict[int, Float64Array] = {}  # per frame length: 1/n, 2/n, ... 1

    @property
    def speech_level_dbfs(self) -> Float64Array:
        """Per port, the current speech level estimate (-120 dBFS before any speech)."""
        return power_to_db(self._level)

    def process(self, frames: npt.ArrayLike) -> Float32Array:
        """Applies the gain to one frame per port ((ports, n)); returns (ports, n) float32."""
        x = as_frames(frames, self.ports)
        n = x.shape[1]
        if n == 0:
            return x.copy()
        power = np.einsum("pn,pn->p", x, x, dtype=np.float64) / n
        level_db = power_to_db(power)
        active = (level_db > self.gate_dbfs) & (
            (self._active_frames == 0) | (level_db > self.speech_level_dbfs - self.relative_gate_db)
        )
        self._active_frames += active
        rate = np.maximum(self._window, 1.0 / np.maximum(self._active_frames, 1))
        self._level = np.where(active, self._level + rate * (power - self._level), self._level)
        started: BoolArray = self._active_frames > 0
        # (np.minimum(np.maximum()) is np.clip, without its Python-level argument handling.)
        wanted = np.where(
            started,
            np.minimum(
                np.maximum(self.target_dbfs - self.speech_level_dbfs, self.min_gain_db),
                self.max_gain_db,
            ),
            0.0,
        )
        step = np.where(wanted < self.gain_db, self._attack, self._release)
        previous = 10.0 ** (self.gain_db / 20.0)
        self.gain_db = self.gain_db + step * (wanted - self.gain_db)
        current = 10.0 ** (self.gain_db / 20.0)
        ramp = self._ramps.get(n)
        if ramp is None:
            ramp = self._ramps[n] = np.arange(1, n + 1, dtype=np.float64) / n
        gains = previous[:, np.newaxis] + (current - previous)[:, np.newaxis] * ramp
        return np.asarray(x * gains, dtype=np.float32)

    def reset(self, port_mask: npt.ArrayLike | None = None) -> None:
        """Forgets the masked ports' speech level (all by default): gain back to 0 dB."""
        mask = as_port_mask(port_mask, self.ports)
        self._level[mask] = 0.0
        self._active_frames[mask] = 0
        self.gain_db[mask] = 0.0
