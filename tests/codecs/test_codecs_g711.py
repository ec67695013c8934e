"""G.711: bit-exact against the ITU-T G.191 reference files, round trips of every int16 input,
the decode tables' known values, and the stream encoder/decoder with their loss concealment."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pytest

from gateway.codecs import g711
from gateway.codecs.base import CodecError
from tests.support import paths

DATA = paths.DATA / "g711"

Encode = Callable[[npt.NDArray[np.int16]], npt.NDArray[np.uint8]]
Decode = Callable[[npt.NDArray[np.uint8]], npt.NDArray[np.int16]]
LAWS: dict[str, tuple[Encode, Decode]] = {
    "u": (g711.ulaw_encode, g711.ulaw_decode),
    "a": (g711.alaw_encode, g711.alaw_decode),
}
ALL_INT16 = np.arange(-32768, 32768, dtype=np.int16)


def _reference_codes(law: str) -> npt.NDArray[np.uint8]:
    # One code per little-endian 16-bit word, in the low byte (the README's layout).
    words = np.fromfile(DATA / f"sweep-r.{law}", dtype="<u2")
    assert words.size == 65536 and not (words >> 8).any()
    return words.astype(np.uint8)


def test_reference_input_is_every_int16_ascending() -> None:
    assert np.array_equal(np.fromfile(DATA / "sweep.src", dtype="<i2"), ALL_INT16)


@pytest.mark.parametrize("law", ["u", "a"])
def test_encode_reproduces_itu_reference_file(law: str) -> None:
    encode, _ = LAWS[law]
    source = np.fromfile(DATA / "sweep.src", dtype="<i2").astype(np.int16)
    written = encode(source).astype("<u2").tobytes()
    assert written == (DATA / f"sweep-r.{law}").read_bytes()


@pytest.mark.parametrize("law", ["u", "a"])
def test_decode_reproduces_itu_reference_file(law: str) -> None:
    _, decode = LAWS[law]
    written = decode(_reference_codes(law)).astype("<i2").tobytes()
    assert written == (DATA / f"sweep-r.{law}-{law}").read_bytes()


@pytest.mark.parametrize("law", ["u", "a"])
def test_every_int16_round_trips_within_its_quantisation_cell(law: str) -> None:
    encode, decode = LAWS[law]
    codes = encode(ALL_INT16)
    decoded = decode(codes).astype(np.int64)
    x = ALL_INT16.astype(np.int64)
    # Monotone: each code's inputs form one contiguous cell, cells in order of their values.
    assert np.all(np.diff(decoded) >= 0)
    for code in range(256):
        cell = x[codes == code]
        assert cell.size, f"code {code:#04x} is never produced"
        assert cell.size == cell[-1] - cell[0] + 1
        value = int(decode(np.array([code], dtype=np.uint8))[0])
        error = np.abs(cell - value).max()
        if law == "u" and code in (0x7F, 0xFF):
            assert error <= 4  # the two zeros: -4..-1 and 0..3 both decode to 0
        elif law == "u" and code in (0x00, 0x80):
            assert error <= 644  # beyond +-32124 mu-law clips
        else:
            assert error <= cell.size / 2, f"code {code:#04x}: error {error} in {cell.size}"


def test_ulaw_decode_table() -> None:
    table = g711.ulaw_decode(np.arange(256, dtype=np.uint8)).astype(np.int64)
    assert table[0xFF] == 0 and table[0x7F] == 0
    assert table[0x80] == 32124 and table[0x00] == -32124
    assert table[0xFE] == 8 and table[0x7E] == -8
    assert np.array_equal(table[:128], -table[128:])  # the sign bit is 0x80
    assert np.all(np.diff(table[128:]) < 0)  # 0x80 loudest positive down to 0xFF
    assert len(np.unique(table)) == 255
    # Decoded values re-encode to their own code (mu-law's -0 becomes +0).
    again = g711.ulaw_encode(table.astype(np.int16))
    expected = np.arange(256)
    expected[0x7F] = 0xFF
    assert np.array_equal(again, expected)


def test_alaw_decode_table() -> None:
    table = g711.alaw_decode(np.arange(256, dtype=np.uint8)).astype(np.int64)
    assert table[0xD5] == 8 and table[0x55] == -8
    assert table[0xAA] == 32256 and table[0x2A] == -32256
    assert np.array_equal(table[:128], -table[128:])
    assert len(np.unique(table)) == 256
    assert np.array_equal(g711.alaw_encode(table.astype(np.int16)), np.arange(256))


def test_tables_are_read_only() -> None:
    with pytest.raises(ValueError):
        g711.ULAW_ENCODE_TABLE[0] = 1


def test_functions_take_any_shape() -> None:
    ports = np.arange(-3200, 3200, dtype=np.int16).reshape(40, 160)
    codes = g711.alaw_encode(ports)
    assert codes.shape == (40, 160) and codes.dtype == np.uint8
    assert np.array_equal(codes.ravel(), g711.alaw_encode(ports.ravel()))
    assert g711.alaw_decode(codes).shape == (40, 160)


@pytest.mark.parametrize("function", [g711.ulaw_encode, g711.alaw_encode])
def test_encoders_refuse_other_sample_types(function: Encode) -> None:
    # An int32 40000 would otherwise wrap to a loud negative sample.
    with pytest.raises(CodecError, match="int16"):
        function(np.array([40000], dtype=np.int32))  # type: ignore[arg-type]


@pytest.mark.parametrize("function", [g711.ulaw_decode, g711.alaw_decode])
def test_decoders_refuse_other_code_types(function: Decode) -> None:
    with pytest.raises(CodecError, match="uint8"):
        function(np.array([300], dtype=np.int16))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("make_encoder", "make_decoder", "law"),
    [(g711.pcmu_encoder, g711.pcmu_decoder, "u"), (g711.pcma_encoder, g711.pcma_decoder, "a")],
)
def test_stream_encoder_and_decoder(
    make_encoder: Callable[[], g711.G711Encoder],
    make_decoder: Callable[[], g711.G711Decoder],
    law: str,
) -> None:
    encode, decode = LAWS[law]
    frame = (np.sin(np.arange(160) / 5) * 12000).astype(np.int16)
    payload = make_encoder().encode(frame)
    assert isinstance(payload, bytes) and len(payload) == 160
    assert payload == encode(frame).tobytes()
    decoded = make_decoder().decode(payload)
    assert decoded.dtype == np.int16 and np.array_equal(decoded, decode(encode(frame)))
    decoded[0] = 1  # the caller owns it: writable, and no table behind it changes


def test_stream_encoder_refuses_bad_frames() -> None:
    encoder = g711.pcmu_encoder()
    with pytest.raises(CodecError, match="pcmu: encoder takes a 1-D int16"):
        encoder.encode(np.zeros(160, dtype=np.float32))  # type: ignore[arg-type]
    with pytest.raises(CodecError, match="1-D"):
        encoder.encode(np.zeros((2, 160), dtype=np.int16))


def test_stream_decoder_refuses_empty_payload() -> None:
    with pytest.raises(CodecError, match="pcma: empty payload"):
        g711.pcma_decoder().decode(b"")


def test_conceal_fades_the_last_frame_out() -> None:
    decoder = g711.pcmu_decoder()
    assert np.array_equal(decoder.conceal(), np.zeros(160, dtype=np.int16))  # nothing heard yet
    frame = decoder.decode(g711.pcmu_encoder().encode(np.full(160, 8000, dtype=np.int16)))
    level = float(frame[0])
    concealed = [decoder.conceal() for _ in range(4)]
    assert all(c.dtype == np.int16 and c.size == 160 for c in concealed)
    assert concealed[0][0] == frame[0]  # starts at the last frame's level: no click
    peaks = [int(np.abs(c).max()) for c in concealed]
    assert level >= peaks[0] > peaks[1] > peaks[2] > peaks[3] == 0
    # Each frame continues the ramp where the previous one stopped.
    assert abs(int(concealed[1][0]) - int(concealed[0][-1])) <= level / 160 + 1
    # A good frame ends concealment; the next loss starts from full level again.
    decoder.decode(g711.pcmu_encoder().encode(np.full(160, 8000, dtype=np.int16)))
    assert decoder.conceal()[0] == frame[0]
