"""USRP packets (AllStarLink chan_usrp, DVSwitch Analog_Bridge and USRP_Client): one job, to pack
and parse them. docs/protocols.md, "USRP" has the sources.

A packet is a 32-byte header, then a payload:

    0   "USRP"
    4   seq        uint32 big-endian, one counter for every packet a sender sends
    8   memory     uint32 big-endian (0)
    12  keyup      uint32 big-endian: 1 while the sender transmits (PTT)
    16  talkgroup  uint32 big-endian (0: unspecified)
    20  type       uint32 in the byte order of TypeOrder, see below
    24  mpxid      uint32 big-endian (0)
    28  reserved   uint32 big-endian (0)

Voice is exactly 320 bytes: 160 int16 samples at 8 kHz (20 ms), little-endian (ASL sends its
`slin` frames in host order, and every host it runs on is little-endian; SvxLink's dumps agree).
A header alone with keyup 0 is the unkey. DVSwitch's ULAW voice is 160 G.711 mu-law bytes.

The `type` field is the odd one out. ASL compares it without `ntohl`, so on its (little-endian)
hosts the type travels little-endian: TEXT is `02 00 00 00` at byte 20. DVSwitch does the same
(pyUC packs `type << 24` big-endian, which puts the type in byte 20, and its dumps show it there).
Some other implementations (a Go library, parts of SvxLink) read and write it big-endian, so the
order is a choice of the link (`usrp_type_byte_order`), little by default. VOICE is 0 either way,
so plain audio crosses whatever the choice; a PING or TEXT in the wrong order is an unknown type,
and the error says which order would have made sense of it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Literal

import numpy as np

from gateway.codecs.base import Pcm
from gateway.codecs.g711 import ulaw_decode

MAGIC = b"USRP"
HEADER_BYTES = 32
VOICE_SAMPLES = 160
VOICE_BYTES = 2 * VOICE_SAMPLES
ULAW_BYTES = VOICE_SAMPLES
# One Ethernet frame: no USRP sender sends more (ASL reads into 512 bytes).
MAX_PACKET_BYTES = 1500

TypeOrder = Literal["little", "big"]
DEFAULT_TYPE_ORDER: TypeOrder = "little"

_HEAD = struct.Struct(">4sIIII")  # magic, seq, memory, keyup, talkgroup
_TAIL = struct.Struct(">II")  # mpxid, reserved
_U32 = 0xFFFF_FFFF
_SAMPLES_LE = np.dtype("<i2")


class UsrpType(IntEnum):
    VOICE = 0
    DTMF = 1
    TEXT = 2
    PING = 3
    TLV = 4
    VOICE_ADPCM = 5
    VOICE_ULAW = 6


_TYPES = frozenset(int(t) for t in UsrpType)


class UsrpError(ValueError):
    """A datagram that is no USRP packet we take. `reason` is a short key for counting drops
    (`truncated`, `oversized`, `bad_magic`, `unknown_type`, `voice_length`, `ulaw_length`,
    `bad_field`); the message is one line."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class UsrpPacket:
    seq: int
    type: UsrpType = UsrpType.VOICE
    keyup: bool = False
    talkgroup: int = 0
    payload: bytes = b""
    memory: int = 0
    mpxid: int = 0
    reserved: int = 0

    @property
    def is_audio(self) -> bool:
        """Voice (linear or mu-law) with its samples."""
        return bool(self.payload) and self.type in (UsrpType.VOICE, UsrpType.VOICE_ULAW)

    @property
    def is_unkey(self) -> bool:
        """A voice header with no audio and keyup 0: the sender stopped transmitting."""
        return (
            not self.payload
            and not self.keyup
            and self.type in (UsrpType.VOICE, UsrpType.VOICE_ULAW)
        )

    def samples(self) -> Pcm:
        """The audio as 160 int16 samples (linear or mu-law voice); raises UsrpError otherwise."""
        if self.type == UsrpType.VOICE and len(self.payload) == VOICE_BYTES:
            return linear_samples(self.payload)
        if self.type == UsrpType.VOICE_ULAW and len(self.payload) == ULAW_BYTES:
            return ulaw_decode(np.frombuffer(self.payload, dtype=np.uint8))
        raise UsrpError("voice_length", f"a {self.type.name} packet without 20 ms of audio")

    def to_bytes(self, type_order: TypeOrder = DEFAULT_TYPE_ORDER) -> bytes:
        return pack(
            self.seq,
            self.type,
            keyup=self.keyup,
            talkgroup=self.talkgroup,
            payload=self.payload,
            type_order=type_order,
            memory=self.memory,
            mpxid=self.mpxid,
            reserved=self.reserved,
        )


