"""What every CAT driver offers, and the layers they share.

Three layers, one job each (as zigpy-znp's uart / api / application):
- `FramedProtocol` (an asyncio.Protocol) owns the byte buffer and framing only: a pure framer
  function cuts whole frames out of the buffer and skips noise; whole frames are handed up.
- `CatDriver` owns request/response matching, the one-request-at-a-time lock, timeouts and
  bounded retries, and the link state.
- The rig API (`probe`, `set_tuning`, `read_tuning`, `set_ptt`, `read_busy`) never sees bytes.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, Literal, Self

from gateway.hardware.cat.errors import CatLinkLost, CatTimeout, CatVerifyError

log = logging.getLogger(__name__)

Mode = Literal["fm", "nfm", "am"]

# A framer takes the receive buffer and returns (bytes consumed, frame or None). Consumed 0 with
# no frame means "wait for more bytes"; consumed > 0 with no frame means noise was skipped.
Framer = Callable[[bytes], tuple[int, bytes | None]]


def mhz(hz: int) -> str:
    """A frequency for people, to the hertz: `145.500000 MHz`."""
    return f"{hz / 1e6:.6f} MHz"


@dataclass(frozen=True)
class Tuning:
    """A channel as a radio is tuned to it. `tx_hz` differs from `rx_hz` for a repeater or split
    channel. Tones: CTCSS in Hz, or a DCS code like "023N" (N normal, I inverted); None = off."""

    rx_hz: int
    tx_hz: int
    mode: Mode = "nfm"
    ctcss_hz: float | None = None
    dcs: str | None = None

    def describe(self) -> str:
        """For people: `rx 148.10000 / tx 148.70000 MHz NFM, CTCSS 100 Hz`."""
        rx, tx = self.rx_hz / 1e6, self.tx_hz / 1e6
        freq = f"{rx:.5f} MHz" if self.rx_hz == self.tx_hz else f"rx {rx:.5f} / tx {tx:.5f} MHz"
        if self.ctcss_hz:
            tone = f", CTCSS {self.ctcss_hz:g} Hz"
        else:
            tone = f", DCS {self.dcs}" if self.dcs else ", no tone"
        return f"{freq} {self.mode.upper()}{tone}"

    def differences(self, want: Tuning) -> list[str]:
        """Each field in which this reading differs from `want`, in the units people tune in:
        `tx 145.005000 MHz (wanted 145.000000 MHz)`, `CTCSS 103.5 Hz (wanted 100 Hz)`."""
        return [
            f"{label} {_field_text(name, getattr(self, name))} "
            f"(wanted {_field_text(name, getattr(want, name))})"
            for name, label in _FIELD_LABELS.items()
            if getattr(self, name) != getattr(want, name)
        ]


_FIELD_LABELS = {"rx_hz": "rx", "tx_hz": "tx", "mode": "mode", "ctcss_hz": "CTCSS", "dcs": "DCS"}


def _field_text(name: str, value: object) -> str:
    if value is None:
        return "none"
    if name in ("rx_hz", "tx_hz") and isinstance(value, int):
        return mhz(value)
    if name == "ctcss_hz" and isinstance(value, float | int):
        return f"{value:g} Hz"
    return str(value)


@dataclass(frozen=True)
class RigIdentity:
    model: str  # what the radio says it is, e.g. "TS-2000" or "IC-7300 (CI-V 0x94)"
    detail: str = ""


class FramedProtocol(asyncio.Protocol):
    """Buffers received bytes and hands whole frames to `on_frame`."""

    def __init__(self, framer: Framer, on_frame: Callable[[bytes], None]) -> None:
        self._framer = framer
        self._on_frame = on_frame
        self._buffer = b""
        self.transport: asyncio.Transport | None = None
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while self._buffer:
            consumed, frame = self._framer(self._buffer)
            if consumed == 0:
                return
            self._buffer = self._buffer[consumed:]
            if frame is not None:
                self._on_frame(frame)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if not self.lost.done():
            self.lost.set_result(None)

    def write(self, data: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            raise CatLinkLost("the radio's line is closed")
        self.transport.write(data)


class CatDriver(ABC):
    """A radio family's CAT protocol behind the rig API. Subclasses give the framer and the
    protocol; every public method raises only `CatError` subclasses, each one clear sentence.

    `url` is a serial device (`/dev/ttyUSB0`) or a pyserial URL (`socket://host:port`); RTS and
    DTR are held at `rts` / `dtr` from before the port opens (see `serial_link`).
    """

    name: ClassVar[str]
    timeout_s: ClassVar[float] = 1.0
    retries: ClassVar[int] = 2

    def __init__(self, url: str, baudrate: int, *, rts: bool = False, dtr: bool = False) -> None:
        self.url = url
        self.baudrate = baudrate
        self._rts = rts
        self._dtr = dtr
        self._lock = asyncio.Lock()
        self._protocol: FramedProtocol | None = None
        self._transport: asyncio.BaseTransport | None = None
        self._match: Callable[[bytes], bool] | None = None
        self._reply: asyncio.Future[bytes] | None = None

    # ------------------------------------------------------------------ protocol hooks
    @staticmethod
    @abstractmethod
    def framer(buffer: bytes) -> tuple[int, bytes | None]:
        """Cuts one frame from the front of `buffer` (see `Framer`)."""

    def unsolicited(self, frame: bytes) -> None:
        """A frame nobody asked for (auto-information, another controller's traffic)."""
        log.debug("%s: unsolicited %r", self.name, frame)

    # ------------------------------------------------------------------ link
    async def _connect(self) -> tuple[asyncio.BaseTransport, FramedProtocol]:
        from gateway.hardware.serial.link import open_serial

        return await open_serial(
            self.url,
            self.baudrate,
            lambda: FramedProtocol(self.framer, self._on_frame),
            rts=self._rts,
            dtr=self._dtr,
        )

    async def open(self) -> None:
        self._transport, self._protocol = await self._connect()
        # Transports announce themselves with call_soon: let connection_made run before the
        # first request, or it would find the line "not open".
        for _ in range(10):
            if self._protocol.transport is not None:
                return
            await asyncio.sleep(0)

    async def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
        self._transport = None
        self._protocol = None

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def is_open(self) -> bool:
        return self._protocol is not None and self._protocol.transport is not None

    def _write_now(self, payload: bytes) -> bool:
        """Best effort: writes `payload` straight to the line, outside the request lock and
        without awaiting, so it goes out even when the request in flight was cancelled (the
        unkey after a failed key-up; any answer is dropped as unsolicited). Never raises: the
        link may be gone. True when the bytes were handed to the transport."""
        protocol = self._protocol
        if protocol is None:
            return False
        try:
            protocol.write(payload)
        except Exception:
            return False
        return True

    def _on_frame(self, frame: bytes) -> None:
        reply, match = self._reply, self._match
        if reply is not None and not reply.done() and match is not None and match(frame):
            reply.set_result(frame)
        else:
            self.unsolicited(frame)

    async def request(
        self, payload: bytes, match: Callable[[bytes], bool] | None, what: str
    ) -> bytes:
        """Sends `payload` and waits for the first frame that `match` accepts, one request at
        a time, with the driver's timeout and bounded retries. With `match` None, nothing is
        awaited (commands the protocol does not answer) and b"" is returned."""
        async with self._lock:
            protocol = self._protocol
            if protocol is None or protocol.transport is None:
                raise CatLinkLost(f"{self.name}: {self.url} is not open")
            loop = asyncio.get_running_loop()
            try:
                for _ in range(self.retries + 1):
                    reply: asyncio.Future[bytes] = loop.create_future()
                    self._match, self._reply = match, reply
                    protocol.write(payload)
                    if match is None:
                        return b""
                    waiters: set[asyncio.Future[bytes] | asyncio.Future[None]] = {
                        reply,
                        protocol.lost,
                    }
                    await asyncio.wait(
                        waiters, timeout=self.timeout_s, return_when=asyncio.FIRST_COMPLETED
                    )
                    if reply.done():
                        return reply.result()
                    if protocol.lost.done():
                        raise CatLinkLost(f"{self.name}: {self.url} went away during {what}")
            finally:
                self._match, self._reply = None, None
            raise CatTimeout(
                f"{self.name}: no answer to {what} after {self.retries + 1} tries of "
                f"{self.timeout_s:g} s"
            )

    # ------------------------------------------------------------------ the rig API
    @abstractmethod
    async def probe(self) -> RigIdentity:
        """Asks the radio what it is (and fails clearly if nothing or something else answers)."""

    @abstractmethod
    async def set_tuning(self, tuning: Tuning) -> None:
        """Tunes receive and transmit frequency (split or repeater offset), mode and tones."""

    @abstractmethod
    async def read_tuning(self) -> Tuning:
        """What the radio reports it is tuned to, for verification after `set_tuning`."""

    def expected(self, tuning: Tuning) -> Tuning:
        """What `read_tuning` reports once `tuning` is set: `tuning` itself unless the driver
        reads some field back in another form (narrow FM as FM, "023" as "023N", ...)."""
        return tuning

    async def tune_and_verify(self, tuning: Tuning) -> Tuning:
        """Tunes, reads everything back, and raises `CatVerifyError` naming every field that
        differs from `expected(tuning)`; returns what the radio reports."""
        await self.set_tuning(tuning)
        got = await self.read_tuning()
        want = self.expected(tuning)
        if got != want:
            diffs = ", ".join(got.differences(want))
            raise CatVerifyError(f"{self.name}: after tuning the radio reports {diffs}")
        return got

    @abstractmethod
    async def set_ptt(self, on: bool) -> None: ...

    @abstractmethod
    async def read_busy(self) -> bool:
        """True while the radio's squelch is open (someone is transmitting to it)."""
