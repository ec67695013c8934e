"""DVI4 (IMA ADPCM, RFC 3551 section 4.5.1): quality, the RTP header and nibble order, state
across frames, and payloads that must fail cleanly."""

from __future__ import annotations

import itertools
import warnings
from types import ModuleType

import numpy as np
import numpy.typing as npt
import pytest

from gateway.codecs import adpcm
from gateway.codecs.base import CodecError
from gateway.dsp.signals import speech_like, tone


def _audioop() -> ModuleType | None:
    # audioop's IMA coder is an independent implementation to compare with (gone in 3.13).
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import audioop
    except ImportError:
        return None
    return audioop


AUDIOOP = _audioop()


def _pcm(samples: npt.NDArray[np.float32]) -> npt.NDArray[np.int16]:
    return np.rint(samples * 32767).astype(np.int16)


def _snr_db(reference: npt.NDArray[np.int16], decoded: npt.NDArray[np.int16]) -> float:
    x, y = reference.astype(np.float64), decoded.astype(np.float64)
    return float(10 * np.log10(np.sum(x**2) / np.sum((x - y) ** 2)))


def _round_trip(pcm: npt.NDArray[np.int16]) -> tuple[list[bytes], npt.NDArray[np.int16]]:
    encoder, decoder = adpcm.Dvi4Encoder(), adpcm.Dvi4Decoder()
    payloads = [encoder.encode(frame) for frame in pcm.reshape(-1, 160)]
    return payloads, np.concatenate([decoder.decode(p) for p in payloads])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_speech_round_trip_snr(seed: int) -> None:
    # IMA ADPCM gets 17.7-19 dB on this voice-band signal (its formants and noise reach 3 kHz,
    # where a first-order predictor helps little); that is the codec itself, since the coder
    # matches audioop's bit for bit (below). Lower-pitched content does better.
    pcm = _pcm(speech_like(3.0, -12.0, np.random.default_rng(seed)))
    payloads, decoded = _round_trip(pcm)
    assert all(len(p) == 84 for p in payloads)  # 4-byte header + 160 samples at 4 bits
    assert _snr_db(pcm, decoded) > 17.0


@pytest.mark.parametrize(("hz", "min_snr_db"), [(300, 30.0), (500, 28.0), (1000, 20.0)])
def test_tone_round_trip_snr(hz: float, min_snr_db: float) -> None:
    pcm = _pcm(tone(hz, 1.0, -12.0))
    assert _snr_db(pcm, _round_trip(pcm)[1]) > min_snr_db


@pytest.mark.skipif(AUDIOOP is None, reason="audioop is gone from this Python")
def test_same_codes_and_samples_as_audioop_ima_coder() -> None:
    assert AUDIOOP is not None
    pcm = _pcm(speech_like(2.0, -3.0, np.random.default_rng(7)))
    pcm[800:1600] = np.where(np.arange(800) % 40 < 20, 32767, -32768)  # clipping, too
    encoder, decoder = adpcm.Dvi4Encoder(), adpcm.Dvi4Decoder()
    enc_state, dec_state = None, None
    for frame in pcm.reshape(-1, 160):
        payload = encoder.encode(frame)
        codes, enc_state = AUDIOOP.lin2adpcm(frame.tobytes(), 2, enc_state)
        assert payload[4:] == codes  # audioop also puts the first sample in the high nibble
        samples, dec_state = AUDIOOP.adpcm2lin(payload[4:], 2, dec_state)
        assert decoder.decode(payload).tobytes() == samples
    assert enc_state == dec_state == (encoder.predicted, encoder.index)


def test_state_is_carried_across_frames() -> None:
    pcm = _pcm(speech_like(1.0, -12.0, np.random.default_rng(3)))
    encoder, decoder = adpcm.Dvi4Encoder(), adpcm.Dvi4Decoder()
    payloads = [encoder.encode(frame) for frame in pcm.reshape(-1, 160)]
    # Each header holds the state the previous packet ended in, as its decoder tracked it.
    for previous, payload in itertools.pairwise(payloads):
        decoder.decode(previous)
        predicted, index, reserved = adpcm.HEADER.unpack_from(payload)
        assert (predicted, index, reserved) == (decoder.predicted, decoder.index, 0)
    # Framing does not change the coding: one long block gives the same codes.
    codes, predicted, index = adpcm.encode_samples(pcm.tolist(), 0, 0)
    nibbles = np.frombuffer(b"".join(p[4:] for p in payloads), dtype=np.uint8)
    assert np.array_equal(nibbles >> 4, np.frombuffer(codes, dtype=np.uint8)[0::2])
    assert np.array_equal(nibbles & 15, np.frombuffer(codes, dtype=np.uint8)[1::2])
    assert (predicted, index) == (encoder.predicted, encoder.index)


