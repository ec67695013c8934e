"""Yaesu legacy 5-byte binary CAT (FT-817, FT-857, FT-897): docs/protocols.md, "Yaesu legacy CAT"
[HL ft817.c].

Every command is `P1 P2 P3 P4 OP`. Only the reads answer: `03` (frequency + mode, 5 bytes),
`E7` (RX status, 1 byte) and `F7` (TX status, 1 byte). The replies carry no terminator, no
checksum and no command echo, so the length of a reply is known only from the command that asked
for it.

Framing (the base's static `framer` contract is not enough here):
- The driver tells the framer the reply length it is waiting for before each read (`_expect`),
  so this class overrides `_connect` to give `FramedProtocol` the bound, instance-aware
  `_frame`. The static `framer` is the 5-byte `03` reply framer, which `_frame` uses.
- While nothing is expected every received byte is noise and dropped, and the receive buffer is
  cleared on every write (the protocol is strictly half-duplex: anything buffered before a
  command is noise or a stale half reply), so a truncated reply cannot merge with the retry's.
- A `03` reply is accepted only as 4 valid BCD bytes plus a known mode byte; garbage before or
  inside it is skipped by sliding one byte at a time, and a reply spoiled beyond that times out
  and the read is retried. A 1-byte status reply cannot be told from a garbage byte: that is a
  limit of the protocol.

Choices where the sources leave room:
- **No set command is answered** (HL does not wait), and the protocol has no reject reply: a rig
  ignores what it refuses. So `set_tuning` reads frequency and mode back with `03` and raises
  `CatRejected` naming the command the radio did not take; `set_ptt` confirms with `F7`.
- **Repeater/split channel:** `09` shift (`49` +, `09` -, `89` simplex) and `F9` offset, the
  difference between `tx_hz` and `rx_hz` (8 BCD digits in 10 Hz units, like `01`).
- **Tones:** CTCSS is tone squelch (`0A 2A`: encode and decode), DCS is `0A 0A`; both set the
  same code for TX and RX (`0B` in 0.1 Hz BCD, `0C` BCD). Only normal DCS polarity exists here.
- **Read-back limits:** `03` is the only read of the tuning; offset and tones cannot be read on
  these rigs. `read_tuning` reports them as last set by this driver while the radio still reads
  that frequency and mode, and as simplex without tones once it has been retuned elsewhere.
- **E7 squelch bit 7:** HL says 1 = squelch closed, PM says the opposite:
  `squelch_bit_set_means_closed` (default True, HL).
- **F7 keyed reading:** `f7_keyed_when` = "bit7_clear" (HL ft857/ft897, default; the byte is
  0xFF in receive), "not_ff" (HL ft817) or "bit7_set" (PM).
- **Probe:** these rigs have no ID command; the probe reads frequency and mode (`03`) and
  reports "FT-817/857/897 family".
- **Serial 8N2:** `open_serial` opens 8N1; this driver switches the open port to two stop bits
  (pyserial reconfigures an open port; ignored for socket:// URLs).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import ClassVar, Literal

import serial

from gateway.hardware.cat.base import CatDriver, FramedProtocol, Mode, RigIdentity, Tuning
from gateway.hardware.cat.errors import CatError, CatProtocolError, CatRejected
from gateway.hardware.cat.tones import ctcss_index, dcs_code

log = logging.getLogger(__name__)

OP_SET_FREQ = 0x01
OP_READ_FREQ_MODE = 0x03
OP_SET_MODE = 0x07
OP_PTT_ON = 0x08
OP_PTT_OFF = 0x88
OP_RPT_SHIFT = 0x09
OP_TONE_MODE = 0x0A
OP_CTCSS = 0x0B
OP_DCS = 0x0C
OP_RX_STATUS = 0xE7
OP_TX_STATUS = 0xF7
OP_RPT_OFFSET = 0xF9

SHIFT_MINUS, SHIFT_PLUS, SHIFT_SIMPLEX = 0x09, 0x49, 0x89
TONE_DCS, TONE_TSQL, TONE_OFF = 0x0A, 0x2A, 0x8A

MODE_BYTES: dict[Mode, int] = {"fm": 0x08, "nfm": 0x88, "am": 0x04}
# Every mode byte a 03 reply may carry (bit 0x80 = narrow), for naming and framing.
MODE_NAMES: dict[int, str] = {
    0x00: "LSB",
    0x01: "USB",
    0x02: "CW",
    0x03: "CWR",
    0x04: "AM",
    0x06: "WFM",
    0x08: "FM",
    0x0A: "DIG",
    0x0C: "PKT",
}

MAX_10HZ = 10**8 - 1  # 8 BCD digits of 10 Hz

F7Reading = Literal["bit7_clear", "not_ff", "bit7_set"]


# ---------------------------------------------------------------------- bytes
def to_bcd(value: int, digits: int) -> bytes:
    """Big-endian packed BCD, two digits a byte: to_bcd(1407000, 8) == b'\\x01\\x40\\x70\\x00'."""
    text = f"{value:0{digits}d}"
    if len(text) != digits:
        raise ValueError(f"{value} does not fit {digits} BCD digits")
    return bytes(int(text[i]) << 4 | int(text[i + 1]) for i in range(0, digits, 2))


def from_bcd(data: bytes) -> int | None:
    """The value of big-endian packed BCD, or None when a nibble is not a decimal digit."""
    value = 0
    for byte in data:
        high, low = byte >> 4, byte & 0x0F
        if high > 9 or low > 9:
            return None
        value = value * 100 + high * 10 + low
    return value


def command(op: int, params: bytes = b"\x00\x00\x00\x00") -> bytes:
    assert len(params) == 4
    return params + bytes([op])


def _plausible_freq_mode(frame: bytes) -> bool:
    return from_bcd(frame[:4]) is not None and (frame[4] & 0x7F) in MODE_NAMES


def _mode_name(byte: int) -> str:
    name = MODE_NAMES.get(byte & 0x7F, f"0x{byte:02X}")
    return name + ("-N" if byte & 0x80 else "")


class _HalfDuplexProtocol(FramedProtocol):
    """Drops what is buffered whenever a command goes out: replies only follow commands."""

    def write(self, data: bytes) -> None:
        self._buffer = b""
        super().write(data)


class YaesuLegacyDriver(CatDriver):
    name = "yaesu-legacy"
    # The one thing a 1-byte reply could be confused with is stray noise; keep the defaults.
    timeout_s: ClassVar[float] = 1.0
    retries: ClassVar[int] = 2

    def __init__(
        self,
        url: str,
        baudrate: int = 9600,
        *,
        squelch_bit_set_means_closed: bool = True,
        f7_keyed_when: F7Reading = "bit7_clear",
        rts: bool = False,
        dtr: bool = False,
    ) -> None:
        super().__init__(url, baudrate, rts=rts, dtr=dtr)
        self.squelch_bit_set_means_closed = squelch_bit_set_means_closed
        self.f7_keyed_when: F7Reading = f7_keyed_when
        self._expect = 0  # reply length the framer waits for; 0 = nothing asked
        self._exchange_lock = asyncio.Lock()  # outside the base lock: _expect belongs to one read
        self._last: Tuning | None = None

    # ------------------------------------------------------------------ framing
    @staticmethod
    def framer(buffer: bytes) -> tuple[int, bytes | None]:
        """Cuts a `03` reply (4 BCD bytes + mode byte), sliding past bytes that cannot start
        one."""
        if len(buffer) < 5:
            return 0, None
        if _plausible_freq_mode(buffer[:5]):
            return 5, buffer[:5]
        return 1, None

    def _frame(self, buffer: bytes) -> tuple[int, bytes | None]:
        expect = self._expect
        if expect == 0:
            return len(buffer), None  # nobody asked: noise
        if expect == 5:
            return self.framer(buffer)
        if len(buffer) < expect:
            return 0, None
        return expect, buffer[:expect]

    async def _connect(self) -> tuple[asyncio.BaseTransport, FramedProtocol]:
        from gateway.hardware.serial.link import open_serial

        transport, protocol = await open_serial(
            self.url,
            self.baudrate,
            lambda: _HalfDuplexProtocol(self._frame, self._on_frame),
            rts=self._rts,
            dtr=self._dtr,
        )
        port = getattr(transport, "serial", None)
        if isinstance(port, serial.SerialBase):
            # 8N2 per the manuals; open_serial has no stop-bits argument (yet).
            with contextlib.suppress(serial.SerialException, OSError, ValueError):
                port.stopbits = serial.STOPBITS_TWO
        return transport, protocol

    # ------------------------------------------------------------------ exchanges
    async def _send(self, op: int, params: bytes, what: str) -> None:
        """A command the rig does not answer."""
        async with self._exchange_lock:
            await self.request(command(op, params), None, what)

    async def _read(self, op: int, length: int, what: str) -> bytes:
        async with self._exchange_lock:
            self._expect = length
            try:
                return await self.request(command(op), _length_is(length), what)
            finally:
                self._expect = 0

    async def _read_freq_mode(self, what: str) -> tuple[int, int]:
        frame = await self._read(OP_READ_FREQ_MODE, 5, what)
        tens = from_bcd(frame[:4])
        if tens is None:  # the framer only passes BCD; kept for a clear error if that changes
            raise CatProtocolError(f"{self.name}: {what} answered {frame.hex(' ')}, not BCD")
        return tens * 10, frame[4]

    # ------------------------------------------------------------------ the rig API
    async def probe(self) -> RigIdentity:
        hz, mode = await self._read_freq_mode("probe (read frequency and mode, 03)")
        return RigIdentity(
            "FT-817/857/897 family",
            f"no ID command on these rigs; reads {hz / 1e6:.5f} MHz {_mode_name(mode)}",
        )

    async def set_tuning(self, tuning: Tuning) -> None:
        plan = self._plan(tuning)  # every check before the first byte goes out
        for op, params, what in plan:
            await self._send(op, params, what)
        hz, mode = await self._read_freq_mode("read back frequency and mode (03)")
        if hz != tuning.rx_hz:
            raise CatRejected(
                f"{self.name}: the radio did not take set frequency (01): asked "
                f"{tuning.rx_hz / 1e6:.5f} MHz, it reads {hz / 1e6:.5f} MHz"
            )
        if mode != MODE_BYTES[tuning.mode]:
            raise CatRejected(
                f"{self.name}: the radio did not take set mode (07): asked "
                f"{tuning.mode.upper()}, it reads {_mode_name(mode)}"
            )
        self._last = tuning

    async def read_tuning(self) -> Tuning:
        hz, byte = await self._read_freq_mode("read frequency and mode (03)")
        modes = {value: key for key, value in MODE_BYTES.items()}
        if byte not in modes:
            raise CatProtocolError(
                f"{self.name}: the radio is in mode {_mode_name(byte)}, not FM, FM-N or AM"
            )
        mode = modes[byte]
        last = self._last
        if last is not None and last.rx_hz == hz and last.mode == mode:
            return last
        if last is not None:
            log.warning("%s: radio retuned elsewhere; offset and tones unknown", self.name)
        return Tuning(rx_hz=hz, tx_hz=hz, mode=mode)

    async def set_ptt(self, on: bool) -> None:
        if not on:
            await self._unkey()
            return
        try:
            await self._send(OP_PTT_ON, b"\x00" * 4, "PTT on (08)")
            if not await self._keyed("read TX status (F7) after PTT on"):
                raise CatRejected(f"{self.name}: the radio did not key on PTT on (08)")
        except BaseException:
            # Whatever went wrong, the transmitter must not stay keyed.
            with contextlib.suppress(CatError):
                await self._send(OP_PTT_OFF, b"\x00" * 4, "PTT off (88) after a failed key")
            raise

    async def _unkey(self) -> None:
        for attempt in range(2):
            await self._send(OP_PTT_OFF, b"\x00" * 4, "PTT off (88)")
            if not await self._keyed("read TX status (F7) after PTT off"):
                return
            log.warning("%s: still keyed after PTT off (try %d)", self.name, attempt + 1)
        raise CatRejected(f"{self.name}: the radio is still transmitting after PTT off (88)")

    async def _keyed(self, what: str) -> bool:
        (status,) = await self._read(OP_TX_STATUS, 1, what)
        if self.f7_keyed_when == "bit7_clear":
            return not status & 0x80
        if self.f7_keyed_when == "not_ff":
            return status != 0xFF
        return bool(status & 0x80)

    async def read_busy(self) -> bool:
        (status,) = await self._read(OP_RX_STATUS, 1, "read RX status (E7)")
        bit_set = bool(status & 0x80)
        closed = bit_set if self.squelch_bit_set_means_closed else not bit_set
        return not closed

    # ------------------------------------------------------------------ checks
    def _plan(self, tuning: Tuning) -> list[tuple[int, bytes, str]]:
        """The commands for `tuning`, or a CatError if the protocol cannot say it."""
        rx = self._tens("receive frequency", tuning.rx_hz)
        tx = self._tens("transmit frequency", tuning.tx_hz)
        if tuning.mode not in MODE_BYTES:
            raise CatError(f"{self.name}: mode {tuning.mode!r} is not one of fm, nfm, am")
        if tuning.ctcss_hz is not None and tuning.dcs is not None:
            raise CatError(f"{self.name}: a channel has CTCSS or DCS, not both")
        plan: list[tuple[int, bytes, str]] = [
            (OP_SET_FREQ, to_bcd(rx, 8), "set frequency (01)"),
            (OP_SET_MODE, bytes([MODE_BYTES[tuning.mode], 0, 0, 0]), "set mode (07)"),
        ]
        if tx == rx:
            plan.append((OP_RPT_SHIFT, bytes([SHIFT_SIMPLEX, 0, 0, 0]), "repeater shift (09)"))
        else:
            shift = SHIFT_PLUS if tx > rx else SHIFT_MINUS
            plan.append((OP_RPT_SHIFT, bytes([shift, 0, 0, 0]), "repeater shift (09)"))
            plan.append((OP_RPT_OFFSET, to_bcd(abs(tx - rx), 8), "repeater offset (F9)"))
        if tuning.ctcss_hz is not None:
            tenths = self._tone_tenths(tuning.ctcss_hz)
            plan.append((OP_CTCSS, to_bcd(tenths, 4) * 2, "CTCSS tone (0B)"))
            plan.append((OP_TONE_MODE, bytes([TONE_TSQL, 0, 0, 0]), "tone mode (0A)"))
        elif tuning.dcs is not None:
            code = self._dcs_code(tuning.dcs)
            plan.append((OP_DCS, to_bcd(int(code), 4) * 2, "DCS code (0C)"))
            plan.append((OP_TONE_MODE, bytes([TONE_DCS, 0, 0, 0]), "tone mode (0A)"))
        else:
            plan.append((OP_TONE_MODE, bytes([TONE_OFF, 0, 0, 0]), "tone mode (0A)"))
        return plan

    def _tens(self, what: str, hz: int) -> int:
        if hz <= 0 or hz % 10 or hz // 10 > MAX_10HZ:
            raise CatError(
                f"{self.name}: {what} {hz} Hz cannot be sent: the protocol carries 10 Hz steps "
                f"up to {MAX_10HZ * 10} Hz"
            )
        return hz // 10

    def _tone_tenths(self, hz: float) -> int:
        # Exact tones only (to 1e-6 of a tenth of a hertz): the 0B field carries tenths.
        message = f"{self.name}: CTCSS {hz:g} Hz is not in the radio's tone table"
        ctcss_index(hz, message, tolerance_hz=1e-7)
        return round(hz * 10)

    def _dcs_code(self, dcs: str) -> str:
        message = f"{self.name}: DCS code {dcs!r} is not in the radio's code table"
        code = dcs_code(dcs.upper(), message)
        if code.inverted:
            raise CatError(f"{self.name}: DCS {dcs} is inverted; this protocol has no polarity")
        return code.digits


def _length_is(length: int) -> Callable[[bytes], bool]:
    return lambda frame: len(frame) == length
