"""SRTP for links (RFC 3711, AES_CM_128_HMAC_SHA1_80 through libsrtp), with one master key read
from a key file (its format: `gateway.links.key_file`). Make one with

    (echo "# crosspatch link key"; head -c 30 /dev/urandom | base64) > to-blaine.key
    chmod 600 to-blaine.key

and give both gateways of the link the same file. Each direction is its own SRTP stream (each
sender picks a random SSRC, and the keystream depends on it), so one key serves both ways. A
path is used as written (relative to the daemon's working directory): give absolute paths.
A file others can read is used with a warning; a missing, unreadable, short, long or garbled
file is a one-line `KeyFileError` at start-up.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import pylibsrtp

# The key files have their own module (the config loader checks them without libsrtp); their
# names stay importable from here.
from gateway.links.key_file import KEY_BYTES as KEY_BYTES
from gateway.links.key_file import KeyFileError as KeyFileError
from gateway.links.key_file import parse_key_text as parse_key_text
from gateway.links.key_file import read_key_file as read_key_file

_ffi: Any = None
_lib: Any = None
try:  # libsrtp's own entry points, as pylibsrtp binds them (see `_LibsrtpCall`)
    _binding = importlib.import_module("pylibsrtp._binding")
    _ffi, _lib = _binding.ffi, _binding.lib
except (ImportError, AttributeError):  # another pylibsrtp: its Session methods it is
    pass

AUTH_TAG_BYTES = 10


class SrtpError(Exception):
    """A packet that failed SRTP processing; `replay` for a repeated or too old packet (its
    authentication may well be fine), else it failed authentication or was unusable."""

    def __init__(self, message: str, *, replay: bool = False) -> None:
        super().__init__(message)
        self.replay = replay


class _LibsrtpCall:
    """`srtp_protect` or `srtp_unprotect` on one pylibsrtp Session's context, called directly
    with a buffer and length cell kept for it. `Session.protect` makes the same libsrtp call on
    the same context (so the same bytes out and the same errors), but makes a new cffi length
    cell and goes through cffi's buffer wrapper for every packet: that costs about a fifth of
    the whole call, libsrtp's AES and HMAC included, and links make the call twice a frame.
    `make` gives None where pylibsrtp does not look as expected: its Session's methods then."""

    __slots__ = ("_call", "_cbuffer", "_context", "_length", "_view", "room")

    def __init__(self, session: pylibsrtp.Session, name: str, trailer: int) -> None:
        size = 1500  # pylibsrtp's buffer; a packet bigger than `room` is left to the Session
        self._call = getattr(_lib, name)
        self._context = session._srtp[0]  # the Session outlives us: SrtpContext holds both
        buffer = bytearray(size)
        self._view = memoryview(buffer)  # (slice assignment through it is the cheapest copy)
        self._cbuffer = _ffi.from_buffer(buffer)
        self._length = _ffi.new("int *")
        self.room = size - trailer

    @classmethod
    def make(cls, session: pylibsrtp.Session, name: str, trailer: int) -> _LibsrtpCall | None:
        if _ffi is None or _lib is None:
            return None
        try:
            return cls(session, name, trailer)
        except (AttributeError, TypeError, IndexError):
            return None

    def run(self, packet: bytes) -> bytes:
        """The processed packet; raises pylibsrtp.Error as the Session would."""
        size = len(packet)
        self._view[:size] = packet
        length = self._length
        length[0] = size
        status = self._call(self._context, self._cbuffer, length)
        if status:
            errors = pylibsrtp.ERRORS  # what pylibsrtp's own check says
            raise pylibsrtp.Error(errors[status] if status < len(errors) else f"error {status}")
        return self._view[: length[0]].tobytes()


class SrtpContext:
    """Protects what a link sends and checks what it receives, with one master key."""

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise KeyFileError(f"an SRTP key is {KEY_BYTES} bytes (got {len(key)})")
        out = pylibsrtp.Policy(key=key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND)
        inbound = pylibsrtp.Policy(key=key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND)
        self._tx = pylibsrtp.Session(out)
        self._rx = pylibsrtp.Session(inbound)
        tx = _LibsrtpCall.make(self._tx, "srtp_protect", pylibsrtp.SRTP_MAX_TRAILER_LEN)
        rx = _LibsrtpCall.make(self._rx, "srtp_unprotect", 0)
        self._tx_run: Callable[[bytes], bytes] | None = tx.run if tx is not None else None
        self._rx_run: Callable[[bytes], bytes] | None = rx.run if rx is not None else None
        self._tx_room = tx.room if tx is not None else 0
        self._rx_room = rx.room if rx is not None else 0

    def protect(self, packet: bytes) -> bytes:
        """The SRTP packet for an RTP one; raises SrtpError (a repeated index, say)."""
        run = self._tx_run
        try:
            if run is not None and type(packet) is bytes and len(packet) <= self._tx_room:
                return run(packet)
            return self._tx.protect(packet)
        except (pylibsrtp.Error, ValueError, TypeError) as exc:
            raise SrtpError(str(exc)) from None

    def unprotect(self, packet: bytes) -> bytes:
        """The RTP packet inside an SRTP one; raises SrtpError."""
        run = self._rx_run
        try:
            if run is not None and type(packet) is bytes and len(packet) <= self._rx_room:
                return run(packet)
            return self._rx.unprotect(packet)
        except pylibsrtp.Error as exc:
            raise SrtpError(str(exc), replay="replay" in str(exc)) from None
        except (ValueError, TypeError) as exc:
            raise SrtpError(str(exc)) from None
