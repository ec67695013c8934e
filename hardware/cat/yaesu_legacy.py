"""Yaesu legacy 5-byte binary CAT (FT-817, FT-857, FT-897): PROTOCOLS.md section 2 [HL ft817.c].

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
import re
from collections.abc import Callable
from typing import ClassVar, Literal

import serial

from gateway.hardware.cat.base import CatDriver, FramedProtocol, Mode, RigIdentity, Tuning
from gateway.hardware.cat.errors import CatError, CatProtocolError, CatRejected

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

CTCSS_TONES: tuple[float, ...] = (
    67.0, 69.3, 71.9, 74.4, 77.0, 79.7, 82.5, 85.4, 88.5, 91.5, 94.8, 97.4, 100.0, 103.5,
    107.2, 110.9, 114.8, 118.8, 123.0, 127.3, 131.8, 136.5, 141.3, 146.2, 151.4, 156.7, 159.8,
    162.2, 165.5, 167.9, 171.3, 173.8, 177.3, 179.9, 183.5, 186.2, 189.9, 192.8, 196.6, 199.5,
    203.5, 206.5, 210.7, 218.1, 225.7, 229.1, 233.6, 241.8, 250.3, 254.1,
)  # fmt: skip
_DCS_TEXT = """
    023 025 026 031 032 036 043 047 051 053 054 065 071 072 073 074 114 115 116 122 125 131
    132 134 143 145 152 155 156 162 165 172 174 205 212 223 225 226 243 244 245 246 251 252 255
    261 263 265 266 271 274 306 311 315 325 331 332 343 346 351 356 364 365 371 411 412 413 423
    431 432 445 446 452 454 455 462 464 465 466 503 506 516 523 526 532 546 565 606 612 624 627
    631 632 654 662 664 703 712 723 731 732 734 743 754"""
DCS_CODES: frozenset[str] = frozenset(_DCS_TEXT.split())
_DCS_RE = re.compile(r"(\d{3})([NI]?)")

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
        from gateway.hardware.serial_link import open_serial

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
        # The transport calls connection_made on the next loop turn; until then the base's
        # request() sees the port as closed.
        for _ in range(10):
            if protocol.transport is not None:
                break
            await asyncio.sleep(0)
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

    async def tune_and_verify(self, tuning: Tuning) -> Tuning:
        """`set_tuning` (which already checks frequency and mode with `03`), then the read-back
        that the gateway compares; returns what the radio reports."""
        await self.set_tuning(tuning)
        return await self.read_tuning()

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
        tenths = round(hz * 10)
        if abs(hz * 10 - tenths) > 1e-6 or tenths not in {round(t * 10) for t in CTCSS_TONES}:
            raise CatError(f"{self.name}: CTCSS {hz:g} Hz is not in the radio's tone table")
        return tenths

    def _dcs_code(self, dcs: str) -> str:
        match = _DCS_RE.fullmatch(dcs.upper())
        if match is None or match.group(1) not in DCS_CODES:
            raise CatError(f"{self.name}: DCS code {dcs!r} is not in the radio's code table")
        if match.group(2) == "I":
            raise CatError(f"{self.name}: DCS {dcs} is inverted; this protocol has no polarity")
        return match.group(1)


def _length_is(length: int) -> Callable[[bytes], bool]:
    return lambda frame: len(frame) == length
