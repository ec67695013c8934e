"""The codec registry links build on: descriptions, lookup errors, availability, factories."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from gateway.codecs import base, registry
from gateway.codecs.registry import Codec, CodecError
from gateway.config.models import LINK_FRAME_MS
from gateway.core import timing
from gateway.dsp.signals import tone

FRAME = np.rint(tone(440, 0.02, -12.0) * 32767).astype(np.int16)


@pytest.mark.parametrize(
    ("name", "payload_type", "clock_rate", "timestamp_step"),
    [
        ("pcmu", 0, 8000, 160),
        ("pcma", 8, 8000, 160),
        ("dvi4", 5, 8000, 160),
        ("opus", 96, 48000, 960),  # RFC 7587: Opus's RTP clock is 48 kHz whatever it encodes
    ],
)
def test_descriptions(name: str, payload_type: int, clock_rate: int, timestamp_step: int) -> None:
    codec = registry.get(name)
    assert (codec.name, codec.payload_type, codec.clock_rate) == (name, payload_type, clock_rate)
    assert codec.frame_samples == 160
    assert codec.timestamp_step == timestamp_step


def test_the_codecs_rate_and_frame_are_the_cores() -> None:
    # The codecs import nothing of the gateway, so they keep their own copy of these two facts.
    assert base.SAMPLE_RATE == timing.SAMPLE_RATE
    assert timing.frame_samples(LINK_FRAME_MS) == base.FRAME_SAMPLES


def test_names_in_config_order() -> None:
    assert registry.names() == ("pcmu", "pcma", "dvi4", "opus")


def test_unknown_codec_is_one_line_naming_the_known_ones() -> None:
    with pytest.raises(CodecError) as caught:
        registry.get("g729")
    assert str(caught.value) == "unknown codec 'g729'; known codecs: pcmu, pcma, dvi4, opus"
    assert isinstance(caught.value, ValueError)


def test_names_are_case_insensitive() -> None:
    assert registry.get("PCMU") is registry.get("pcmu")


def test_codec_is_immutable() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        registry.get("pcmu").payload_type = 8  # type: ignore[misc]


@pytest.mark.parametrize(("name", "payload_type"), [("opus", 111), ("opus", 127), ("pcmu", 96)])
def test_dynamic_payload_type(name: str, payload_type: int) -> None:
    codec = registry.get(name, payload_type=payload_type)
    assert codec.payload_type == payload_type
    assert registry.get(name).payload_type != payload_type  # the default is untouched


@pytest.mark.parametrize(("name", "payload_type"), [("opus", 95), ("opus", 128), ("pcmu", 8)])
def test_bad_payload_type(name: str, payload_type: int) -> None:
    with pytest.raises(CodecError, match=f"{name}: payload type {payload_type} is neither"):
        registry.get(name, payload_type=payload_type)


def test_own_static_payload_type_is_accepted() -> None:
    assert registry.get("pcma", payload_type=8) is registry.get("pcma")


@pytest.mark.parametrize("name", ["pcmu", "pcma", "dvi4"])
def test_built_in_codecs_are_always_available(name: str) -> None:
    assert registry.available(name) == (True, f"{name}: built in")


def test_availability_of_unknown_codec() -> None:
    ok, reason = registry.available("speex")
    assert not ok and reason.startswith("unknown codec 'speex'")


@pytest.mark.parametrize("name", ["pcmu", "pcma", "dvi4", "opus"])
def test_every_codec_encodes_decodes_and_conceals_a_frame(name: str) -> None:
    codec: Codec = registry.get(name)
    encoder, decoder = codec.encoder(), codec.decoder()
    for _ in range(3):
        payload = encoder.encode(FRAME)
        assert isinstance(payload, bytes) and payload
        decoded = decoder.decode(payload)
        assert decoded.dtype == np.int16 and decoded.shape == (codec.frame_samples,)
    concealed = decoder.conceal()
    assert concealed.dtype == np.int16 and concealed.shape == (codec.frame_samples,)
    assert decoder.conceal(next_payload=encoder.encode(FRAME)).shape == (codec.frame_samples,)


def test_each_factory_call_is_a_new_stream() -> None:
    codec = registry.get("dvi4")
    first, second = codec.encoder(), codec.encoder()
    assert first is not second
    first.encode(FRAME)
    # The second stream starts from rest: its header is all zeros.
    assert second.encode(FRAME)[:4] == b"\x00\x00\x00\x00"
    assert first.encode(FRAME)[:4] != b"\x00\x00\x00\x00"


@pytest.mark.parametrize("name", ["pcmu", "pcma", "dvi4", "opus"])
def test_empty_payload_is_a_codec_error_naming_the_codec(name: str) -> None:
    decoder = registry.get(name).decoder()
    with pytest.raises(CodecError, match=f"^{name}: "):
        decoder.decode(b"")
