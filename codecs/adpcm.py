"""IMA ADPCM as RTP's DVI4 (RFC 3551 section 4.5.1): payload type 5 at 8 kHz, 4 bits a sample.

A packet is one DVI block:

    0      2      3          4
    | predict | index | reserved | 4-bit codes, two to a byte ...

- `predict` is the predictor's value before the block's first sample, a 16-bit signed integer
  in network (big-endian) byte order; `index` is the step-size index (0-88) in force for the
  first sample; `reserved` is sent as 0 and ignored.
- Nibble order: the FIRST sample is in the HIGH nibble. IMA ADPCM in WAV files packs the
  opposite way (first sample low) and also puts the first sample itself, not the predictor
  state, in its header; RFC 3551 names both differences. So a frame of 160 samples is a
  4 + 80 = 84 byte payload.

Both sides carry state across frames: the encoder continues its predictor and step index from
one frame to the next and writes them into each header, so every packet is decodable on its
own and a lost packet costs only its own 20 ms (the decoder resynchronises from the next header).

The coding rule is the IMA/DVI one (IMA Recommended Practices 1992; the same arithmetic as
Python's audioop.lin2adpcm, which the tests compare against). Each sample depends on the
previous one through the predictor and the step index, so both directions are plain Python
loops kept short by per-step-index tables (about 65 us to encode and 35 us to decode a 20 ms
frame on a desktop core, bench/codec_speed.py); only the nibble packing is vectorised. A numpy
cumulative sum for the decoder's values measured slower: the step indices still need the
loop, and handing them to numpy costs more than the additions it saves.
"""

from __future__ import annotations

import struct
from bisect import bisect_right

import numpy as np
import numpy.typing as npt

from gateway.codecs.base import FRAME_SAMPLES, CodecError, FadeConcealer, Pcm, check_pcm

STEP_SIZES = (
    7, 8, 9, 10, 11, 12, 13, 14, 16, 17, 19, 21, 23, 25, 28, 31, 34, 37, 41, 45, 50, 55, 60, 66,
    73, 80, 88, 97, 107, 118, 130, 143, 157, 173, 190, 209, 230, 253, 279, 307, 337, 371, 408,
    449, 494, 544, 598, 658, 724, 796, 876, 963, 1060, 1166, 1282, 1411, 1552, 1707, 1878, 2066,
    2272, 2499, 2749, 3024, 3327, 3660, 4026, 4428, 4871, 5358, 5894, 6484, 7132, 7845, 8630,
    9493, 10442, 11487, 12635, 13899, 15289, 16818, 18500, 20350, 22385, 24623, 27086, 29794,
    32767,
)  # fmt: skip
INDEX_ADJUST = (-1, -1, -1, -1, 2, 4, 6, 8)
MAX_INDEX = len(STEP_SIZES) - 1
HEADER = struct.Struct(">hBB")


def _step_parts(step: int) -> tuple[int, int, int]:
    # The IMA quantiser halves the step with integer shifts, so its three bit weights are these.
    return step, step >> 1, step >> 2


# For each step index, `_THRESHOLDS[i][m]` is the smallest |difference| that the IMA encoder
# codes as magnitude m (0-7): its bit-by-bit comparison against step, step/2 and step/4 equals
# picking the largest m whose threshold is reached (bisect), since the weights are
# superincreasing. `_VPDIFF[i][m]` is the difference the decoder reconstructs for it.
_THRESHOLDS = tuple(
    tuple((m >> 2) * s + ((m >> 1) & 1) * h + (m & 1) * q for m in range(8))
    for s, h, q in map(_step_parts, STEP_SIZES)
)
_VPDIFF = tuple(
    tuple((step >> 3) + t for t in thresholds)
    for step, thresholds in zip(STEP_SIZES, _THRESHOLDS, strict=True)
)
_NEXT_INDEX = tuple(
    tuple(min(MAX_INDEX, max(0, i + INDEX_ADJUST[code & 7])) for code in range(16))
    for i in range(len(STEP_SIZES))
)
# Signed reconstruction per (index, 4-bit code): bit 3 is the sign.
_DELTA = tuple(tuple(v for v in vp) + tuple(-v for v in vp) for vp in _VPDIFF)