def _u32(name: str, value: int) -> int:
    if not 0 <= value <= _U32:
        raise UsrpError("bad_field", f"USRP {name} {value} does not fit 32 bits")
    return value


def pack(
    seq: int,
    packet_type: UsrpType = UsrpType.VOICE,
    *,
    keyup: bool = False,
    talkgroup: int = 0,
    payload: bytes = b"",
    type_order: TypeOrder = DEFAULT_TYPE_ORDER,
    memory: int = 0,
    mpxid: int = 0,
    reserved: int = 0,
) -> bytes:
    """A packet's bytes. `seq` is taken modulo 2**32 (a sender's counter just wraps); the other
    fields must fit (UsrpError)."""
    head = _HEAD.pack(
        MAGIC, seq & _U32, _u32("memory", memory), int(keyup), _u32("talkgroup", talkgroup)
    )
    kind = int(packet_type).to_bytes(4, type_order)
    tail = _TAIL.pack(_u32("mpxid", mpxid), _u32("reserved", reserved))
    return b"".join((head, kind, tail, payload))


def voice(
    seq: int, pcm: Pcm, *, talkgroup: int = 0, type_order: TypeOrder = DEFAULT_TYPE_ORDER
) -> bytes:
    """A keyed VOICE packet carrying one frame of 160 int16 samples."""
    if pcm.shape != (VOICE_SAMPLES,):
        raise UsrpError("voice_length", f"USRP voice is 160 samples, not {pcm.shape}")
    payload = pcm.astype(_SAMPLES_LE, copy=False).tobytes()
    return pack(seq, keyup=True, talkgroup=talkgroup, payload=payload, type_order=type_order)


def unkey(seq: int, *, talkgroup: int = 0, type_order: TypeOrder = DEFAULT_TYPE_ORDER) -> bytes:
    """The header alone, keyup 0: the end of a transmission (what ASL sends on unkey)."""
    return pack(seq, talkgroup=talkgroup, type_order=type_order)


def ping(seq: int, *, talkgroup: int = 0, type_order: TypeOrder = DEFAULT_TYPE_ORDER) -> bytes:
    """A DVSwitch PING, header only: "I am here" while there is nothing to say."""
    return pack(seq, UsrpType.PING, talkgroup=talkgroup, type_order=type_order)


def linear_samples(payload: bytes) -> Pcm:
    """320 bytes of little-endian int16 as a fresh native int16 array."""
    samples: Pcm = np.frombuffer(payload, dtype=_SAMPLES_LE).astype(np.int16)
    return samples


def parse(data: bytes, type_order: TypeOrder = DEFAULT_TYPE_ORDER) -> UsrpPacket:
    """The packet in `data`; raises UsrpError (one line, with a `reason`) for anything else."""
    size = len(data)
    if size > MAX_PACKET_BYTES:
        raise UsrpError("oversized", f"{size} bytes, more than {MAX_PACKET_BYTES}")
    if size < HEADER_BYTES:
        raise UsrpError("truncated", f"{size} bytes, shorter than the 32-byte USRP header")
    magic, seq, memory, keyup, talkgroup = _HEAD.unpack_from(data)
    if magic != MAGIC:
        raise UsrpError("bad_magic", f"starts with {magic!r}, not b'USRP'")
    raw_type = int.from_bytes(data[20:24], type_order)
    if raw_type not in _TYPES:
        other: TypeOrder = "big" if type_order == "little" else "little"
        swapped = int.from_bytes(data[20:24], other)
        hint = (
            f" (it is type {swapped} in {other}-endian order: usrp_type_byte_order {other}?)"
            if swapped in _TYPES
            else ""
        )
        raise UsrpError("unknown_type", f"unknown packet type 0x{raw_type:08x}{hint}")
    packet_type = UsrpType(raw_type)
    mpxid, reserved = _TAIL.unpack_from(data, 24)
    payload = bytes(data[HEADER_BYTES:])
    if packet_type == UsrpType.VOICE and len(payload) not in (0, VOICE_BYTES):
        raise UsrpError(
            "voice_length",
            f"voice payload of {len(payload)} bytes; USRP voice is 320 (160 samples) or none",
        )
    if packet_type == UsrpType.VOICE_ULAW and len(payload) not in (0, ULAW_BYTES):
        raise UsrpError(
            "ulaw_length",
            f"mu-law payload of {len(payload)} bytes; USRP ULAW voice is 160 or none",
        )
    return UsrpPacket(
        seq=seq,
        type=packet_type,
        keyup=keyup != 0,
        talkgroup=talkgroup,
        payload=payload,
        memory=memory,
        mpxid=mpxid,
        reserved=reserved,
    )
