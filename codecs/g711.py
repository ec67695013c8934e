"""G.711 mu-law (PCMU) and A-law (PCMA), bit-exact with the ITU-T G.191 STL reference.

Encoding is one lookup in a 65536-entry table indexed by the 16-bit sample, decoding one lookup
in a 256-entry table: numpy does either in a single call over a frame or a whole buffer. The
tables are built at import from the STL algorithms (`src/g711/g711.c`; docs/protocols.md, "G.711"),
which differ from the widely copied Sun g711.c (and so from Python's audioop) on some negative
inputs; tests/data/g711/ holds the reference files they reproduce.

Lookups use `take(..., mode="wrap")`: a negative int16 wraps to its uint16 bit pattern, which is
exactly where the encode table keeps it, so no view or copy of the input is made, and a
non-raising mode spares numpy an extra output buffer.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from gateway.codecs.base import FRAME_SAMPLES, CodecError, FadeConcealer, Pcm, check_pcm

Codes = npt.NDArray[np.uint8]


def _bit_length(values: npt.NDArray[np.int32]) -> npt.NDArray[np.int32]:
    """int.bit_length for small non-negative ints (< 256), elementwise."""
    return sum(((values >> k) > 0).astype(np.int32) for k in range(8))  # type: ignore[return-value]


def _all_int16() -> npt.NDArray[np.int32]:
    """Every int16 value, placed at the index of its uint16 bit pattern (0..32767, -32768..-1)."""
    return np.arange(65536, dtype=np.uint16).view(np.int16).astype(np.int32)


def _ulaw_encode_table() -> Codes:
    x = _all_int16()
    # 14-bit magnitude (one's complement for negatives, as G.191 does) plus the bias of 33.
    absno = np.minimum(np.where(x < 0, (~x) >> 2, x >> 2) + 33, 0x1FFF)
    segno = 1 + _bit_length(absno >> 6)
    code = ((8 - segno) << 4) | (15 - ((absno >> segno) & 0xF))
    table: Codes = (code | np.where(x >= 0, 0x80, 0)).astype(np.uint8)
    return table


def _ulaw_decode_table() -> Pcm:
    code = np.arange(256, dtype=np.int32)
    inverted = ~code
    exponent = (inverted >> 4) & 0x7
    step = 4 << (exponent + 1)
    magnitude = (0x80 << exponent) + step * (inverted & 0xF) + step // 2 - 4 * 33
    return np.where(code < 0x80, -magnitude, magnitude).astype(np.int16)


def _alaw_encode_table() -> Codes:
    x = _all_int16()
    ix = np.where(x < 0, (~x) >> 4, x >> 4)  # 12-bit magnitude, one's complement for negatives
    # Segments above the first: exponent from the leading 1, keep 4 bits of mantissa below it.
    exponent = _bit_length(ix >> 4)  # ix < 2048, so ix >> 4 < 128
    shifted = (ix >> np.maximum(exponent - 1, 0)) - 16 + (exponent << 4)
    ix = np.where(ix > 15, shifted, ix)
    return ((ix | np.where(x >= 0, 0x80, 0)) ^ 0x55).astype(np.uint8)


def _alaw_decode_table() -> Pcm:
    code = np.arange(256, dtype=np.int32)
    ix = (code ^ 0x55) & 0x7F
    exponent = ix >> 4
    mantissa = ((ix & 0xF) + np.where(exponent > 0, 16, 0)) << 4
    mantissa = (mantissa + 8) << np.maximum(exponent - 1, 0)
    table: Pcm = np.where(code > 127, mantissa, -mantissa).astype(np.int16)
    return table


ULAW_ENCODE_TABLE = _ulaw_encode_table()
ULAW_DECODE_TABLE = _ulaw_decode_table()
ALAW_ENCODE_TABLE = _alaw_encode_table()
ALAW_DECODE_TABLE = _alaw_decode_table()
for _table in (ULAW_ENCODE_TABLE, ULAW_DECODE_TABLE, ALAW_ENCODE_TABLE, ALAW_DECODE_TABLE):
    _table.flags.writeable = False  # shared by every stream: nobody may patch them


def ulaw_encode(pcm: Pcm) -> Codes:
    """int16 samples (any shape, e.g. ports x samples) to mu-law codes of the same shape."""
    if pcm.dtype != np.int16:
        raise CodecError(f"pcmu: encoder takes int16 samples, got {pcm.dtype}")
    return ULAW_ENCODE_TABLE.take(pcm, mode="wrap")


def ulaw_decode(codes: Codes) -> Pcm:
    """mu-law codes (uint8, any shape) to int16 samples."""
    if codes.dtype != np.uint8:
        raise CodecError(f"pcmu: decoder takes uint8 codes, got {codes.dtype}")
    return ULAW_DECODE_TABLE.take(codes, mode="wrap")


def alaw_encode(pcm: Pcm) -> Codes:
    """int16 samples (any shape) to A-law codes of the same shape."""
    if pcm.dtype != np.int16:
        raise CodecError(f"pcma: encoder takes int16 samples, got {pcm.dtype}")
    return ALAW_ENCODE_TABLE.take(pcm, mode="wrap")


def alaw_decode(codes: Codes) -> Pcm:
    """A-law codes (uint8, any shape) to int16 samples."""
    if codes.dtype != np.uint8:
        raise CodecError(f"pcma: decoder takes uint8 codes, got {codes.dtype}")
    return ALAW_DECODE_TABLE.take(codes, mode="wrap")


class G711Encoder:
    """PCMU or PCMA encoder for one stream: one byte per sample, no state between frames."""

    def __init__(self, name: str, table: Codes) -> None:
        self._name = name
        self._table = table

    def encode(self, pcm: Pcm) -> bytes:
        check_pcm(pcm, self._name)
        return self._table.take(pcm, mode="wrap").tobytes()


class G711Decoder:
    """PCMU or PCMA decoder for one stream; conceals a loss by fading out the last frame."""

    def __init__(self, name: str, table: Pcm, frame_samples: int = FRAME_SAMPLES) -> None:
        self._name = name
        self._table = table
        self._concealer = FadeConcealer(frame_samples)

    def decode(self, payload: bytes) -> Pcm:
        if not payload:
            raise CodecError(f"{self._name}: empty payload")
        # numpy reads bytes through the buffer protocol as uint8: cheaper than np.frombuffer
        # (numpy's stubs do not know that a memoryview is array-like).
        pcm: Pcm = self._table.take(memoryview(payload), mode="wrap")  # type: ignore[call-overload]
        self._concealer.good(pcm)
        return pcm

    def conceal(self, next_payload: bytes | None = None) -> Pcm:
        return self._concealer.conceal()


def pcmu_encoder() -> G711Encoder:
    return G711Encoder("pcmu", ULAW_ENCODE_TABLE)


def pcmu_decoder() -> G711Decoder:
    return G711Decoder("pcmu", ULAW_DECODE_TABLE)


def pcma_encoder() -> G711Encoder:
    return G711Encoder("pcma", ALAW_ENCODE_TABLE)


def pcma_decoder() -> G711Decoder:
    return G711Decoder("pcma", ALAW_DECODE_TABLE)