def encode_samples(samples: list[int], predicted: int, index: int) -> tuple[bytearray, int, int]:
    """IMA-code `samples` from the given predictor state: (4-bit codes, one per byte, and the
    state after the last sample)."""
    codes = bytearray(len(samples))
    thresholds, vpdiff, next_index = _THRESHOLDS, _VPDIFF, _NEXT_INDEX
    for n, sample in enumerate(samples):
        diff = sample - predicted
        if diff >= 0:
            magnitude = bisect_right(thresholds[index], diff) - 1
            predicted += vpdiff[index][magnitude]
            if predicted > 32767:
                predicted = 32767
            codes[n] = magnitude
        else:
            magnitude = bisect_right(thresholds[index], -diff) - 1
            predicted -= vpdiff[index][magnitude]
            if predicted < -32768:
                predicted = -32768
            codes[n] = magnitude | 8
        index = next_index[index][magnitude]
    return codes, predicted, index


def decode_codes(codes: npt.NDArray[np.uint8], predicted: int, index: int) -> tuple[Pcm, int, int]:
    """Samples of IMA `codes` (one per byte) from the given state, and the state after them."""
    values = [0] * codes.size
    delta, next_index = _DELTA, _NEXT_INDEX
    for n, code in enumerate(codes.tolist()):
        predicted += delta[index][code]
        if predicted > 32767:
            predicted = 32767
        elif predicted < -32768:
            predicted = -32768
        values[n] = predicted
        index = next_index[index][code]
    return np.array(values, dtype=np.int16), predicted, index


class Dvi4Encoder:
    """DVI4 encoder for one stream. A frame must hold an even number of samples (two a byte)."""

    def __init__(self) -> None:
        self.predicted = 0
        self.index = 0

    def encode(self, pcm: Pcm) -> bytes:
        check_pcm(pcm, "dvi4")
        if pcm.size == 0 or pcm.size % 2:
            raise CodecError(f"dvi4: a frame must hold an even number of samples, got {pcm.size}")
        header = HEADER.pack(self.predicted, self.index, 0)
        codes, self.predicted, self.index = encode_samples(pcm.tolist(), self.predicted, self.index)
        nibbles = np.frombuffer(codes, dtype=np.uint8)
        return header + ((nibbles[0::2] << 4) | nibbles[1::2]).tobytes()


class Dvi4Decoder:
    """DVI4 decoder for one stream: state from each packet's header; a loss is concealed by
    fading out the last frame."""

    def __init__(self, frame_samples: int = FRAME_SAMPLES) -> None:
        self.predicted = 0
        self.index = 0
        self._concealer = FadeConcealer(frame_samples)

    def decode(self, payload: bytes) -> Pcm:
        if len(payload) <= HEADER.size:
            what = "holds no samples" if len(payload) == HEADER.size else "is truncated"
            raise CodecError(
                f"dvi4: payload of {len(payload)} bytes {what} (4-byte header, then samples)"
            )
        predicted, index, _reserved = HEADER.unpack_from(payload)
        if index > MAX_INDEX:
            raise CodecError(f"dvi4: step index {index} in the header is not 0-{MAX_INDEX}")
        packed = np.frombuffer(payload, dtype=np.uint8, offset=HEADER.size)
        codes = np.empty(2 * packed.size, dtype=np.uint8)
        codes[0::2] = packed >> 4  # first sample in the high nibble (RFC 3551)
        codes[1::2] = packed & 0x0F
        pcm, self.predicted, self.index = decode_codes(codes, predicted, index)
        self._concealer.good(pcm)
        return pcm

    def conceal(self, next_payload: bytes | None = None) -> Pcm:
        return self._concealer.conceal()
