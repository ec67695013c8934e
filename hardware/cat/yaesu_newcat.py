"""Yaesu ASCII "newcat" CAT (FT-991/991A, FT-710, FTDX10, FTDX101D/MP, FT-891):
docs/protocols.md, "Yaesu newcat" [HL newcat.c].

A command is a 2-letter name, parameters and `;`; a read is the name (plus its selector) and `;`,
answered in the set command's form. Set commands are not answered unless refused: the radio
then says `?;` (also its "busy" answer).

Choices where the sources leave room:
- **Set, then read in the same write.** Every set is sent together with its read (`FA...;FA;`),
  as HL's newcat_set_cmd checks a set: a refusal comes back as `?;` ahead of the read's answer,
  and the answer is compared with what was asked, in physical units: frequencies in MHz, a
  CTCSS number turned into Hz with the model's table. `?;` is retried `reject_retries` times,
  `reject_pause_s` apart (the late answer to the refused exchange is dropped meanwhile), then
  raised as `CatRejected` naming the command. A read-back that differs from what was set is a
  `CatVerifyError` naming the command and both values.
- **FA width:** `fa_digits` (9 on the FT-991 per its CAT manual; HL picks 8 for rigs whose IF
  answer is 27/30 characters). FB uses the same width.
- **Repeater or split channel:** `tx_hz` goes to VFO-B (`FB`) and `FT3;` transmits on it (split
  on); `FT2;` transmits on VFO-A (simplex). `FT;` answers `FT0;`/`FT1;`. This expresses any
  offset; the radio's own repeater-shift menu (`OS`) is not used.
- **Mode:** FM `MD04;`, FM-N `MD0B;`, AM `MD05;`.
- **Tones (FT-991 CAT manual format, as read in AB3GY's PyRigCat_ft991 and HL's FTX-1 notes):**
  `CN0` + `0` (CTCSS) or `1` (DCS) + 3-digit index into the 50-tone / 104-code tables
  (`CN00008;` = 88.5 Hz, `CN01000;` = DCS 023), read with `CN00;`/`CN01;`. `CT0` + mode: 0 off,
  1 CTCSS encode+decode, 2 CTCSS encode, 3 DCS encode+decode. A CTCSS channel uses tone squelch
  (1), a DCS channel 3. DCS polarity is not settable here: only normal codes.
- **Busy: UNVERIFIED.** HL implements no DCD for these rigs; `BY;` is decoded as community code
  does: `BY1x;` busy (squelch open), `BY0x;` idle.
- **PTT:** `TX1;` keys (CAT), `TX0;` unkeys; `TX;` answers 0 off, 1/2/3 on. After any failure
  while keying, `TX0;` is sent best-effort.
- **Probe:** `ID;` names the model (`MODELS`) and the model decides the CTCSS table; any other
  ID is refused in one line naming it. A driver that was not probed asks `ID;` itself before
  its first tuning. Every model here numbers the 50 standard tones from 000 (Hamlib gives each
  `common_ctcss_list`); the table is still per model, so a model that numbers otherwise is one
  entry, not a guess. Hamlib sends a 2-digit `CN0nn` to the FT-710 only (newcat.c); the 3-digit
  form here is the FTDX10's, which the FT-710 follows (UNVERIFIED: a radio that refuses it
  answers `?;` and the tuning is refused, never wrong).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from dataclasses import dataclass, replace
from typing import ClassVar

from gateway.hardware.cat.base import CatDriver, Mode, RigIdentity, Tuning, mhz
from gateway.hardware.cat.errors import CatError, CatProtocolError, CatRejected, CatVerifyError
from gateway.hardware.cat.tones import CTCSS_TONES_HZ, DCS_CODES, ToneTable, dcs_at, dcs_code

log = logging.getLogger(__name__)

TERMINATOR = ord(";")
REJECT = b"?;"
MAX_FRAME = 64  # longer than any answer used here: a run without `;` is noise


@dataclass(frozen=True)
class NewcatModel:
    """A model as its `ID;` answer names it, and how its `CN` numbers CTCSS tones."""

    name: str
    tones: ToneTable


# The 50 standard tones from CN 000 = 67.0 Hz: the FT-991 CAT manual's table (as read in
# PyRigCat_ft991) and Hamlib's rig definitions (ft991.c, ftdx10.c, ft710.c, ftdx101.c,
# ftdx101mp.c, ft891.c: `common_ctcss_list`, indexed from 0 by newcat.c).
_STANDARD = ToneTable(CTCSS_TONES_HZ)

# What `ID;` answers: Hamlib newcat.c `nc_rigid_t` (991 570, 991A 670, FTDX10 761, FT-710 800,
# FTDX101D 681, FTDX101MP 682). The FT-891 answers 0650 (its CAT manual's ID table, as
# transcribed by several FT-891 tools); Hamlib's enum says 135 for it (unused by its FT-891
# code): not taken.
MODELS: dict[str, NewcatModel] = {
    "0570": NewcatModel("FT-991", _STANDARD),
    "0670": NewcatModel("FT-991A", _STANDARD),
    "0761": NewcatModel("FTDX10", _STANDARD),
    "0800": NewcatModel("FT-710", _STANDARD),
    "0681": NewcatModel("FTDX101D", _STANDARD),
    "0682": NewcatModel("FTDX101MP", _STANDARD),
    "0650": NewcatModel("FT-891", _STANDARD),
}

MODE_CODES: dict[Mode, str] = {"fm": "4", "nfm": "B", "am": "5"}
MODE_NAMES: dict[str, str] = {
    "1": "LSB", "2": "USB", "3": "CW", "4": "FM", "5": "AM", "6": "RTTY", "7": "CW-R",
    "8": "DATA-L", "9": "RTTY-R", "A": "DATA-FM", "B": "FM-N", "C": "DATA-U", "D": "AM-N",
    "E": "C4FM", "F": "DATA-FM-N",
}  # fmt: skip
CT_OFF, CT_CTCSS_TSQL, CT_CTCSS_ENC, CT_DCS = "0", "1", "2", "3"

_FRAME_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-?")
_UPPER = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ")


class YaesuNewcatDriver(CatDriver):
    name = "yaesu"
    timeout_s: ClassVar[float] = 1.0
    retries: ClassVar[int] = 2
    reject_retries: ClassVar[int] = 2  # `?;` is also "busy": HL retries it
    reject_pause_s: ClassVar[float] = 0.1

    def __init__(
        self,
        url: str,
        baudrate: int = 38400,
        *,
        fa_digits: int = 9,
        rts: bool = False,
        dtr: bool = False,
    ) -> None:
        super().__init__(url, baudrate, rts=rts, dtr=dtr)
        if fa_digits not in (8, 9):
            raise CatError(f"{self.name}: fa_digits must be 8 or 9, not {fa_digits}")
        self.fa_digits = fa_digits
        self.model: NewcatModel | None = None  # what the radio's ID names (set by probe)

    # ------------------------------------------------------------------ framing
    @staticmethod
    def framer(buffer: bytes) -> tuple[int, bytes | None]:
        """Cuts `NAME params;` or `?;`. Before the `;`, the frame is the run of frame
        characters starting at the last 2-letter name; anything ahead of it is noise."""
        end = buffer.find(b";")
        if end < 0:
            if len(buffer) > MAX_FRAME:
                return len(buffer), None
            return 0, None
        body = buffer[:end]
        start = end
        while start > 0 and body[start - 1] in _FRAME_CHARS:
            start -= 1
        run = body[start:]
        if run.endswith(b"?"):
            return end + 1, REJECT
        # A truncated answer followed by a whole one ("FA0142FA014250000"): the last name wins.
        for i in range(len(run) - 2, -1, -1):
            if run[i] in _UPPER and run[i + 1] in _UPPER:
                return end + 1, run[i:] + b";"
        return end + 1, None

    # ------------------------------------------------------------------ exchanges
    async def _exchange(self, payload: str, answer: str, what: str) -> re.Match[str]:
        """Sends `payload` and returns the answer matching the regex `answer`; `?;` is
        retried, then raised as CatRejected."""
        pattern = re.compile(answer)

        def match(frame: bytes) -> bool:
            text = frame.decode("ascii", "replace")
            return frame == REJECT or pattern.fullmatch(text) is not None

        for attempt in range(self.reject_retries + 1):
            frame = await self.request(payload.encode("ascii"), match, what)
            if frame != REJECT:
                found = pattern.fullmatch(frame.decode("ascii"))
                assert found is not None
                return found
            if attempt < self.reject_retries:
                await asyncio.sleep(self.reject_pause_s)
        raise CatRejected(
            f"{self.name}: the radio refused {what} ({payload}), answering ?; "
            f"{self.reject_retries + 1} times"
        )

    async def _set(self, command: str, read: str, answer: str, what: str) -> str:
        """A set command sent with its read; returns the read-back value."""
        return (await self._exchange(command + read, answer, what)).group(1)

    def _fa(self, hz: int) -> str:
        return f"{hz:0{self.fa_digits}d}"

    def _freq_re(self, name: str) -> str:
        return name + r"(\d{" + str(self.fa_digits) + r"});"

    # ------------------------------------------------------------------ the rig API
    async def probe(self) -> RigIdentity:
        rig_id = (await self._exchange("ID;", r"ID(\d{4});", "probe (ID)")).group(1)
        model = MODELS.get(rig_id)
        if model is None:
            known = ", ".join(f"{number} {m.name}" for number, m in MODELS.items())
            raise CatProtocolError(
                f"{self.name}: the radio answers ID {rig_id}, a model this driver does not know "
                f"(known: {known})"
            )
        self.model = model
        return RigIdentity(model.name, f"newcat ID{rig_id}")

    async def _known_model(self) -> NewcatModel:
        """The model the radio said it is; asked now if it was not probed."""
        if self.model is None:
            await self.probe()
        assert self.model is not None
        return self.model

    async def set_tuning(self, tuning: Tuning) -> None:
        model = await self._known_model()
        self._check(tuning, model)  # every check before the first set goes out
        rx, tx = self._fa(tuning.rx_hz), self._fa(tuning.tx_hz)
        what = "set rx frequency (FA)"
        read = await self._set(f"FA{rx};", "FA;", self._freq_re("FA"), what)
        self._verify(what, mhz(tuning.rx_hz), mhz(int(read)))
        if tuning.tx_hz != tuning.rx_hz:
            what = "set tx frequency (FB)"
            read = await self._set(f"FB{tx};", "FB;", self._freq_re("FB"), what)
            self._verify(what, mhz(tuning.tx_hz), mhz(int(read)))
            split = await self._set("FT3;", "FT;", r"FT([01]);", "split on (FT3)")
            self._verify("split on (FT3)", "1", split)
        else:
            split = await self._set("FT2;", "FT;", r"FT([01]);", "split off (FT2)")
            self._verify("split off (FT2)", "0", split)
        code = MODE_CODES[tuning.mode]
        self._verify("set mode (MD0)", code, await self._set(
            f"MD0{code};", "MD0;", r"MD0([0-9A-F]);", "set mode (MD0)"
        ))  # fmt: skip
        if tuning.ctcss_hz is not None:
            index = f"{self._ctcss_number(tuning.ctcss_hz, model):03d}"
            tone = await self._set(f"CN00{index};", "CN00;", r"CN00(\d{3});", "CTCSS tone (CN00)")
            asked_hz, read_hz = self._ctcss_hz(index, model), self._ctcss_hz(tone, model)
            self._verify("CTCSS tone (CN00)", f"{asked_hz:g} Hz", f"{read_hz:g} Hz")
            ct = CT_CTCSS_TSQL
        elif tuning.dcs is not None:
            index = f"{DCS_CODES.index(_dcs_code(tuning.dcs)):03d}"
            code_read = await self._set(f"CN01{index};", "CN01;", r"CN01(\d{3});", "DCS (CN01)")
            self._verify("DCS code (CN01)", index, code_read)
            ct = CT_DCS
        else:
            ct = CT_OFF
        self._verify("tone mode (CT0)", ct, await self._set(
            f"CT0{ct};", "CT0;", r"CT0([0-4]);", "tone mode (CT0)"
        ))  # fmt: skip

    def expected(self, tuning: Tuning) -> Tuning:
        """What `read_tuning` reports once `tuning` is set (each set is already read back by
        `set_tuning`): DCS reads back as its 3 digits plus "N" ("023" and "023n" are "023N")."""
        if tuning.dcs is None:
            return tuning
        return replace(tuning, dcs=_dcs_code(tuning.dcs) + "N")

    async def read_tuning(self) -> Tuning:
        model = await self._known_model()
        rx = int((await self._exchange("FA;", self._freq_re("FA"), "read rx frequency")).group(1))
        split = (await self._exchange("FT;", r"FT([01]);", "read split (FT)")).group(1)
        tx = rx
        if split == "1":
            found = await self._exchange("FB;", self._freq_re("FB"), "read tx frequency (FB)")
            tx = int(found.group(1))
        code = (await self._exchange("MD0;", r"MD0([0-9A-F]);", "read mode (MD0)")).group(1)
        modes = {value: key for key, value in MODE_CODES.items()}
        if code not in modes:
            raise CatProtocolError(
                f"{self.name}: the radio is in mode {MODE_NAMES.get(code, code)}, "
                "not FM, FM-N or AM"
            )
        ct = (await self._exchange("CT0;", r"CT0([0-4]);", "read tone mode (CT0)")).group(1)
        ctcss: float | None = None
        dcs: str | None = None
        if ct in (CT_CTCSS_TSQL, CT_CTCSS_ENC):
            found = await self._exchange("CN00;", r"CN00(\d{3});", "read CTCSS")
            ctcss = self._ctcss_hz(found.group(1), model)
        elif ct != CT_OFF:
            index = int((await self._exchange("CN01;", r"CN01(\d{3});", "read DCS")).group(1))
            dcs = dcs_at(index, f"{self.name}: the radio reports DCS index {index}") + "N"
        return Tuning(rx, tx, modes[code], ctcss_hz=ctcss, dcs=dcs)

    async def set_ptt(self, on: bool) -> None:
        if not on:
            state = await self._set("TX0;", "TX;", r"TX([0-3]);", "PTT off (TX0)")
            if state != "0":
                raise CatRejected(
                    f"{self.name}: the radio is still transmitting after PTT off (TX0), TX{state}"
                )
            return
        try:
            state = await self._set("TX1;", "TX;", r"TX([0-3]);", "PTT on (TX1)")
            if state == "0":
                raise CatRejected(f"{self.name}: the radio did not key on PTT on (TX1)")
        except BaseException:
            # Whatever went wrong, the transmitter must not stay keyed.
            with contextlib.suppress(CatError):
                await self.request(b"TX0;", None, "PTT off (TX0) after a failed key")
            raise

    async def read_busy(self) -> bool:
        # UNVERIFIED decoding (community code): BY1x = busy, BY0x = idle.
        found = await self._exchange("BY;", r"BY([01])(\d);", "read busy (BY)")
        return found.group(1) == "1"

    # ------------------------------------------------------------------ checks
    def _verify(self, what: str, asked: str, read: str) -> None:
        if read != asked:
            raise CatVerifyError(
                f"{self.name}: {what} did not take: asked {asked}, the radio reads {read}"
            )

    def _ctcss_number(self, hz: float, model: NewcatModel) -> int:
        message = f"{self.name}: CTCSS {hz:g} Hz is not in the {model.name}'s tone table"
        return model.tones.number(hz, message)

    def _ctcss_hz(self, digits: str, model: NewcatModel) -> float:
        """The tone the radio means by CN number `digits`, by its model's table."""
        message = (
            f"{self.name}: the radio reports CTCSS number {digits}, not a tone of the "
            f"{model.name}'s table"
        )
        return model.tones.hz(int(digits), message)

    def _check(self, tuning: Tuning, model: NewcatModel) -> None:
        limit = 10**self.fa_digits
        for what, hz in (("receive", tuning.rx_hz), ("transmit", tuning.tx_hz)):
            if not 0 < hz < limit:
                raise CatError(
                    f"{self.name}: {what} frequency {hz} Hz does not fit FA/FB's "
                    f"{self.fa_digits} digits"
                )
        if tuning.mode not in MODE_CODES:
            raise CatError(f"{self.name}: mode {tuning.mode!r} is not one of fm, nfm, am")
        if tuning.ctcss_hz is not None and tuning.dcs is not None:
            raise CatError(f"{self.name}: a channel has CTCSS or DCS, not both")
        if tuning.ctcss_hz is not None:
            self._ctcss_number(tuning.ctcss_hz, model)
        if tuning.dcs is not None:
            _dcs_code(tuning.dcs)


def _dcs_code(dcs: str) -> str:
    code = dcs_code(dcs.upper(), f"yaesu: DCS code {dcs!r} is not in the radio's code table")
    if code.inverted:
        raise CatError(f"yaesu: DCS {dcs} is inverted; CN sets normal polarity only")
    return code.digits
