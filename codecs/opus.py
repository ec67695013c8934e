"""Opus for links (RFC 6716, RTP per RFC 7587): narrowband 8 kHz mono, 20 ms frames, the VoIP
application, 20 kbit/s VBR target with in-band FEC; the decoder's own PLC conceals lost packets.

A peer may encode at any Opus bandwidth: libopus decodes every packet to 8 kHz for us.

Optional: through the `opuslib` binding (the `opus` extra) over the system libopus (Debian
libopus0). Nothing here is imported until a link asks for Opus, and `probe()` says what is
missing instead of raising, so the gateway runs without it.
"""

from __future__ import annotations

import ctypes
from types import ModuleType
from typing import Any

import numpy as np

from gateway.codecs.base import FRAME_SAMPLES, SAMPLE_RATE, CodecError, Pcm, check_pcm

OPUS_MISSING = "opus: libopus is not installed (apt install libopus0; pip install opuslib)"

FRAME_SIZES = (20, 40, 80, 160, 320, 480)
"""Samples at 8 kHz of each Opus frame duration: 2.5, 5, 10, 20, 40 and 60 ms."""

MAX_PACKET_SAMPLES = 960
"""120 ms at 8 kHz, the longest a single Opus packet may decode to."""

DEFAULT_BITRATE = 20000
"""Target while talking; speech with pauses averages about 16 kbit/s (VBR). Not lower: libopus
adds FEC only while its loss-adjusted rate clears a narrowband threshold (decide_fec() in
opus_encoder.c). At 16 kbit/s with 10 % expected loss it silently leaves FEC out; at 18 the FEC
takes enough bits to blur the primary frames (speech correlation 0.90, against 0.91 here and
0.95 without FEC)."""

EXPECTED_LOSS_PERCENT = 10
"""libopus spends FEC bits only when told to expect loss; 10 % suits a link over the Internet."""

MAX_PAYLOAD_BYTES = 1275
"""The largest Opus frame (RFC 6716 section 3.2.1)."""


def _opuslib() -> ModuleType:
    try:
        import opuslib  # type: ignore[import-untyped, import-not-found, unused-ignore]
        import opuslib.api.ctl  # type: ignore[import-untyped, import-not-found, unused-ignore]
        import opuslib.api.decoder  # type: ignore[import-untyped, import-not-found, unused-ignore]
        import opuslib.api.encoder  # type: ignore[import-untyped, import-not-found, unused-ignore]
        import opuslib.api.info  # type: ignore[import-untyped, import-not-found, unused-ignore]
    except ImportError as exc:
        raise CodecError(OPUS_MISSING) from exc
    except Exception as exc:  # opuslib raises a bare Exception when it cannot find libopus
        raise CodecError(OPUS_MISSING) from exc
    module: ModuleType = opuslib
    return module


def probe() -> tuple[bool, str]:
    """(True, "opus: libopus 1.3.1 via opuslib") or (False, why not); never raises."""
    try:
        lib = _opuslib()
        version = lib.api.info.get_version_string().decode("ascii", "replace")
    except CodecError as exc:
        return False, str(exc)
    return True, f"opus: {version} via opuslib"


class OpusEncoder:
    """Encoder for one stream. Frames may be any Opus duration (`FRAME_SIZES`); 20 ms is usual."""

    def __init__(
        self,
        bitrate: int = DEFAULT_BITRATE,
        fec: bool = True,
        expected_loss_percent: int = EXPECTED_LOSS_PERCENT,
        complexity: int = 10,
    ) -> None:
        """`complexity` 0-10 trades quality for CPU (10, libopus's usual default, costs about
        0.26 ms per 20 ms frame on a desktop core with FEC; a small board may want less)."""
        lib = _opuslib()
        self._api = lib.api
        self._encoder: Any = lib.Encoder(SAMPLE_RATE, 1, "voip")
        state = self._encoder.encoder_state
        ctl, encoder_ctl = lib.api.ctl, lib.api.encoder.encoder_ctl
        encoder_ctl(state, ctl.set_bitrate, bitrate)
        encoder_ctl(state, ctl.set_signal, lib.SIGNAL_VOICE)
        encoder_ctl(state, ctl.set_complexity, complexity)
        # Set through the ctl itself: opuslib 3.0.1's `inband_fec` property drops its value.
        encoder_ctl(state, ctl.set_inband_fec, int(fec))
        encoder_ctl(state, ctl.set_packet_loss_perc, expected_loss_percent if fec else 0)
        self._out = ctypes.create_string_buffer(MAX_PAYLOAD_BYTES)

    def encode(self, pcm: Pcm) -> bytes:
        check_pcm(pcm, "opus")
        if pcm.size not in FRAME_SIZES:
            raise CodecError(
                f"opus: a frame must be {', '.join(map(str, FRAME_SIZES))} samples, got {pcm.size}"
            )
        pcm = np.ascontiguousarray(pcm)
        # libopus straight through opuslib's declared function: its wrapper copies the packet
        # through a Python list, which costs more than the encoding at this size.
        n = self._api.encoder.libopus_encode(
            self._encoder.encoder_state,
            pcm.ctypes.data_as(self._api.c_int16_pointer),
            pcm.size,
            self._out,
            MAX_PAYLOAD_BYTES,
        )
        if n < 0:
            raise CodecError(f"opus: encoder failed: {self._api.info.strerror(n).decode()}")
        return ctypes.string_at(self._out, n)


class OpusDecoder:
    """Decoder for one stream; `conceal()` is libopus's PLC, or FEC from the next packet."""

    def __init__(self) -> None:
        lib = _opuslib()
        self._api = lib.api
        self._decoder: Any = lib.Decoder(SAMPLE_RATE, 1)
        self._last_samples = FRAME_SAMPLES

    def _decode(self, payload: bytes | None, samples: int, fec: bool) -> Pcm:
        out = np.empty(samples, dtype=np.int16)
        n = self._api.decoder.libopus_decode(
            self._decoder.decoder_state,
            payload,
            len(payload) if payload else 0,
            out.ctypes.data_as(self._api.c_int16_pointer),
            samples,
            int(fec),
        )
        if n < 0:
            raise CodecError(f"opus: cannot decode payload: {self._api.info.strerror(n).decode()}")
        return out[:n]

    def decode(self, payload: bytes) -> Pcm:
        if not payload:
            raise CodecError("opus: empty payload")
        pcm = self._decode(bytes(payload), MAX_PACKET_SAMPLES, fec=False)
        self._last_samples = pcm.size or FRAME_SAMPLES
        return pcm

    def conceal(self, next_payload: bytes | None = None) -> Pcm:
        # Both paths must ask for exactly the lost duration: taken to be the last packet's.
        if next_payload:
            try:
                return self._decode(bytes(next_payload), self._last_samples, fec=True)
            except CodecError:
                pass  # a damaged next packet: fall back to plain PLC
        return self._decode(None, self._last_samples, fec=False)
