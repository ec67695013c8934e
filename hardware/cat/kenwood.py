"""Kenwood ASCII CAT for the TS-2000 / TS-480 / TS-590 / TS-890 / TS-990 family: `;`-terminated
commands.

A command is two letters and fixed-width digits (`FA00145500000;`); a read is the name alone
(`FA;`) and is answered in the set command's form (docs/protocols.md, "Kenwood CAT").

Readings chosen where the sources leave a choice:
- Probe: `ID;` names the model, and the model decides the tone table, the number of its first
  tone and, on the TS-990S, the command forms (`MODELS`). An ID not in `MODELS` is refused in one
  line naming it: the numbers differ between models (67 Hz is TN01 on a TS-2000, TN00 on a
  TS-590; 250.3 Hz is TN38, TN40 and TN48 on a TS-2000, a TS-590 and a TS-890), so no default is
  safe. A driver that was not probed asks `ID;` itself before its first tuning.
- Set commands have no answer, so every set is sent together with its own read
  (`FA00145500000;FA;`): a refusal (`?;`) arrives before the read's answer and names the
  command, and the read-back doubles as verification, compared in physical units: frequencies in
  MHz, tones converted to Hz with the model's table ("wrong frequency echoed" is caught at once).
- Errors: `?;` (bad syntax, or not possible in the rig's state) raises `CatRejected` at once,
  since sending the same thing again would be refused again. `E;` and `O;` are communication
  errors (K2K), so the command is sent again, `retries` more times, then `CatRejected`
  (Hamlib retries all three; we retry only the two that can be transient).
- Split / repeater channels: receive on VFO A (`FR0;`), transmit on VFO B (`FT1;`), with
  `FA`/`FB` holding the two frequencies. These rigs have no FM repeater-offset command in common.
  `FR` also moves the transmit VFO on the TS-2000, so `FT` is always sent after it. Mode and
  tones are set on each VFO in use (VFO B first, selected through `FR1;`, then VFO A) because
  some models keep them per VFO.
- Mode: `MD4;` is the rigs' only FM; "nfm" and "fm" both map to it (narrow is a filter choice
  on these HF rigs, not a CAT mode), and `read_tuning` reports it as "fm". "am" is `MD5;`. The
  TS-990S has no `MD`: its mode is `OM0` (main receiver) with the same codes (Hamlib kenwood.c,
  simts990.c).
- CTCSS: one tone is used for both encode (`TN`) and decode (`CN`) and tone squelch is turned on
  (`TO0;CT1;`: the two are exclusive on the TS-2000). The TS-990S's `TN`/`CN` take the receiver
  first (`TN012;` = main receiver, 100 Hz; Hamlib kenwood.c). A 1750 Hz burst, numbered after
  the tones on every model, is not CTCSS and is refused.
- DCS: the family's common command set has none, so a DCS channel is refused before sending.
- PTT: `TX;` / `RX;`, each followed by `IF;` whose offset 28 (0 RX, 1 TX) confirms the state.
  Any failure while keying sends `RX;` best-effort, so a transmitter is never left keyed.
- Busy: `BY;` answers `BYx;` or `BYxy;`; `x` (the main receiver) is the squelch, `1` = open.
- Not checked against the TS-890S and TS-990S manuals: `FR`/`FT`/`TO`/`CT`/`IF`/`BY` are sent
  as to the others, as Hamlib does; a radio that refuses one answers `?;`, and the tuning is
  refused, never wrong.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

from gateway.hardware.cat.base import CatDriver, Mode, RigIdentity, Tuning, mhz
from gateway.hardware.cat.errors import CatError, CatProtocolError, CatRejected, CatVerifyError
from gateway.hardware.cat.tones import (
    CTCSS_TONES_HZ,
    KENWOOD_38_TONES_HZ,
    KENWOOD_42_TONES_HZ,
    ToneTable,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class KenwoodModel:
    """What differs between the models this driver serves: the `TN`/`CN` tone numbers and, on
    the TS-990S, the command names (the main receiver's tone and mode commands)."""

    name: str
    tones: ToneTable
    encode_tone: str = "TN"
    decode_tone: str = "CN"
    mode: str = "MD"


# What `ID;` answers, per model: Hamlib `kenwood_id_string_list` (rigs/kenwood/kenwood.c), K2K.
# The tone tables, from each radio's PC command reference, cross-checked with Hamlib's rig
# definitions; where the two disagree the manual is taken and the disagreement noted.
MODELS: dict[str, KenwoodModel] = {
    # TS-2000 manual, computer control appendix: TN/CN 01 = 67.0 ... 38 = 250.3 Hz (39 = 1750).
    # Hamlib ts2000.c agrees (ts2000_ctcss_list, tone_table_base 1).
    "019": KenwoodModel("TS-2000", ToneTable(KENWOOD_38_TONES_HZ, first=1)),
    # TS-480 PC command reference: TN 00-42, CN 00-41, the chart itself being in the operating
    # manual (not read). CHIRP's TS-480 live driver numbers the 42 tones from 00, 1750 Hz after
    # them, as the TS-590's reference prints. Hamlib's TS-480 has no tone table (inferred).
    "020": KenwoodModel("TS-480", ToneTable(KENWOOD_42_TONES_HZ)),
    # TS-590S/SG PC command reference (B5A-0316): TN 00 = 67.0 ... 41 = 254.1, 42 = 1750 Hz;
    # CN 00-41; CHIRP agrees. Hamlib ts590.c numbers from 0 too, but in a 38-tone list
    # (kenwood38_ctcss_list), which parts from the radio's at 69.3 Hz: not taken.
    "021": KenwoodModel("TS-590S", ToneTable(KENWOOD_42_TONES_HZ)),
    "023": KenwoodModel("TS-590SG", ToneTable(KENWOOD_42_TONES_HZ)),
    # TS-990S PC command reference: TN/CN P2 00-49, the 50 standard tones (TN 50 = 1750 Hz).
    # Hamlib ts990s.c: from 0, with the receiver before the number (TN0nn, CN0nn) and mode by
    # OM0; its 42-tone list (kenwood42_ctcss_list) disagrees with the manual: not taken.
    "022": KenwoodModel(
        "TS-990S", ToneTable(CTCSS_TONES_HZ), encode_tone="TN0", decode_tone="CN0", mode="OM0"
    ),
    # TS-890S PC command reference: TN 00-50 (50 = 1750 Hz), CN 00-49, the 50 standard tones;
    # Hamlib ts890s.c agrees (kenwood51_ctcss_list, tone_table_base 0).
    "024": KenwoodModel("TS-890S", ToneTable(CTCSS_TONES_HZ)),
}


class Step(NamedTuple):
    """One set command of a tuning plan: the command (as the model spells it), the value sent,
    and what it does, for messages."""

    name: str
    value: str
    what: str


# Commands as data: name -> digits in the set form and in the answer to a read.
WIDTHS: dict[str, int] = {
    "FA": 11,
    "FB": 11,
    "FR": 1,
    "FT": 1,
    "MD": 1,
    "TN": 2,
    "CN": 2,
    "TO": 1,
    "CT": 1,
    "ID": 3,
    "OM": 1,
}

MAX_HZ = 99_999_999_999  # 11 digits
_MODE_CODES: dict[Mode, str] = {"fm": "4", "nfm": "4", "am": "5"}
_CODE_MODES: dict[str, Mode] = {"4": "fm", "5": "am"}
_ERROR_FRAMES = (b"?;", b"E;", b"O;")
_BUSY_RE = re.compile(rb"BY([01])([01])?;")
_IF_RE = re.compile(rb"IF[0-9 +\-]{35};")
_MAX_FRAME = 64  # the longest answer used here is IF (38 bytes)


def _reply_re(name: str) -> re.Pattern[bytes]:
    """The answer to a read of `name` ("FA", or "TN0" with the TS-990S's receiver): the name and
    the command's digits (mode codes may be letters beyond 9)."""
    chars = rb"[0-9A-Z]" if name[:2] in ("MD", "OM") else rb"[0-9]"
    return re.compile(re.escape(name.encode()) + chars + rb"{%d};" % WIDTHS[name[:2]])


class KenwoodDriver(CatDriver):
    """The Kenwood HF family over `;`-terminated ASCII CAT; `model` is what the radio's `ID;`
    answer named (set by `probe`). RTS/DTR are held inactive by default: many interfaces key on
    them."""

    name: ClassVar[str] = "kenwood"

    def __init__(
        self, url: str, baudrate: int = 9600, *, rts: bool = False, dtr: bool = False
    ) -> None:
        super().__init__(url, baudrate, rts=rts, dtr=dtr)
        self.model: KenwoodModel | None = None

    # ------------------------------------------------------------------ framing
    @staticmethod
    def framer(buffer: bytes) -> tuple[int, bytes | None]:
        """A frame starts with an uppercase letter or `?` and ends at `;`; everything in it is
        printable ASCII. Bytes before a start are noise; a frame broken by a non-printable byte,
        or one that never ends, is dropped up to the break."""
        start = 0
        while start < len(buffer) and not (0x41 <= buffer[start] <= 0x5A or buffer[start] == 0x3F):
            start += 1
        if start:
            return start, None
        for i in range(1, len(buffer)):
            byte = buffer[i]
            if byte == 0x3B:  # ';'
                return i + 1, buffer[: i + 1]
            if not 0x20 <= byte <= 0x7E:
                return i + 1, None
            if i >= _MAX_FRAME:
                return 1, None  # no terminator in sight: hunt for the next start
        return 0, None

    # ------------------------------------------------------------------ exchanges
    async def _exchange(self, payload: bytes, reply: re.Pattern[bytes], what: str) -> bytes:
        """Sends `payload` and returns the frame `reply` matches; the error answers are
        caught on the way (see the module docstring)."""

        def match(frame: bytes) -> bool:
            return frame in _ERROR_FRAMES or reply.fullmatch(frame) is not None

        last = b""
        for _ in range(self.retries + 1):
            frame = await self.request(payload, match, what)
            if frame == b"?;":
                raise CatRejected(f"{self.name}: the radio refused {what} (it answered ?;)")
            if frame not in _ERROR_FRAMES:
                return frame
            last = frame
            log.debug("%s: %r answered %r, sending again", self.name, payload, frame)
        raise CatRejected(
            f"{self.name}: the radio reported a communication error ({last.decode()}) to "
            f"{what} {self.retries + 1} times"
        )

    async def _read(self, name: str, what: str) -> str:
        frame = await self._exchange(f"{name};".encode(), _reply_re(name), what)
        return frame[len(name) : -1].decode()

    async def _set(self, model: KenwoodModel, step: Step) -> None:
        """Sends `step` and its read in one write; a read-back that comes to something else, in
        MHz or in Hz by the model's tone table, is a `CatVerifyError`."""
        payload = f"{step.name}{step.value};{step.name};".encode()
        frame = await self._exchange(payload, _reply_re(step.name), step.what)
        got = frame[len(step.name) : -1].decode()
        have = self._reading(model, step.name, got)
        want = self._reading(model, step.name, step.value)
        if have != want:
            raw = f"{step.name}{got}"
            shown = have if have == raw else f"{have} ({raw})"
            raise CatVerifyError(
                f"{self.name}: after {step.what} the radio reports {shown}, not {want}"
            )

    def _reading(self, model: KenwoodModel, name: str, digits: str) -> str:
        """`digits` of command `name` in the units a channel is written in: MHz for FA/FB, Hz for
        a tone number (by the model's table); other commands as they are on the wire."""
        if name in ("FA", "FB"):
            return mhz(int(digits))
        if name in (model.encode_tone, model.decode_tone):
            return f"{self._tone_hz(model, name, digits):g} Hz"
        return f"{name}{digits}"

    # ------------------------------------------------------------------ the rig API
    async def probe(self) -> RigIdentity:
        rig_id = await self._read("ID", "ID (identify)")
        model = MODELS.get(rig_id)
        if model is None:
            known = ", ".join(f"{number} {m.name}" for number, m in MODELS.items())
            raise CatProtocolError(
                f"{self.name}: the radio answers ID {rig_id}, a model this driver does not know "
                f"(known: {known})"
            )
        self.model = model
        return RigIdentity(model.name, detail=f"ID{rig_id}")

    async def _known_model(self) -> KenwoodModel:
        """The model the radio said it is; asked now if it was not probed."""
        if self.model is None:
            await self.probe()
        assert self.model is not None
        return self.model

    def plan(self, tuning: Tuning, model: KenwoodModel) -> list[Step]:
        """The set commands that tune `model` to `tuning`, or a `CatError` if the radio cannot
        represent it; nothing is sent."""
        for label, hz in (("receive", tuning.rx_hz), ("transmit", tuning.tx_hz)):
            if not 0 < hz <= MAX_HZ:
                raise CatError(
                    f"{self.name}: {label} frequency {hz} Hz does not fit the 11-digit FA/FB field"
                )
        if tuning.dcs is not None:
            raise CatError(
                f"{self.name}: DCS {tuning.dcs} cannot be set: this CAT dialect has no DCS command"
            )
        mode = _MODE_CODES.get(tuning.mode)
        if mode is None:
            raise CatError(f"{self.name}: mode {tuning.mode!r} is not one of fm, nfm, am")
        per_vfo = [Step(model.mode, mode, f"{model.mode} (mode {tuning.mode})")]
        if tuning.ctcss_hz is None:
            per_vfo += [Step("CT", "0", "CT (tone squelch off)"), Step("TO", "0", "TO (tone off)")]
        else:
            tone = tuning.ctcss_hz
            message = f"{self.name}: CTCSS tone {tone:g} Hz is not in the {model.name}'s tone table"
            number = f"{model.tones.number(tone, message):02d}"
            tn, cn = model.encode_tone, model.decode_tone
            per_vfo += [
                Step(tn, number, f"{tn} (encode tone {tone:g} Hz)"),
                Step(cn, number, f"{cn} (decode tone {tone:g} Hz)"),
                Step("TO", "0", "TO (tone encode only off)"),
                Step("CT", "1", "CT (tone squelch on)"),
            ]
        rx = Step("FA", f"{tuning.rx_hz:011d}", f"FA (VFO A to {mhz(tuning.rx_hz)})")
        if tuning.tx_hz == tuning.rx_hz:
            return [
                Step("FR", "0", "FR (receive on VFO A)"),
                Step("FT", "0", "FT (transmit on VFO A)"),
                *per_vfo,
                rx,
            ]
        return [
            Step("FR", "1", "FR (select VFO B)"),
            *[step._replace(what=f"{step.what} on VFO B") for step in per_vfo],
            Step("FR", "0", "FR (receive on VFO A)"),
            *per_vfo,
            rx,
            Step("FB", f"{tuning.tx_hz:011d}", f"FB (VFO B to {mhz(tuning.tx_hz)})"),
            Step("FT", "1", "FT (transmit on VFO B)"),
        ]

    def _tone_hz(self, model: KenwoodModel, name: str, digits: str) -> float:
        """The tone the radio means by number `digits` of `name` (TN, CN), by its model's
        table."""
        message = (
            f"{self.name}: the radio reports {name}{digits}, not a CTCSS tone of the "
            f"{model.name}'s table"
        )
        return model.tones.hz(int(digits), message)

    async def set_tuning(self, tuning: Tuning) -> None:
        model = await self._known_model()
        for step in self.plan(tuning, model):
            await self._set(model, step)

    async def read_tuning(self) -> Tuning:
        model = await self._known_model()
        rx_vfo = await self._read("FR", "FR (read receive VFO)")
        tx_vfo = await self._read("FT", "FT (read transmit VFO)")
        if rx_vfo not in "01" or tx_vfo not in "01":
            raise CatProtocolError(
                f"{self.name}: the radio is on a memory channel (FR{rx_vfo}, FT{tx_vfo}), "
                "not VFO A/B"
            )
        vfo_hz = {
            "0": int(await self._read("FA", "FA (read VFO A)")),
            "1": int(await self._read("FB", "FB (read VFO B)")),
        }
        md = await self._read(model.mode, f"{model.mode} (read mode)")
        mode = _CODE_MODES.get(md)
        if mode is None:
            raise CatProtocolError(
                f"{self.name}: the radio is in mode {model.mode}{md}, not FM or AM"
            )
        ctcss: float | None = None
        tone: str | None = None
        if await self._read("CT", "CT (read tone squelch)") == "1":
            tone = model.decode_tone
        elif await self._read("TO", "TO (read tone)") == "1":
            tone = model.encode_tone
        if tone is not None:
            ctcss = self._tone_hz(model, tone, await self._read(tone, f"{tone} (read tone)"))
        return Tuning(vfo_hz[rx_vfo], vfo_hz[tx_vfo], mode, ctcss, None)

    def expected(self, tuning: Tuning) -> Tuning:
        """What `read_tuning` reports once `tuning` is set (narrow FM reads back as FM)."""
        mode: Mode = "fm" if tuning.mode == "nfm" else tuning.mode
        return Tuning(tuning.rx_hz, tuning.tx_hz, mode, tuning.ctcss_hz, tuning.dcs)

    async def set_ptt(self, on: bool) -> None:
        if not on:
            await self._ptt(b"RX;IF;", keyed=False, what="RX (unkey)")
            return
        try:
            await self._ptt(b"TX;IF;", keyed=True, what="TX (key)")
        except BaseException:
            self._unkey_best_effort()
            raise

    async def _ptt(self, payload: bytes, *, keyed: bool, what: str) -> None:
        frame = await self._exchange(payload, _IF_RE, what)
        state = frame[28:29]
        if state != (b"1" if keyed else b"0"):
            raise CatProtocolError(
                f"{self.name}: after {what} the radio reports it is "
                f"{'transmitting' if state == b'1' else 'receiving'}"
            )

    def _unkey_best_effort(self) -> None:
        # Nothing answers RX; (see CatDriver._write_now).
        if self._write_now(b"RX;"):
            log.warning("%s: keying failed; sent RX; to make sure the radio is unkeyed", self.name)

    async def read_busy(self) -> bool:
        frame = await self._exchange(b"BY;", _BUSY_RE, "BY (read busy)")
        return frame[2:3] == b"1"
