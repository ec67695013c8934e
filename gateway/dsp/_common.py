"""Types, constants and level helpers shared by the DSP blocks (no state, no I/O)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from gateway.core.timing import DEFAULT_FRAME_MS, frame_samples

# The frame the blocks are built for by default: the engine's default tick.
FRAME_SAMPLES = frame_samples(DEFAULT_FRAME_MS)
FRAME_MS = float(DEFAULT_FRAME_MS)

# Level reported for digital silence (matches gateway.core.engine.SILENCE_DBFS).
SILENCE_DBFS = -120.0

Float32Array = npt.NDArray[np.float32]
Float64Array = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]


def db_to_amplitude(db: npt.ArrayLike) -> Float64Array:
    """10 ** (db / 20), elementwise, as float64."""
    return np.asarray(10.0 ** (np.asarray(db, dtype=np.float64) / 20.0), dtype=np.float64)


def power_to_db(power: npt.ArrayLike) -> Float64Array:
    """10 * log10(power), elementwise, with digital silence (and anything below -120 dB) at
    SILENCE_DBFS instead of -inf."""
    p = np.maximum(np.asarray(power, dtype=np.float64), 10.0 ** (SILENCE_DBFS / 10.0))
    return np.asarray(10.0 * np.log10(p), dtype=np.float64)


def as_port_mask(port_mask: npt.ArrayLike | None, ports: int) -> BoolArray:
    """A (ports,) bool mask from a bool mask, a list of port indices, or None (all ports)."""
    if port_mask is None:
        return np.ones(ports, dtype=np.bool_)
    arr = np.asarray(port_mask)
    if arr.dtype == np.bool_:
        if arr.shape != (ports,):
            raise ValueError(f"port mask has shape {arr.shape}, expected ({ports},)")
        return arr
    mask = np.zeros(ports, dtype=np.bool_)
    mask[arr.astype(np.int64)] = True
    return mask


def as_frames(frames: npt.ArrayLike, ports: int) -> Float32Array:
    """`frames` as a (ports, n) float32 array; a ValueError if it is not one."""
    arr = np.asarray(frames, dtype=np.float32)
    if arr.ndim != 2 or arr.shape[0] != ports:
        raise ValueError(f"frames have shape {arr.shape}, expected ({ports}, n)")
    return arr
