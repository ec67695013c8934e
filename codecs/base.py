"""What every codec shares: the error, the encoder/decoder shapes and loss concealment by fading."""

from __future__ import annotations

from typing import Protocol

import numpy as np
import numpy.typing as npt

SAMPLE_RATE = 8000
"""The engine's rate; every codec here takes and gives 8 kHz mono int16."""

FRAME_SAMPLES = 160
"""20 ms at 8 kHz: the RTP default packetisation (RFC 3551) and the engine's frame."""

Pcm = npt.NDArray[np.int16]


class CodecError(ValueError):
    """A codec that cannot be used or a payload or frame it cannot take; one line saying which."""


class Encoder(Protocol):
    """Stateful: one per outgoing stream, fed its frames in order."""

    def encode(self, pcm: Pcm) -> bytes: ...


class Decoder(Protocol):
    """Stateful: one per incoming stream, fed its payloads in order."""

    def decode(self, payload: bytes) -> Pcm: ...

    def conceal(self, next_payload: bytes | None = None) -> Pcm:
        """One frame standing in for a lost packet. `next_payload`, the packet after the lost
        one when a jitter buffer already holds it, lets Opus rebuild the frame from its in-band
        FEC; the other codecs ignore it."""
        ...


_INT16 = np.dtype(np.int16)


def check_pcm(pcm: Pcm, codec: str) -> None:
    """Raise a CodecError unless `pcm` is a 1-D int16 array, the only input encoders take (an
    int32 or float array would be silently wrapped or truncated by the table lookups)."""
    try:
        # Identity first: this runs once per frame, and the equality test costs twice as much.
        if (pcm.dtype is _INT16 or pcm.dtype == _INT16) and pcm.ndim == 1:
            return
    except AttributeError:
        pass
    got = f"{pcm.dtype} array of shape {pcm.shape}" if isinstance(pcm, np.ndarray) else pcm
    raise CodecError(f"{codec}: encoder takes a 1-D int16 array, got {got!r:.80}")


class FadeConcealer:
    """Loss concealment for codecs without their own (G.711, DVI4): repeat the last good frame,
    fading linearly to silence over `fade_frames` lost frames, then silence.

    A repeated frame hides a short gap far better than a hole of silence; fading keeps a longer
    loss from turning into a buzz of the same 20 ms over and over.
    """

    def __init__(self, frame_samples: int = FRAME_SAMPLES, fade_frames: int = 3) -> None:
        self._last: Pcm = np.zeros(frame_samples, dtype=np.int16)
        self._fade_frames = fade_frames
        self._lost = 0

    def good(self, pcm: Pcm) -> None:
        """Remember a decoded frame (not copied: decoders hand out fresh arrays)."""
        self._last = pcm
        self._lost = 0

    def conceal(self) -> Pcm:
        n = self._last.size
        start = 1.0 - self._lost / self._fade_frames
        self._lost += 1
        if start <= 0.0:
            return np.zeros(n, dtype=np.int16)
        end = max(0.0, 1.0 - self._lost / self._fade_frames)
        gain = np.linspace(start, end, n, endpoint=False, dtype=np.float32)
        faded: Pcm = np.rint(self._last * gain).astype(np.int16)
        return faded