def test_header_is_predictor_big_endian_then_index_then_zero() -> None:
    encoder = adpcm.Dvi4Encoder()
    assert encoder.encode(np.zeros(160, dtype=np.int16))[:4] == b"\x00\x00\x00\x00"
    encoder.predicted, encoder.index = -2, 5
    payload = encoder.encode(np.zeros(160, dtype=np.int16))
    assert payload[:4] == b"\xff\xfe\x05\x00"
    assert len(payload) == 84


def test_first_sample_is_in_the_high_nibble() -> None:
    # From rest (predictor 0, index 0, step 7): code 7 reconstructs 0 + 7 + 3 + 1 = 11 and moves
    # to index 8 (step 16), where code 0 adds 16 >> 3 = 2. The other order would give [0, 11].
    assert adpcm.Dvi4Decoder().decode(b"\x00\x00\x00\x00\x70").tolist() == [11, 13]
    assert adpcm.Dvi4Encoder().encode(np.array([11, 13], dtype=np.int16)) == b"\0\0\0\0\x70"


def test_reserved_byte_is_ignored() -> None:
    body = bytes(range(0, 160, 2))
    plain = adpcm.Dvi4Decoder().decode(b"\x12\x34\x20\x00" + body)
    assert np.array_equal(adpcm.Dvi4Decoder().decode(b"\x12\x34\x20\xff" + body), plain)


def test_decoder_recovers_after_a_lost_packet() -> None:
    pcm = _pcm(speech_like(1.0, -12.0, np.random.default_rng(4)))
    payloads, clean = _round_trip(pcm)
    decoder = adpcm.Dvi4Decoder()
    out = []
    for k, payload in enumerate(payloads):
        out.append(decoder.conceal() if k == 10 else decoder.decode(payload))
    lossy = np.concatenate(out)
    # Only the lost frame differs: the next header restores the predictor and step.
    assert np.array_equal(lossy[:1600], clean[:1600])
    assert np.array_equal(lossy[1760:], clean[1760:])


def test_full_scale_input_clips_without_wrapping() -> None:
    pcm = np.tile(np.repeat(np.array([32767, -32768], dtype=np.int16), 20), 8)
    decoded = _round_trip(pcm)[1]
    assert decoded.max() == 32767 and decoded.min() == -32768
    # Square waves at full scale: the step needs a few ms to grow from rest, then it follows.
    assert np.corrcoef(pcm[80:].astype(float), decoded[80:].astype(float))[0, 1] > 0.9


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"", "payload of 0 bytes is truncated"),
        (b"\x00", "payload of 1 bytes is truncated"),
        (b"\x00\x00\x00", "payload of 3 bytes is truncated"),
        (b"\x00\x00\x00\x00", "holds no samples"),
        (b"\x00\x00\x59\x00\x11", "step index 89 in the header is not 0-88"),
        (b"\x00\x00\xff\x00\x11", "step index 255"),
    ],
)
def test_bad_payloads_raise_codec_error(payload: bytes, message: str) -> None:
    with pytest.raises(CodecError, match=message) as caught:
        adpcm.Dvi4Decoder().decode(payload)
    assert str(caught.value).startswith("dvi4: ") and "\n" not in str(caught.value)


def test_garbage_never_crashes() -> None:
    rng = np.random.default_rng(11)
    decoder = adpcm.Dvi4Decoder()
    decoded = 0
    for _ in range(500):
        payload = rng.integers(0, 256, int(rng.integers(0, 200)), dtype=np.uint8).tobytes()
        try:
            pcm = decoder.decode(payload)
        except CodecError:
            continue
        decoded += 1
        assert pcm.dtype == np.int16 and pcm.size == 2 * (len(payload) - 4)
    assert decoded > 100  # a valid step index (a third of byte values) decodes as noise


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (np.zeros(159, dtype=np.int16), "even number of samples, got 159"),
        (np.zeros(0, dtype=np.int16), "even number of samples, got 0"),
        (np.zeros(160, dtype=np.float32), "int16"),
    ],
)
def test_encoder_refuses_bad_frames(frame: npt.NDArray[np.int16], message: str) -> None:
    with pytest.raises(CodecError, match=message):
        adpcm.Dvi4Encoder().encode(frame)


def test_conceal_repeats_and_fades_the_last_frame() -> None:
    decoder = adpcm.Dvi4Decoder()
    assert np.array_equal(decoder.conceal(), np.zeros(160, dtype=np.int16))
    pcm = _pcm(tone(400, 0.02, -6.0))
    last = decoder.decode(adpcm.Dvi4Encoder().encode(pcm))
    concealed = decoder.conceal()
    assert concealed.dtype == np.int16 and concealed.size == 160
    assert concealed[0] == last[0]
    assert 0 < np.abs(concealed).max() <= np.abs(last).max()
