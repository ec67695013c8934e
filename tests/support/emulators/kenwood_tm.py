"""A TM-D710-like radio behind a pty, written from LA3's command notes and docs/protocols.md,
"Kenwood TM-D710 and TM-V71" (the radio's side). `model` is the name it answers `ID` with
(TM-D710, TM-D710G, TM-V71 number their tones alike: 00 = 67.0 ... 41 = 254.1 Hz).

Two bands (A = 0, B = 1), each holding the 13 FO fields; the control and PTT bands (`BC`); PTT;
each band's squelch. Lines end in CR. A malformed or unknown command is answered `?`; a
well-formed one the radio cannot carry out (frequency outside the band or off its step, tone or
DCS index out of range, AM on band B) is answered `N`. Faults for tests: `fault(pattern, reply)`
answers a command (matched whole, without its CR) with `reply` instead of running it;
`muted` commands are carried out but not answered.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tests.support.emulators.pty_radio import PtyRadio
from tests.support.emulators.tones import KENWOOD_42

# Receive ranges per band (Hamlib tmd710 rx_range_list1).
BAND_RANGES = (
    ((118_000_000, 524_000_000),),
    ((136_000_000, 174_000_000), (300_000_000, 524_000_000), (800_000_000, 1_300_000_000)),
)
STEPS_HZ = (5000, 6250, 8330, 10000, 12500, 15000, 20000, 25000, 30000, 50000, 100000)
# The FO line's tone numbers (docs/protocols.md, "Kenwood TM-D710 and TM-V71": 00 = 67.0 ...
# 41 = 254.1 Hz).
TONES_HZ = KENWOOD_42
_FO_SET = re.compile(
    r"FO ([01]),(\d{10}),([0-9A-F]),(\d),(\d),(\d),(\d),(\d),(\d{2}),(\d{2}),(\d{3}),(\d{8}),(\d)"
)


@dataclass
class Band:
    hz: int = 145_000_000
    step: int = 0
    shift: int = 0
    reverse: int = 0
    tone: int = 0
    ctcss: int = 0
    dcs: int = 0
    tone_index: int = 8
    ctcss_index: int = 8
    dcs_index: int = 0
    offset_hz: int = 600_000
    mode: int = 0

    def line(self, band: int) -> str:
        return (
            f"FO {band},{self.hz:010d},{self.step:X},{self.shift},{self.reverse},{self.tone},"
            f"{self.ctcss},{self.dcs},{self.tone_index:02d},{self.ctcss_index:02d},"
            f"{self.dcs_index:03d},{self.offset_hz:08d},{self.mode}"
        )


@dataclass
class _Fault:
    pattern: re.Pattern[str]
    reply: bytes
    times: int


class KenwoodTmRadio(PtyRadio):
    def __init__(self, *, model: str = "TM-D710") -> None:
        super().__init__()
        self.model = model
        self.bands = [Band(), Band(hz=435_000_000, offset_hz=5_000_000)]
        self.ctrl_band = 0
        self.ptt_band = 0
        self.ptt = False
        self.squelch_open = [False, False]
        self.commands: list[str] = []
        self._buffer = b""
        self._faults: list[_Fault] = []
        self.muted: set[str] = set()  # commands carried out but never answered

    def fault(self, pattern: str, reply: bytes, *, times: int = 1) -> None:
        self._faults.append(_Fault(re.compile(pattern), reply, times))

    @staticmethod
    def tone_hz(number: int) -> float:
        return TONES_HZ[number]

    @staticmethod
    def tone_number(hz: float) -> int:
        return TONES_HZ.index(hz)

    def receive(self, data: bytes) -> bytes:
        self._buffer += data
        out = b""
        while b"\r" in self._buffer:
            raw, self._buffer = self._buffer.split(b"\r", 1)
            command = raw.decode("ascii", "replace")
            self.commands.append(command)
            for fault in self._faults:
                if fault.times > 0 and fault.pattern.fullmatch(command):
                    fault.times -= 1
                    out += fault.reply
                    break
            else:
                reply = self._run(command)
                if command not in self.muted:
                    out += reply.encode() + b"\r"
        return out

    def _run(self, command: str) -> str:
        if command == "ID":
            return f"ID {self.model}"
        if command == "BC":
            return f"BC {self.ctrl_band},{self.ptt_band}"
        if m := re.fullmatch(r"BC ([01]),([01])", command):
            self.ctrl_band, self.ptt_band = int(m[1]), int(m[2])
            return command
        if m := re.fullmatch(r"BY ([01])", command):
            return f"BY {m[1]},{int(self.squelch_open[int(m[1])])}"
        if command == "TX":
            self.ptt = True
            return f"TX {self.ptt_band}"
        if command == "RX":
            self.ptt = False
            return f"RX {self.ptt_band}"
        if m := re.fullmatch(r"FO ([01])", command):
            band = int(m[1])
            return self.bands[band].line(band)
        if m := _FO_SET.fullmatch(command):
            return self._set_fo(m)
        return "?"

    def _set_fo(self, m: re.Match[str]) -> str:
        band = int(m[1])
        f = [int(x, 16) if i == 2 else int(x) for i, x in enumerate(m.groups()[1:], start=1)]
        new = Band(*f)
        if not any(lo <= new.hz <= hi for lo, hi in BAND_RANGES[band]):
            return "N"
        if new.step >= len(STEPS_HZ) or new.hz % STEPS_HZ[new.step]:
            return "N"
        flags = (new.reverse, new.tone, new.ctcss, new.dcs)
        if new.shift > 2 or any(x > 1 for x in flags) or new.mode > 2:
            return "N"
        if max(new.tone_index, new.ctcss_index) >= len(TONES_HZ) or new.dcs_index > 103:
            return "N"
        if new.mode == 2 and band == 1:  # AM receive is band A only
            return "N"
        self.bands[band] = new
        return new.line(band)
