"""An FT-991 (or another newcat model by name, `MODELS`) on a pty, speaking newcat ASCII CAT
(docs/protocols.md, "Yaesu newcat"): `NAME params;`, reads answered in the set form, sets
unanswered, `?;` for anything refused. Tones as in the FT-991 CAT manual: `CN0` + 0/1
(CTCSS/DCS) + 3-digit table index (the 50 standard tones from 000), `CT0` + 0 off / 1 CTCSS TSQ /
2 CTCSS ENC / 3 DCS.

Fault switches: `reject_next` (that many next commands answered `?;`), `reject_names`
(commands always refused), `garbage_before`, `corrupt_next`, `truncate_replies`,
`freq_error_hz` (FA stores this far off what it was told), `ignore_ptt` (TX1 does nothing),
`ignore_unkey` (TX0 does nothing: keyed from the microphone), `answers` (a command, with its
`;`, answered with this text instead of being run).
"""

from __future__ import annotations

import re

from tests.support.emulators.pty_radio import PtyRadio
from tests.support.emulators.tones import STANDARD_TONES

LOW_HZ, HIGH_HZ = 30_000, 470_000_000  # FT-991 coverage, simplified
DCS_COUNT = 104
CTCSS_HZ = STANDARD_TONES  # CN00's table, from 000
# What each model answers to `ID;` (its CAT manual's ID table).
MODELS = {
    "FT-991": "0570",
    "FT-991A": "0670",
    "FTDX10": "0761",
    "FT-710": "0800",
    "FTDX101D": "0681",
    "FTDX101MP": "0682",
    "FT-891": "0650",
}


class YaesuNewcatRadio(PtyRadio):
    """`model` is one of `MODELS`; `rig_id` makes it answer another ID."""

    def __init__(
        self, model: str = "FT-991", *, rig_id: str | None = None, fa_digits: int = 9
    ) -> None:
        super().__init__()
        self.rig_id = rig_id or MODELS[model]
        self.fa_digits = fa_digits
        # radio state
        self.fa = 145_500_000
        self.fb = 145_500_000
        self.tx_on_b = False
        self.mode = "4"
        self.tone_mode = "0"
        self.ctcss_index = 8
        self.dcs_index = 0
        self.ptt = "0"
        self.squelch_open = False
        self.commands: list[str] = []
        # faults
        self.reject_next = 0
        self.reject_names: set[str] = set()
        self.garbage_before = b""
        self.corrupt_next = False
        self.truncate_replies = 0
        self.freq_error_hz = 0
        self.ignore_ptt = False
        self.ignore_unkey = False
        self.answers: dict[str, str] = {}
        self._pending = b""

    @staticmethod
    def tone_hz(number: int) -> float:
        return CTCSS_HZ[number]

    @property
    def left_keyed(self) -> bool:
        return self.ptt != "0" and not self.ignore_unkey  # TX's answer: 0 receive, 1 or 2 transmit

    def receive(self, data: bytes) -> bytes:
        self._pending += data
        out = b""
        while b";" in self._pending:
            raw, self._pending = self._pending.split(b";", 1)
            text = raw.decode("ascii", "replace")
            self.commands.append(text + ";")
            answer = self.answers.get(text + ";")
            out += self._reply(answer if answer is not None else self._execute(text))
        return out

    def _reply(self, reply: str) -> bytes:
        if not reply:
            return b""
        data = reply.encode("ascii")
        if self.corrupt_next:
            self.corrupt_next = False
            data = data[: len(data) // 2] + b"\xff" + data[len(data) // 2 :]
        if self.truncate_replies:
            self.truncate_replies -= 1
            data = data[: len(data) // 2]
        data, self.garbage_before = self.garbage_before + data, b""
        return data

    def _freq(self, hz: int) -> str:
        return f"{hz:0{self.fa_digits}d}"

    def _execute(self, text: str) -> str:
        name, params = text[:2], text[2:]
        if self.reject_next:
            self.reject_next -= 1
            return "?;"
        if name in self.reject_names:
            return "?;"
        digits = self.fa_digits
        if name in ("FA", "FB"):
            if params == "":
                return f"{name}{self._freq(self.fa if name == 'FA' else self.fb)};"
            if not re.fullmatch(rf"\d{{{digits}}}", params):
                return "?;"
            hz = int(params)
            if not LOW_HZ <= hz <= HIGH_HZ:
                return "?;"
            if name == "FA":
                self.fa = hz + self.freq_error_hz
            else:
                self.fb = hz
            return ""
        if name == "FT":
            if params == "":
                return f"FT{1 if self.tx_on_b else 0};"
            if params in ("2", "3"):
                self.tx_on_b = params == "3"
                return ""
            return "?;"
        if name == "MD":
            if params == "0":
                return f"MD0{self.mode};"
            if re.fullmatch(r"0[1-9A-E]", params):
                self.mode = params[1]
                return ""
            return "?;"
        if name == "CT":
            if params == "0":
                return f"CT0{self.tone_mode};"
            if re.fullmatch(r"0[0-3]", params):
                self.tone_mode = params[1]
                return ""
            return "?;"
        if name == "CN":
            if params in ("00", "01"):
                index = self.ctcss_index if params == "00" else self.dcs_index
                return f"CN{params}{index:03d};"
            found = re.fullmatch(r"0([01])(\d{3})", params)
            if found is None:
                return "?;"
            index = int(found.group(2))
            if found.group(1) == "0" and index < len(CTCSS_HZ):
                self.ctcss_index = index
                return ""
            if found.group(1) == "1" and index < DCS_COUNT:
                self.dcs_index = index
                return ""
            return "?;"
        if name == "TX":
            if params == "":
                return f"TX{self.ptt};"
            if params in ("0", "1"):
                ignored = self.ignore_ptt if params == "1" else self.ignore_unkey
                if not ignored:
                    self.ptt = params
                return ""
            return "?;"
        if name == "BY" and params == "":
            return f"BY{1 if self.squelch_open else 0}0;"
        if name == "ID" and params == "":
            return f"ID{self.rig_id};"
        return "?;"
