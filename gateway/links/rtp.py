"""RTP packets (RFC 3550) with the ED-137B header extension, and R2S keep-alives: bytes in, bytes
out, nothing else.

Wire layout (all big-endian):

    0       V=2 P X CC | M PT | sequence (16) | timestamp (32) | SSRC (32) | CSRC x CC
    X=1:    profile 0x0167 (16) | length in 32-bit words (16) | extension data
    ED-137: PTT type (3) SQU (1) PTT-ID (6) PM PTTS SCT (1 each) reserved (2) X (1), then, with
            X, feature blocks (type nibble, length nibble, that many bytes); zero padding to a
            32-bit boundary

An R2S keep-alive is a packet of payload type 123 with no payload and the ED-137 extension
(docs/protocols.md, "RTP and ED-137B", "R2S keep-alives"). Parsing is strict about lengths: every
length field must fit the datagram, so a truncated, padded-out or oversized packet is an `RtpError`,
never an exception from deeper down or a silently misread field.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import NamedTuple

RTP_VERSION = 2
HEADER_BYTES = 12
# One Ethernet MTU: nothing a link sends comes near it (an Opus frame is a few hundred bytes),
# so a bigger datagram is not one of ours.
MAX_PACKET_BYTES = 1500
ED137_PROFILE = 0x0167
R2S_PAYLOAD_TYPE = 123

_HEADER = struct.Struct("!BBHII")
# The fixed header and a header extension's (profile, length) in one: see `parse_packet`.
_HEADER_AND_EXTENSION = struct.Struct("!BBHIIHH")
_PLAIN_EXTENDED = RTP_VERSION << 6 | 0x10  # first byte: V=2, no padding, X=1, no CSRCs
_EXTENSION_HEADER = struct.Struct("!HH")
_ED137_FIXED = struct.Struct("!H")
_FEATURE_TYPES = range(1, 16)  # type 0 is padding


class RtpError(ValueError):
    """A packet that is not well-formed RTP (or ED-137): says what is wrong with it."""


class PttType(IntEnum):
    """ED-137 PTT types (the top 3 bits of the extension's first word)."""

    OFF = 0
    NORMAL = 1
    COUPLING = 2
    PRIORITY = 3
    EMERGENCY = 4
    TEST = 5


_PTT_OFF = int(PttType.OFF)


@dataclass(frozen=True, slots=True)
class Ed137:
    """The ED-137B extension: PTT and squelch state of the sender, and its feature blocks as
    (type, data) pairs, kept as they came (no feature changes what a gateway does)."""

    ptt_type: int = PttType.OFF
    squ: bool = False
    ptt_id: int = 0
    pm: bool = False
    ptts: bool = False
    sct: bool = False
    features: tuple[tuple[int, bytes], ...] = ()

    def __post_init__(self) -> None:
        if not 0 <= self.ptt_type <= 7:
            raise RtpError(f"ED-137 PTT type must be 0-7 (got {self.ptt_type})")
        if not 0 <= self.ptt_id <= 63:
            raise RtpError(f"ED-137 PTT-ID must be 0-63 (got {self.ptt_id})")
        for kind, data in self.features:
            if kind not in _FEATURE_TYPES or len(data) > 15:
                raise RtpError(
                    f"ED-137 feature blocks have a type 1-15 and 0-15 bytes (got type {kind}, "
                    f"{len(data)} bytes)"
                )

    @property
    def carrier(self) -> bool:
        """Whether the sender is keyed or hears someone: what the receiving engine calls carrier."""
        # Against a plain int: looking up an enum member costs several times the comparison, and
        # this runs for every frame a link plays.
        return self.ptt_type != _PTT_OFF or self.squ

    def encode(self) -> bytes:
        """The extension's data, padded to whole 32-bit words."""
        word = (
            (self.ptt_type << 13)
            | (self.squ << 12)
            | (self.ptt_id << 6)
            | (self.pm << 5)
            | (self.ptts << 4)
            | (self.sct << 3)
            | (bool(self.features) << 0)
        )
        data = bytearray(_ED137_FIXED.pack(word))
        for kind, block in self.features:
            data.append(kind << 4 | len(block))
            data += block
        data += bytes(-len(data) % 4)
        return bytes(data)

    @classmethod
    def decode(cls, data: bytes) -> Ed137:
        if len(data) < 2:
            raise RtpError("the ED-137 extension is shorter than its 16-bit fixed part")
        (word,) = _ED137_FIXED.unpack_from(data)
        features: list[tuple[int, bytes]] = []
        if word & 1:
            at = 2
            while at < len(data):
                head = data[at]
                if head == 0:  # padding runs to the end
                    break
                kind, size = head >> 4, head & 0x0F
                if at + 1 + size > len(data):
                    raise RtpError(
                        f"ED-137 feature type {kind} says {size} bytes, but only "
                        f"{len(data) - at - 1} remain in the extension"
                    )
                features.append((kind, bytes(data[at + 1 : at + 1 + size])))
                at += 1 + size
        return cls(
            ptt_type=word >> 13,
            squ=bool(word >> 12 & 1),
            ptt_id=word >> 6 & 0x3F,
            pm=bool(word >> 5 & 1),
            ptts=bool(word >> 4 & 1),
            sct=bool(word >> 3 & 1),
            features=tuple(features),
        )


class RtpPacket(NamedTuple):
    """One RTP packet. `ed137` is the ED-137 extension if present; an extension of another
    profile is kept as (profile, data) in `extension` and otherwise ignored. (A named tuple:
    a link makes and reads one per frame, and tuples are cheap to make.)"""

    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes = b""
    marker: bool = False
    ed137: Ed137 | None = None
    csrc: tuple[int, ...] = ()
    extension: tuple[int, bytes] | None = None

    @property
    def is_keepalive(self) -> bool:
        return self.payload_type == R2S_PAYLOAD_TYPE

    def to_bytes(self) -> bytes:
        if self.ed137 is not None and self.extension is not None:
            raise RtpError("a packet has one header extension: ed137 or extension, not both")
        block = b""
        if self.ed137 is not None:
            block = extension_block(self.ed137)
        elif self.extension is not None:
            profile, data = self.extension
            if len(data) % 4:
                raise RtpError("extension data must be whole 32-bit words")
            try:
                block = _EXTENSION_HEADER.pack(profile, len(data) // 4) + data
            except struct.error as exc:
                raise RtpError(f"the extension profile is out of range: {exc}") from None
        return pack(
            self.payload_type,
            self.sequence,
            self.timestamp,
            self.ssrc,
            self.payload,
            self.marker,
            block,
            self.csrc,
        )


_new_tuple = tuple.__new__


def extension_block(state: Ed137) -> bytes:
    """The whole ED-137 header extension (profile, length, data) for `pack`."""
    data = state.encode()
    return _EXTENSION_HEADER.pack(ED137_PROFILE, len(data) // 4) + data


def pack(
    payload_type: int,
    sequence: int,
    timestamp: int,
    ssrc: int,
    payload: bytes = b"",
    marker: bool = False,
    extension: bytes = b"",
    csrc: tuple[int, ...] = (),
) -> bytes:
    """An RTP packet's bytes; `extension` is a whole header extension block (see
    `extension_block`), made once and reused by a sender whose state does not change."""
    if not 0 <= payload_type <= 127:
        raise RtpError(f"payload type must be 0-127 (got {payload_type})")
    if len(csrc) > 15:
        raise RtpError(f"at most 15 CSRCs fit the header (got {len(csrc)})")
    try:
        header = _HEADER.pack(
            RTP_VERSION << 6 | bool(extension) << 4 | len(csrc),
            marker << 7 | payload_type,
            sequence,
            timestamp,
            ssrc,
        )
        if csrc:
            header += struct.pack(f"!{len(csrc)}I", *csrc)
    except struct.error as exc:
        raise RtpError(f"a header field is out of range: {exc}") from None
    packet = header + extension + payload
    if len(packet) > MAX_PACKET_BYTES:
        raise RtpError(f"{len(packet)} bytes is more than {MAX_PACKET_BYTES} in one packet")
    return packet


_ED137_SEEN: dict[bytes, Ed137] = {}


def _decode_ed137(data: bytes) -> Ed137:
    # A stream repeats the same few states packet after packet: decode each once.
    state = _ED137_SEEN.get(data)
    if state is None:
        state = Ed137.decode(data)
        if len(_ED137_SEEN) >= 1024:  # garbage must not grow it without bound
            _ED137_SEEN.clear()
        _ED137_SEEN[data] = state
    return state


def looks_like_rtp(data: bytes) -> bool:
    """Cheap first check before decryption: long enough for a header, version 2."""
    return HEADER_BYTES <= len(data) <= MAX_PACKET_BYTES and data[0] >> 6 == RTP_VERSION


def ssrc_of(data: bytes) -> int:
    """The SSRC of a packet that `looks_like_rtp` (the header is never encrypted)."""
    return int.from_bytes(data[8:12], "big")


def parse_packet(data: bytes) -> RtpPacket:
    """The packet in `data`; raises RtpError saying what is wrong with it."""
    size = len(data)
    if type(data) is bytes and 16 <= size <= MAX_PACKET_BYTES and data[0] == _PLAIN_EXTENDED:
        # What every packet of a link is (V=2, the ED-137 extension, no CSRCs, no padding), in
        # one unpack: the same packet the general path below makes of it, in under half the time.
        _, second, sequence, timestamp, ssrc, profile, words = _HEADER_AND_EXTENSION.unpack_from(
            data
        )
        at = HEADER_BYTES + 4 + 4 * words
        if profile == ED137_PROFILE and at <= size:
            ext_data = data[HEADER_BYTES + 4 : at]
            state = _ED137_SEEN.get(ext_data)
            if state is None:
                state = _decode_ed137(ext_data)
            # (RtpPacket's own __new__ is a Python function: tuple's skips that call.)
            fields = (second & 0x7F, sequence, timestamp, ssrc, data[at:], second > 0x7F, state)
            return _new_tuple(RtpPacket, (*fields, (), None))
    if size < HEADER_BYTES:
        raise RtpError(f"{size} bytes is shorter than an RTP header ({HEADER_BYTES})")
    if size > MAX_PACKET_BYTES:
        raise RtpError(f"{size} bytes is more than {MAX_PACKET_BYTES} in one packet")
    first, second, sequence, timestamp, ssrc = _HEADER.unpack_from(data)
    if first >> 6 != RTP_VERSION:
        raise RtpError(f"RTP version {first >> 6}, not 2")
    at = HEADER_BYTES
    count = first & 0x0F
    if at + 4 * count > size:
        raise RtpError(f"{count} CSRCs do not fit a {size}-byte packet")
    csrc = struct.unpack_from(f"!{count}I", data, at)
    at += 4 * count
    ed137: Ed137 | None = None
    extension: tuple[int, bytes] | None = None
    if first & 0x10:
        if at + 4 > size:
            raise RtpError("the header extension is cut off")
        profile, words = _EXTENSION_HEADER.unpack_from(data, at)
        at += 4
        if at + 4 * words > size:
            raise RtpError(
                f"the header extension says {4 * words} bytes, but only {size - at} remain"
            )
        ext_data = bytes(data[at : at + 4 * words])
        at += 4 * words
        if profile == ED137_PROFILE:
            ed137 = _decode_ed137(ext_data)
        else:
            extension = (profile, ext_data)
    end = size
    if first & 0x20:
        padding = data[-1]
        if padding == 0 or at + padding > size:
            raise RtpError(f"padding of {padding} bytes does not fit the packet")
        end -= padding
    return RtpPacket(
        payload_type=second & 0x7F,
        sequence=sequence,
        timestamp=timestamp,
        ssrc=ssrc,
        payload=bytes(data[at:end]),
        marker=bool(second & 0x80),
        ed137=ed137,
        csrc=tuple(csrc),
        extension=extension,
    )


def keepalive(sequence: int, timestamp: int, ssrc: int, state: Ed137) -> RtpPacket:
    """An R2S keep-alive: payload type 123, no payload, the sender's PTT/SQU state."""
    return RtpPacket(R2S_PAYLOAD_TYPE, sequence, timestamp, ssrc, ed137=state)
