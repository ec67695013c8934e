"""The codecs a link can speak, by the names config uses: what each is on the wire, and factories
for its stateful encoder and decoder.

    codec = registry.get("pcmu")            # CodecError naming the known codecs if unknown
    ok, reason = registry.available("opus")  # (False, "opus: libopus is not installed ...")
    enc, dec = codec.encoder(), codec.decoder()
    payload = enc.encode(frame)              # frame: int16 array, codec.frame_samples long
    frame = dec.decode(payload)              # or dec.conceal() for a lost packet

Opus is optional: its binding is imported only when an Opus encoder or decoder is made or its
availability asked, so importing this module never needs libopus.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, replace

from gateway.codecs.base import FRAME_SAMPLES, SAMPLE_RATE, CodecError, Decoder, Encoder, Pcm

__all__ = ["Codec", "CodecError", "Decoder", "Encoder", "Pcm", "available", "get", "names"]

DYNAMIC_PAYLOAD_TYPES = range(96, 128)
"""RFC 3551: payload types a session assigns itself (Opus has no static one)."""

OPUS_DEFAULT_PAYLOAD_TYPE = 96


@dataclass(frozen=True, slots=True)
class Codec:
    """One codec as a link uses it.

    `clock_rate` is the RTP timestamp rate, not the audio rate: every codec here runs at 8 kHz,
    but Opus's RTP clock is always 48 kHz (RFC 7587), so its timestamp advances 960 per 20 ms.
    """

    name: str
    payload_type: int
    clock_rate: int
    frame_samples: int = FRAME_SAMPLES
    """Samples at 8 kHz per packet (160 = 20 ms)."""

    @property
    def timestamp_step(self) -> int:
        """RTP timestamp increment per packet of `frame_samples`."""
        return self.frame_samples * self.clock_rate // SAMPLE_RATE

    def encoder(self) -> Encoder:
        """A new encoder for one outgoing stream; CodecError if the codec is unavailable."""
        return _factory(self.name)[0]()

    def decoder(self) -> Decoder:
        """A new decoder for one incoming stream; CodecError if the codec is unavailable."""
        return _factory(self.name)[1]()


_CODECS: dict[str, Codec] = {
    # RFC 3551 static payload types; G.711 and DVI4 are clocked at their sample rate.
    "pcmu": Codec("pcmu", 0, SAMPLE_RATE),
    "pcma": Codec("pcma", 8, SAMPLE_RATE),
    "dvi4": Codec("dvi4", 5, SAMPLE_RATE),
    "opus": Codec("opus", OPUS_DEFAULT_PAYLOAD_TYPE, 48000),
}


def names() -> tuple[str, ...]:
    return tuple(_CODECS)


def get(name: str, payload_type: int | None = None) -> Codec:
    """The codec called `name` (as in config: pcmu, pcma, dvi4, opus).

    `payload_type` overrides the default: a dynamic one (96-127) is allowed for any codec, since
    a peer's SDP may map any codec there; Opus defaults to 96.
    """
    codec = _CODECS.get(name.lower()) if isinstance(name, str) else None
    if codec is None:
        raise CodecError(f"unknown codec {name!r}; known codecs: {', '.join(_CODECS)}")
    if payload_type is None or payload_type == codec.payload_type:
        return codec
    if payload_type not in DYNAMIC_PAYLOAD_TYPES:
        raise CodecError(
            f"{codec.name}: payload type {payload_type} is neither its own "
            f"({codec.payload_type}) nor a dynamic one (96-127)"
        )
    return replace(codec, payload_type=payload_type)


def available(name: str) -> tuple[bool, str]:
    """Whether the codec can be used on this machine, and a one-line reason saying why or why not
    (for `crosspatch check` and status)."""
    try:
        codec = get(name)
    except CodecError as exc:
        return False, str(exc)
    if codec.name == "opus":
        return _opus_available()
    return True, f"{codec.name}: built in"


@functools.cache
def _opus_available() -> tuple[bool, str]:
    # Probed once: loading the library is what fails, and it does not change while we run.
    from gateway.codecs import opus

    return opus.probe()


def _factory(name: str) -> tuple[Callable[[], Encoder], Callable[[], Decoder]]:
    # Imports here, not at the top: each codec module is loaded only when a link needs it.
    if name == "pcmu":
        from gateway.codecs import g711

        return g711.pcmu_encoder, g711.pcmu_decoder
    if name == "pcma":
        from gateway.codecs import g711

        return g711.pcma_encoder, g711.pcma_decoder
    if name == "dvi4":
        from gateway.codecs import adpcm

        return adpcm.Dvi4Encoder, adpcm.Dvi4Decoder
    if name == "opus":
        ok, reason = _opus_available()
        if not ok:
            raise CodecError(reason)
        from gateway.codecs import opus

        return opus.OpusEncoder, opus.OpusDecoder
    raise CodecError(f"unknown codec {name!r}; known codecs: {', '.join(_CODECS)}")
