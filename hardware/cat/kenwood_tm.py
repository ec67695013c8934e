"""Kenwood TM-D710 / TM-V71 CAT: CR-terminated `CMD p1,p2` lines (docs/protocols.md,
"Kenwood TM-D710 and TM-V71").

Everything about a channel lives in one `FO` line of 13 fields: band, 10-digit frequency (Hz),
step, shift (0 simplex, 1 +, 2 -), reverse, tone / CTCSS / DCS flags, tone and CTCSS indexes,
DCS index, 8-digit offset (Hz), mode (0 FM, 1 NFM, 2 AM). Setting `FO` answers with the line
as the radio now holds it, which is read as a channel (MHz, Hz) and compared with what was asked.

Readings chosen where the sources leave a choice:
- Band: the driver works on one band (`band`, 0 = A, 1 = B) and makes it both the control and
  the PTT band (`BC b,b`) before tuning and before keying, so `TX` can only key that band.
- Split / repeater channels are a repeater shift on that band: shift + or - and the offset
  |tx - rx| (at most 99,999,999 Hz, the 8-digit field). `reverse` is always sent off.
- Step: the frequency must sit on the 5 kHz (step 0) or 6.25 kHz (step 1) grid (Hamlib picks
  the same two); anything else is refused before sending.
- Probe: `ID` answers the model name; the model decides the tone table (`MODELS`), and a name
  not in it is refused in one line naming it. A driver that was not probed asks `ID` itself
  before its first tuning.
- CTCSS: one tone for both encode and decode, as tone squelch (CTCSS flag on, tone flag off, both
  indexes the same), numbered in the model's table. The echo of `FO` and every reading are
  turned into MHz and Hz with that table and compared with what was asked.
- DCS: index 000 = 023 … 103 = 754 (104 codes). The FO line has no polarity field, so only
  normal ("023N" or "023") codes are accepted; inverted codes are refused before sending.
- Errors: `?` (bad command or syntax) and `N` (not possible now: out of band, wrong step, memory
  mode) both raise `CatRejected` at once; neither is a transmission error, so neither is retried.
- PTT: `TX` / `RX`; the answer is read as `TX`/`RX` with an optional band digit (UNVERIFIED: the
  sources do not show it). Any failure while keying sends `RX` best-effort.
- Busy: `BY b` answers `BY b,s`, s = 1 while the squelch is open.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import ClassVar

from gateway.hardware.cat.base import CatDriver, Mode, RigIdentity, Tuning, mhz
from gateway.hardware.cat.errors import CatError, CatProtocolError, CatRejected, CatVerifyError
from gateway.hardware.cat.tones import (
    DCS_CODES,
    KENWOOD_42_TONES_HZ,
    ToneTable,
    dcs_at,
    dcs_code,
)

log = logging.getLogger(__name__)

# The FO line's tone and CTCSS numbers, per model as `ID` names it. All three: Kenwood's 42 tones
# from 00 = 67.0 to 41 = 254.1 Hz: Hamlib tmd710.c (`kenwood42_ctcss_list`, indexed from 0 by
# both the TM-D710(G) and the TM-V71 rig definitions), CHIRP kenwood_live.py (TMD710Radio,
# TMD710GRadio, TMV71Radio: the same 42 from 00), docs/protocols.md, "Kenwood TM-D710 and TM-V71".
# LA3's table numbers them from 01 (and prints 240.7 Hz for 206.5): not taken.
MODELS: dict[str, ToneTable] = {
    "TM-D710": ToneTable(KENWOOD_42_TONES_HZ),
    "TM-D710G": ToneTable(KENWOOD_42_TONES_HZ),
    "TM-V71": ToneTable(KENWOOD_42_TONES_HZ),
}

# The radio's DCS index is the position in the standard 104-code `DCS_CODES` (tones.py).

STEPS_HZ = (5000, 6250)  # FO step indexes 0 and 1
MAX_HZ = 9_999_999_999  # 10 digits
MAX_OFFSET_HZ = 99_999_999  # 8 digits
_MODE_CODES: dict[Mode, int] = {"fm": 0, "nfm": 1, "am": 2}
_CODE_MODES: dict[int, Mode] = {v: k for k, v in _MODE_CODES.items()}
_ERROR_FRAMES = (b"?\r", b"N\r")
_FO_RE = re.compile(
    rb"FO ([01]),(\d{10}),([0-9A-F]),(\d),(\d),(\d),(\d),(\d),"
    rb"(\d{2}),(\d{2}),(\d{3}),(\d{8}),(\d)\r"
)
_MAX_FRAME = 96  # FO (48 bytes) is the longest answer used here


@dataclass(frozen=True)
class FoLine:
    """The 13 fields of an `FO` line."""

    band: int
    hz: int
    step: int
    shift: int
    reverse: int
    tone: int
    ctcss: int
    dcs: int
    tone_index: int
    ctcss_index: int
    dcs_index: int
    offset_hz: int
    mode: int

    def to_text(self) -> str:
        return (
            f"FO {self.band},{self.hz:010d},{self.step:X},{self.shift},{self.reverse},"
            f"{self.tone},{self.ctcss},{self.dcs},{self.tone_index:02d},{self.ctcss_index:02d},"
            f"{self.dcs_index:03d},{self.offset_hz:08d},{self.mode}"
        )

    @classmethod
    def from_frame(cls, frame: bytes) -> FoLine:
        m = _FO_RE.fullmatch(frame)
        if m is None:
            raise CatProtocolError(f"kenwood-tm: cannot read the FO line {frame!r}")
        # The step field is hex in Hamlib's reading (indexes up to 10).
        return cls(*(int(x, 16) if i == 2 else int(x) for i, x in enumerate(m.groups())))


class KenwoodTmDriver(CatDriver):
    """TM-D710 / TM-V71 over CR-terminated CAT, on one band (`band` 0 = A, 1 = B); `model` is
    the name the radio's `ID` answer gave (set by `probe`)."""

    name: ClassVar[str] = "kenwood-tm"

    def __init__(
        self,
        url: str,
        baudrate: int = 9600,
        *,
        band: int = 0,
        rts: bool = False,
        dtr: bool = False,
    ) -> None:
        super().__init__(url, baudrate, rts=rts, dtr=dtr)
        if band not in (0, 1):
            raise CatError(f"{self.name}: band must be 0 (A) or 1 (B), not {band}")
        self.band = band
        self.model: str | None = None

    # ------------------------------------------------------------------ framing
    @staticmethod
    def framer(buffer: bytes) -> tuple[int, bytes | None]:
        """A frame starts with an uppercase letter or `?` and ends at CR; its bytes are
        printable ASCII. Noise before a start (LF included) is skipped; a frame broken by a
        non-printable byte, or one that never ends, is dropped up to the break."""
        start = 0
        while start < len(buffer) and not (0x41 <= buffer[start] <= 0x5A or buffer[start] == 0x3F):
            start += 1
        if start:
            return start, None
        for i in range(1, len(buffer)):
            byte = buffer[i]
            if byte == 0x0D:
                return i + 1, buffer[: i + 1]
            if not 0x20 <= byte <= 0x7E:
                return i + 1, None
            if i >= _MAX_FRAME:
                return 1, None
        return 0, None

    # ------------------------------------------------------------------ exchanges
    async def _exchange(self, command: str, reply: re.Pattern[bytes], what: str) -> bytes:
        def match(frame: bytes) -> bool:
            return frame in _ERROR_FRAMES or reply.fullmatch(frame) is not None

        frame = await self.request(command.encode() + b"\r", match, what)
        if frame == b"?\r":
            raise CatRejected(f"{self.name}: the radio refused {what} (it answered ?)")
        if frame == b"N\r":
            raise CatRejected(
                f"{self.name}: the radio cannot do {what} now (it answered N: out of band, "
                "off step or not in VFO mode)"
            )
        return frame

    async def _select_band(self) -> None:
        b = self.band
        want = f"BC {b},{b}"
        frame = await self._exchange(want, re.compile(rb"BC [01],[01]\r"), f"BC (use band {b})")
        if frame[:-1].decode() != want:
            raise CatProtocolError(
                f"{self.name}: after {want} the radio reports {frame[:-1].decode()}"
            )

    # ------------------------------------------------------------------ the rig API
    async def probe(self) -> RigIdentity:
        frame = await self._exchange("ID", re.compile(rb"ID [ -~]+\r"), "ID (identify)")
        model = frame[3:-1].decode().strip()
        if model not in MODELS:
            raise CatProtocolError(
                f"{self.name}: the radio answers ID {model}, a model this driver does not know "
                f"(known: {', '.join(MODELS)})"
            )
        self.model = model
        return RigIdentity(model, detail="Kenwood TM dialect")

    async def _known_model(self) -> str:
        """The model the radio said it is; asked now if it was not probed."""
        if self.model is None:
            await self.probe()
        assert self.model is not None
        return self.model

    def fo_line(self, tuning: Tuning, model: str) -> FoLine:
        """The FO line that tunes `tuning` on this band of a `model` (one of `MODELS`), or a
        `CatError` if the radio cannot represent it; nothing is sent."""
        if not 0 < tuning.rx_hz <= MAX_HZ:
            raise CatError(
                f"{self.name}: receive frequency {tuning.rx_hz} Hz does not fit the 10-digit field"
            )
        step = next((i for i, s in enumerate(STEPS_HZ) if tuning.rx_hz % s == 0), None)
        if step is None:
            raise CatError(
                f"{self.name}: {mhz(tuning.rx_hz)} is on neither the 5 kHz nor the 6.25 kHz step"
            )
        offset = abs(tuning.tx_hz - tuning.rx_hz)
        if tuning.tx_hz <= 0 or offset > MAX_OFFSET_HZ:
            raise CatError(
                f"{self.name}: transmit frequency {tuning.tx_hz} Hz cannot be reached with the "
                "8-digit repeater offset"
            )
        shift = 0 if offset == 0 else (1 if tuning.tx_hz > tuning.rx_hz else 2)
        mode = _MODE_CODES.get(tuning.mode)
        if mode is None:
            raise CatError(f"{self.name}: mode {tuning.mode!r} is not one of fm, nfm, am")
        if tuning.ctcss_hz is not None and tuning.dcs is not None:
            raise CatError(f"{self.name}: a channel has CTCSS or DCS, not both")
        tones = MODELS[model]
        tone_index = tones.first  # 67.0 Hz when unused
        dcs_index = 0
        if tuning.ctcss_hz is not None:
            message = (
                f"{self.name}: CTCSS tone {tuning.ctcss_hz:g} Hz is not in the {model}'s tone table"
            )
            tone_index = tones.number(tuning.ctcss_hz, message)
        if tuning.dcs is not None:
            dcs_index = self.dcs_index(tuning.dcs)
        return FoLine(
            band=self.band,
            hz=tuning.rx_hz,
            step=step,
            shift=shift,
            reverse=0,
            tone=0,
            ctcss=int(tuning.ctcss_hz is not None),
            dcs=int(tuning.dcs is not None),
            tone_index=tone_index,
            ctcss_index=tone_index,
            dcs_index=dcs_index,
            offset_hz=offset,
            mode=mode,
        )

    def dcs_index(self, code: str) -> int:
        if code.endswith("I"):
            raise CatError(f"{self.name}: DCS {code}: inverted DCS cannot be set through FO")
        message = f"{self.name}: DCS code {code} is not in the radio's DCS table"
        return DCS_CODES.index(dcs_code(code, message).digits)

    async def set_tuning(self, tuning: Tuning) -> None:
        model = await self._known_model()
        line = self.fo_line(tuning, model)
        await self._select_band()
        what = f"FO (band {self.band} to {mhz(tuning.rx_hz)})"
        frame = await self._exchange(line.to_text(), _FO_RE, what)
        # The echo is the channel as the radio now holds it: compared in MHz and Hz, by the
        # model's tone table, with what was asked.
        got = self._tuning(FoLine.from_frame(frame), model, frame)
        want = self.expected(tuning)
        if got != want:
            diffs = ", ".join(got.differences(want))
            raise CatVerifyError(f"{self.name}: after {what} the radio reports {diffs}")

    async def read_tuning(self) -> Tuning:
        model = await self._known_model()
        frame = await self._exchange(f"FO {self.band}", _FO_RE, f"FO (read band {self.band})")
        return self._tuning(FoLine.from_frame(frame), model, frame)

    def _tuning(self, fo: FoLine, model: str, frame: bytes) -> Tuning:
        """The channel an FO line of a `model` holds, tones in Hz by the model's table."""
        if fo.band != self.band:
            raise CatProtocolError(f"{self.name}: asked for band {self.band}, got {fo.band}")
        tx = {0: fo.hz, 1: fo.hz + fo.offset_hz, 2: fo.hz - fo.offset_hz}.get(fo.shift)
        mode = _CODE_MODES.get(fo.mode)
        if tx is None or mode is None:
            raise CatProtocolError(f"{self.name}: cannot read the FO line {frame!r}")
        rx = fo.hz
        if fo.reverse:  # the radio listens on the repeater's input
            rx, tx = tx, rx
        ctcss: float | None = None
        if fo.ctcss or fo.tone:
            number = fo.ctcss_index if fo.ctcss else fo.tone_index
            message = (
                f"{self.name}: the radio reports tone number {number:02d}, not a CTCSS tone of "
                f"the {model}'s table"
            )
            ctcss = MODELS[model].hz(number, message)
        dcs: str | None = None
        if fo.dcs:
            message = f"{self.name}: the radio reports DCS index {fo.dcs_index}"
            dcs = dcs_at(fo.dcs_index, message) + "N"
        return Tuning(rx, tx, mode, ctcss, dcs)

    def expected(self, tuning: Tuning) -> Tuning:
        """What `read_tuning` reports once `tuning` is set (DCS reads back with its "N")."""
        dcs = tuning.dcs if tuning.dcs is None or tuning.dcs.endswith("N") else tuning.dcs + "N"
        return Tuning(tuning.rx_hz, tuning.tx_hz, tuning.mode, tuning.ctcss_hz, dcs)

    async def set_ptt(self, on: bool) -> None:
        if not on:
            await self._exchange("RX", re.compile(rb"RX( [01])?\r"), "RX (unkey)")
            return
        try:
            await self._select_band()
            await self._exchange("TX", re.compile(rb"TX( [01])?\r"), "TX (key)")
        except BaseException:
            self._unkey_best_effort()
            raise

    def _unkey_best_effort(self) -> None:
        if self._write_now(b"RX\r"):  # see CatDriver._write_now
            log.warning("%s: keying failed; sent RX to make sure the radio is unkeyed", self.name)

    async def read_busy(self) -> bool:
        b = self.band
        pattern = re.compile(rb"BY %d,([01])\r" % b)
        frame = await self._exchange(f"BY {b}", pattern, f"BY (read busy, band {b})")
        return frame[-2:-1] == b"1"
