"""Icom CI-V (IC-7300, ID-5100, IC-2730, ...): binary frames on a shared bus.

A frame is `FE FE <to> <from> <cmd> [sub] [data] FD` (docs/protocols.md, "Icom CI-V"). The radio
answers a set command with OK `FB` or NG `FA`, and a read with the command echoed plus its data.

Choices where the sources leave room (say so if a radio differs):
- **Echo.** On a single-wire bus (or USB with "CI-V USB echo" on) the controller reads its own
  frame back first. Any frame identical to the one just sent is skipped, so `echo=None`
  (auto-detect) works either way; `echo=True` adds a clearer error when nothing, not even the
  echo, comes back ("the CI-V bus does not echo": HL's BUSERROR). Frames for other addresses or
  from other radios are skipped, so the bus may be shared.
- **Collisions.** A frame or jam ending in `FC` is a collision: the command is resent after a
  short back-off (`collision_retries` times, `collision_backoff_s` apart; HL uses 20 x 500 ms,
  shorter here because a gateway must not stall), then CatError "bus busy".
- **Transmit offset: duplex, not split.** A repeater channel is what LMR needs, so `tx_hz` is set
  as a duplex offset: `0F 10/11/12` (simplex / DUP- / DUP+) and `0D` with the offset as 3 BCD
  bytes, least-significant pair first, in 100 Hz units (read back with `0F` and `0C`). The
  offset must be a multiple of 100 Hz below 100 MHz.
- **Narrow FM** is mode `05` with filter byte `02` (FIL2): `06 05 01` = FM, `06 05 02` = FM
  narrow, as on the IC-7300 (`NARROW_FILTER`). A read of filter 2 or 3 is reported as "nfm".
- **Tones.** CTCSS sets both the repeater tone (`1B 00`) and the TSQL tone (`1B 01`) and turns on
  TSQL (`16 43 01`), so the radio encodes and decodes it; DCS sets `1B 02` and `16 4B 01`. The
  other tone enables are turned off first. DCS polarity byte: `00` normal, `11` inverted (TX and
  RX nibbles; HL always sends `00`, the `11` reading is UNVERIFIED). A radio without DTCS
  answers NG, reported as CatRejected.
- **Probe** is `19 00` (read transceiver ID). The ID names the model (`MODELS`: each model's
  factory CI-V address); the configured `address` is only where the radio is reached, so a
  radio renumbered to share a bus is still named by its ID (inferred: Hamlib's probe reads the
  ID from the data and the address from the frame, and tells the two apart). An ID not in
  `MODELS` is refused in one line naming it.
  Tones go on the wire in 0.1 Hz, not as table numbers, so no model changes what a tone means;
  every model here has the 50 standard tones (Hamlib `common_ctcss_list` or `full_ctcss_list`),
  and one it lacks is answered NG.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import ClassVar

from gateway.hardware.cat.base import CatDriver, Mode, RigIdentity, Tuning
from gateway.hardware.cat.errors import CatError, CatProtocolError, CatRejected, CatTimeout
from gateway.hardware.cat.tones import ctcss_index, dcs_code

log = logging.getLogger(__name__)

PREAMBLE = b"\xfe\xfe"
END = 0xFD
OK = 0xFB
NG = 0xFA
COLLISION = 0xFC
COLLISION_FRAME = b"\xfc"  # what the framer hands up for a collision (jam or FC-terminated)
MAX_FRAME = 64  # longest frame we accept before resynchronising

# Transceiver IDs (`19 00`), which are the models' factory CI-V addresses: Hamlib icom.c
# `icom_addr_list` and each rig's `re_civ_addr` (ic7300.c: IC-7300, IC-7300MK2, IC-9700, IC-705,
# IC-905; ic7100.c, ic7000.c, ic7410.c, ic7600.c, ic7610.c, ic7700.c, ic7760.c, ic7800.c,
# ic785x.c, ic910.c, ic9100.c, id4100.c, id5100.c, ic2730.c); docs/protocols.md,
# "Icom CI-V". FM transceivers only: the gateway tunes FM and AM channels with CTCSS or DCS.
MODELS: dict[int, str] = {
    0x94: "IC-7300",
    0xB6: "IC-7300MK2",
    0xA2: "IC-9700",
    0xA4: "IC-705",
    0xAC: "IC-905",
    0x88: "IC-7100",
    0x70: "IC-7000",
    0x80: "IC-7410",
    0x7A: "IC-7600",
    0x98: "IC-7610",
    0x74: "IC-7700",
    0xB2: "IC-7760",
    0x6A: "IC-7800",
    0x8E: "IC-7850/7851",
    0x60: "IC-910",
    0x7C: "IC-9100",
    0x9A: "ID-4100",
    0x8C: "ID-5100",
    0x90: "IC-2730",
}

MODE_FM, MODE_AM = 0x05, 0x02
FILTER_WIDE = 0x01
DUP_SIMPLEX, DUP_MINUS, DUP_PLUS = 0x10, 0x11, 0x12


# ---------------------------------------------------------------------- BCD helpers
def to_bcd_le(value: int, nbytes: int) -> bytes:
    """`value` as BCD, least-significant pair first (CI-V frequencies and offsets)."""
    digits = f"{value:0{nbytes * 2}d}"
    if len(digits) > nbytes * 2:
        raise ValueError(f"{value} does not fit in {nbytes} BCD bytes")
    return bytes(int(digits[i : i + 2], 16) for i in range(len(digits) - 2, -1, -2))


def from_bcd_le(data: bytes) -> int:
    return from_bcd_be(data[::-1])


def to_bcd_be(value: int, nbytes: int) -> bytes:
    return to_bcd_le(value, nbytes)[::-1]


def from_bcd_be(data: bytes) -> int:
    text = data.hex()
    if not text.isdigit():
        raise ValueError(f"not BCD: {data.hex(' ')}")
    return int(text)


def frame(to: int, src: int, cmd: int, body: bytes = b"") -> bytes:
    return PREAMBLE + bytes((to, src, cmd)) + body + bytes((END,))


class IcomDriver(CatDriver):
    """CI-V driver; `address` is the radio's CI-V address (0x94 IC-7300, 0x8C ID-5100)."""

    name = "icom"
    collision_retries: ClassVar[int] = 5
    collision_backoff_s: ClassVar[float] = 0.05
    NARROW_FILTER: ClassVar[int] = 0x02

    def __init__(
        self,
        url: str,
        baudrate: int = 19200,
        *,
        address: int,
        controller: int = 0xE0,
        echo: bool | None = None,
        rts: bool = False,
        dtr: bool = False,
    ) -> None:
        super().__init__(url, baudrate, rts=rts, dtr=dtr)
        for label, value in (("address", address), ("controller", controller)):
            if not 0x01 <= value <= 0xEF:
                raise CatError(f"icom: CI-V {label} {value:#04x} is outside 0x01-0xEF")
        self.address = address
        self.controller = controller
        self.echo = echo
        self.echo_seen: bool | None = None  # learnt from traffic when echo is None

    # ------------------------------------------------------------------ framing
    @staticmethod
    def framer(buffer: bytes) -> tuple[int, bytes | None]:
        """Cuts `FE FE ... FD` frames; a collision (a jam of `FC`, or a frame cut short by `FC`)
        comes out as `COLLISION_FRAME`. Extra preamble bytes are dropped, so frames come out as
        `FE FE to from cmd ... FD`; bytes outside a frame are skipped."""
        start = next((i for i, b in enumerate(buffer) if b in (0xFE, COLLISION)), -1)
        if start < 0:
            return len(buffer), None
        if buffer[start] == COLLISION:
            end = start
            while end < len(buffer) and buffer[end] == COLLISION:
                end += 1
            return end, COLLISION_FRAME
        if start > 0:
            return start, None  # noise before the preamble
        if len(buffer) < 2:
            return 0, None
        if buffer[1] != 0xFE:
            return 1, None  # a lone FE is noise
        body = 2
        while body < len(buffer) and buffer[body] == 0xFE:
            body += 1  # extra preamble (wake-up) bytes
        for i in range(body, min(len(buffer), body + MAX_FRAME)):
            b = buffer[i]
            if b == END:
                content = buffer[body:i]
                if len(content) < 3:  # to, from, cmd at least
                    return i + 1, None
                return i + 1, PREAMBLE + content + bytes((END,))
            if b == COLLISION:
                while i + 1 < len(buffer) and buffer[i + 1] == COLLISION:
                    i += 1  # the rest of the jam
                return i + 1, COLLISION_FRAME
            if b == 0xFE:
                return i, None  # truncated frame: a new preamble started, resync there
        if len(buffer) - body >= MAX_FRAME:
            return body, None  # no terminator within reach: drop the preamble, resync
        return 0, None

    # ------------------------------------------------------------------ exchanges
    def _matcher(self, sent: bytes, cmd: int, sub: bytes, read: bool) -> Callable[[bytes], bool]:
        def match(reply: bytes) -> bool:
            if reply == COLLISION_FRAME:
                return True
            if reply == sent:  # our own echo on the bus
                self.echo_seen = True
                return False
            if reply[2] != self.controller or reply[3] != self.address:
                return False  # another station's traffic on a shared bus
            code = reply[4]
            if code == NG:
                return True
            if not read:
                return code == OK
            return code == cmd and reply[5 : 5 + len(sub)] == sub

        return match

    async def _exchange(self, cmd: int, sub: bytes, data: bytes, what: str, read: bool) -> bytes:
        """Sends one command and returns the reply's data (after cmd and sub); NG ->
        CatRejected, collisions -> bounded resends, then CatError "bus busy"."""
        payload = frame(self.address, self.controller, cmd, sub + data)
        match = self._matcher(payload, cmd, sub, read)
        for attempt in range(self.collision_retries + 1):
            try:
                reply = await self.request(payload, match, what)
            except CatTimeout:
                if self.echo and not self.echo_seen:
                    raise CatTimeout(
                        f"icom: nothing came back for {what}, not even the echo of our own "
                        f"frame: check the CI-V cable, address {self.address:#04x} and baud rate"
                    ) from None
                raise
            if reply == COLLISION_FRAME:
                log.debug("icom: collision on %s (try %d)", what, attempt + 1)
                await asyncio.sleep(self.collision_backoff_s * (attempt + 1))
                continue
            if reply[4] == NG:
                raise CatRejected(f"icom: the radio refused {what} (NG)")
            return reply[5 + len(sub) : -1] if read else b""
        raise CatError(
            f"icom: bus busy: {what} collided {self.collision_retries + 1} times on the CI-V bus"
        )

    async def _set(self, cmd: int, sub: bytes, data: bytes, what: str) -> None:
        await self._exchange(cmd, sub, data, what, read=False)

    async def _read(self, cmd: int, sub: bytes, what: str, length: int) -> bytes:
        data = await self._exchange(cmd, sub, b"", what, read=True)
        if len(data) != length:
            raise CatProtocolError(
                f"icom: answer to {what} has {len(data)} data bytes, expected {length}"
            )
        return data

    # ------------------------------------------------------------------ validation
    @staticmethod
    def _freq_bytes(hz: int) -> bytes:
        if not 0 < hz <= 9_999_999_999:
            raise CatError(f"icom: {hz} Hz cannot be sent as a CI-V frequency (10 BCD digits)")
        return to_bcd_le(hz, 5)

    @staticmethod
    def _duplex(tuning: Tuning) -> tuple[int, bytes]:
        offset = tuning.tx_hz - tuning.rx_hz
        if offset % 100 or abs(offset) > 99_999_900:
            raise CatError(
                f"icom: a {offset:+d} Hz transmit offset cannot be set as a CI-V duplex offset "
                "(multiples of 100 Hz below 100 MHz)"
            )
        direction = DUP_SIMPLEX if offset == 0 else DUP_PLUS if offset > 0 else DUP_MINUS
        return direction, to_bcd_le(abs(offset) // 100, 3)

    @staticmethod
    def _ctcss_bytes(hz: float) -> bytes:
        ctcss_index(hz, f"icom: {hz:g} Hz is not a CTCSS tone of the radio's table")
        return to_bcd_be(round(hz * 10), 3)

    @staticmethod
    def _dcs_bytes(code: str) -> bytes:
        dcs = dcs_code(code, f"icom: {code!r} is not a DCS code of the radio's table (like 023N)")
        return bytes((0x11 if dcs.inverted else 0x00,)) + to_bcd_be(int(dcs.digits), 2)

    # ------------------------------------------------------------------ rig API
    async def probe(self) -> RigIdentity:
        data = await self._read(0x19, b"\x00", "read transceiver ID (19 00)", 1)
        found = data[0]
        model = MODELS.get(found)
        if model is None:
            known = ", ".join(f"{number:#04x} {name}" for number, name in MODELS.items())
            raise CatProtocolError(
                f"icom: the radio at CI-V address {self.address:#04x} answers transceiver ID "
                f"{found:#04x}, a model this driver does not know (known: {known})"
            )
        return RigIdentity(
            model=f"{model} (CI-V {self.address:#04x})",
            detail=f"transceiver ID {found:#04x}, via {self.url}",
        )

    async def set_tuning(self, tuning: Tuning) -> None:
        # Everything is checked before the first byte goes out.
        freq = self._freq_bytes(tuning.rx_hz)
        self._freq_bytes(tuning.tx_hz)
        direction, offset = self._duplex(tuning)
        ctcss = self._ctcss_bytes(tuning.ctcss_hz) if tuning.ctcss_hz is not None else None
        dcs = self._dcs_bytes(tuning.dcs) if tuning.dcs is not None else None
        if ctcss is not None and dcs is not None:
            raise CatError("icom: a channel has CTCSS or DCS, not both")
        mode = {
            "fm": (MODE_FM, FILTER_WIDE),
            "nfm": (MODE_FM, self.NARROW_FILTER),
            "am": (MODE_AM, FILTER_WIDE),
        }[tuning.mode]

        await self._set(0x05, b"", freq, f"set frequency {tuning.rx_hz} Hz (05)")
        await self._set(0x06, b"", bytes(mode), f"set mode {tuning.mode} (06)")
        await self._set(0x0F, b"", bytes((direction,)), f"set duplex {direction:02X} (0F)")
        if direction != DUP_SIMPLEX:
            await self._set(0x0D, b"", offset, "set duplex offset (0D)")
        # Enables off first: the radio allows one tone mode at a time.
        for sub, name in ((0x42, "TONE"), (0x43, "TSQL"), (0x4B, "DTCS")):
            keep = (sub == 0x43 and ctcss is not None) or (sub == 0x4B and dcs is not None)
            if not keep:
                await self._set(0x16, bytes((sub,)), b"\x00", f"turn {name} off (16 {sub:02X})")
        if ctcss is not None:
            await self._set(0x1B, b"\x00", ctcss, "set repeater tone (1B 00)")
            await self._set(0x1B, b"\x01", ctcss, "set TSQL tone (1B 01)")
            await self._set(0x16, b"\x43", b"\x01", "turn TSQL on (16 43)")
        if dcs is not None:
            await self._set(0x1B, b"\x02", dcs, "set DTCS code (1B 02)")
            await self._set(0x16, b"\x4b", b"\x01", "turn DTCS on (16 4B)")

    async def read_tuning(self) -> Tuning:
        try:
            rx_hz = from_bcd_le(await self._read(0x03, b"", "read frequency (03)", 5))
            mode_data = await self._read(0x04, b"", "read mode (04)", 2)
            direction = (await self._read(0x0F, b"", "read duplex (0F)", 1))[0]
            offset = 0
            if direction in (DUP_MINUS, DUP_PLUS):
                offset = 100 * from_bcd_le(await self._read(0x0C, b"", "read offset (0C)", 3))
                offset = -offset if direction == DUP_MINUS else offset
            elif direction != DUP_SIMPLEX:
                raise CatProtocolError(f"icom: unknown duplex setting {direction:#04x}")
            tone_on = await self._flag(0x42, "TONE")
            tsql_on = await self._flag(0x43, "TSQL")
            dtcs_on = await self._flag(0x4B, "DTCS")
            ctcss: float | None = None
            dcs: str | None = None
            if tsql_on or tone_on:
                sub = b"\x01" if tsql_on else b"\x00"
                ctcss = from_bcd_be(await self._read(0x1B, sub, "read tone (1B)", 3)) / 10
            elif dtcs_on:
                data = await self._read(0x1B, b"\x02", "read DTCS code (1B 02)", 3)
                polarity = {0x00: "N", 0x11: "I"}.get(data[0])
                if polarity is None:
                    raise CatProtocolError(f"icom: unknown DTCS polarity byte {data[0]:#04x}")
                dcs = f"{from_bcd_be(data[1:]):03d}{polarity}"
        except ValueError as exc:
            raise CatProtocolError(f"icom: the radio answered a bad number ({exc})") from None
        return Tuning(rx_hz, rx_hz + offset, self._mode(mode_data), ctcss, dcs)

    @staticmethod
    def _mode(data: bytes) -> Mode:
        if data[0] == MODE_FM:
            return "fm" if data[1] == FILTER_WIDE else "nfm"
        if data[0] == MODE_AM:
            return "am"
        raise CatProtocolError(f"icom: the radio is in mode {data[0]:#04x}, not FM or AM")

    async def _flag(self, sub: int, name: str) -> bool:
        data = await self._read(0x16, bytes((sub,)), f"read {name} (16 {sub:02X})", 1)
        if data[0] not in (0, 1):
            raise CatProtocolError(f"icom: {name} state {data[0]:#04x} is neither 00 nor 01")
        return data[0] == 1

    async def set_ptt(self, on: bool) -> None:
        what = f"PTT {'on' if on else 'off'} (1C 00)"
        try:
            await self._set(0x1C, b"\x00", b"\x01" if on else b"\x00", what)
        except BaseException:
            if on:
                self._unkey_best_effort()
            raise

    def _unkey_best_effort(self) -> None:
        """After a failed or cancelled key-up the radio may be keyed anyway: send the unkey frame
        without waiting (see `CatDriver._write_now`)."""
        if self._write_now(frame(self.address, self.controller, 0x1C, b"\x00\x00")):
            log.warning("icom: key-up failed; sent PTT off best-effort")

    async def read_busy(self) -> bool:
        data = await self._read(0x15, b"\x01", "read squelch (15 01)", 1)
        if data[0] not in (0, 1):
            raise CatProtocolError(f"icom: squelch state {data[0]:#04x} is neither 00 nor 01")
        return data[0] == 1
