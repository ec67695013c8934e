"""Kenwood ASCII CAT for the TS-480 / TS-590 / TS-2000 family: `;`-terminated commands.

A command is two letters and fixed-width digits (`FA00145500000;`); a read is the name alone
(`FA;`) and is answered in the set command's form (PROTOCOLS.md section 1).

Readings chosen where the sources leave a choice:
- Set commands have no answer, so every set is sent together with its own read
  (`FA00145500000;FA;`): a refusal (`?;`) arrives before the read's answer and names the
  command, and the read-back doubles as verification ("wrong frequency echoed" is caught at once).
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
  on these HF rigs, not a CAT mode), and `read_tuning` reports it as "fm". "am" is `MD5;`.
- CTCSS: one tone is used for both encode (`TN`) and decode (`CN`) and tone squelch is turned on
  (`TO0;CT1;`: the two are exclusive on the TS-2000). The tone index base differs: 1 on the
  TS-2000, 0 on the TS-590 (`tone_index_base`). The table is Hamlib's 38 tones (1750 Hz, index
  39 on the TS-2000, is a burst, not CTCSS, and is refused).
- DCS: the family's common command set has none, so a DCS channel is refused before sending.
- PTT: `TX;` / `RX;`, each followed by `IF;` whose offset 28 (0 RX, 1 TX) confirms the state.
  Any failure while keying sends `RX;` best-effort, so a transmitter is never left keyed.
- Busy: `BY;` answers `BYx;` or `BYxy;`; `x` (the main receiver) is the squelch, `1` = open.
"""

from __future__ import annotations

import logging
import re
from typing import ClassVar

from gateway.hardware.cat.base import CatDriver, Mode, RigIdentity, Tuning
from gateway.hardware.cat.errors import CatError, CatProtocolError, CatRejected
from gateway.hardware.cat.tones import ctcss_at, ctcss_index

log = logging.getLogger(__name__)

# Hamlib `kenwood38_ctcss_list` (Hz), in the radios' index order.
CTCSS_TONES: tuple[float, ...] = (
    67.0, 71.9, 74.4, 77.0, 79.7, 82.5, 85.4, 88.5, 91.5, 94.8,
    97.4, 100.0, 103.5, 107.2, 110.9, 114.8, 118.8, 123.0, 127.3, 131.8,
    136.5, 141.3, 146.2, 151.4, 156.7, 162.2, 167.9, 173.8, 179.9, 186.2,
    192.8, 203.5, 210.7, 218.1, 225.7, 233.6, 241.8, 250.3,
)  # fmt: skip

# What `ID;` answers, per model (K2K, Hamlib kenwood_id_list).
MODEL_IDS: dict[str, str] = {"019": "TS-2000", "020": "TS-480", "021": "TS-590S"}

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
}

MAX_HZ = 99_999_999_999  # 11 digits
_MODE_CODES: dict[Mode, str] = {"fm": "4", "nfm": "4", "am": "5"}
_CODE_MODES: dict[str, Mode] = {"4": "fm", "5": "am"}
_ERROR_FRAMES = (b"?;", b"E;", b"O;")
_BUSY_RE = re.compile(rb"BY([01])([01])?;")
_IF_RE = re.compile(rb"IF[0-9 +\-]{35};")
_MAX_FRAME = 64  # the longest answer used here is IF (38 bytes)


def _reply_re(name: str) -> re.Pattern[bytes]:
    return re.compile(name.encode() + rb"[0-9]{%d};" % WIDTHS[name])


def _mhz(hz: int) -> str:
    return f"{hz / 1e6:.6f} MHz"


class KenwoodDriver(CatDriver):
    """TS-480 / TS-590 / TS-2000 over `;`-terminated ASCII CAT.

    `tone_index_base`: the `TN`/`CN` index of 67.0 Hz: 1 on the TS-2000 (and TS-480), 0 on the
    TS-590 (Hamlib). RTS/DTR are held inactive by default: many interfaces key on them.
    """

    name: ClassVar[str] = "kenwood"

    def __init__(
        self,
        url: str,
        baudrate: int = 9600,
        *,
        tone_index_base: int = 1,
        rts: bool = False,
        dtr: bool = False,
    ) -> None:
        super().__init__(url, baudrate, rts=rts, dtr=dtr)
        if tone_index_base not in (0, 1):
            raise CatError(f"{self.name}: tone_index_base must be 0 or 1, not {tone_index_base}")
        self.tone_index_base = tone_index_base

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
        return frame[2:-1].decode()

    async def _set(self, name: str, value: str, what: str) -> None:
        """Sets `name` and reads it back in the same write; a different read-back is an error."""
        payload = f"{name}{value};{name};".encode()
        frame = await self._exchange(payload, _reply_re(name), what)
        got = frame[2:-1].decode()
        if got != value:
            raise CatProtocolError(
                f"{self.name}: after {what} the radio reports {name}{got}, not {name}{value}"
            )

    # ------------------------------------------------------------------ the rig API
    async def probe(self) -> RigIdentity:
        rig_id = await self._read("ID", "ID (identify)")
        model = MODEL_IDS.get(rig_id)
        if model is None:
            return RigIdentity(f"Kenwood (ID{rig_id})", detail=f"unknown Kenwood model id {rig_id}")
        return RigIdentity(model, detail=f"ID{rig_id}")

    def plan(self, tuning: Tuning) -> list[tuple[str, str, str]]:
        """The (command, value, description) sets that tune `tuning`, or a `CatError` if the
        radio cannot represent it; nothing is sent."""
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
        per_vfo: list[tuple[str, str, str]] = [("MD", mode, f"MD (mode {tuning.mode})")]
        if tuning.ctcss_hz is None:
            per_vfo += [("CT", "0", "CT (tone squelch off)"), ("TO", "0", "TO (tone off)")]
        else:
            index = f"{self.tone_index(tuning.ctcss_hz):02d}"
            per_vfo += [
                ("TN", index, f"TN (encode tone {tuning.ctcss_hz:g} Hz)"),
                ("CN", index, f"CN (decode tone {tuning.ctcss_hz:g} Hz)"),
                ("TO", "0", "TO (tone encode only off)"),
                ("CT", "1", "CT (tone squelch on)"),
            ]
        rx = ("FA", f"{tuning.rx_hz:011d}", f"FA (VFO A to {_mhz(tuning.rx_hz)})")
        if tuning.tx_hz == tuning.rx_hz:
            return [
                ("FR", "0", "FR (receive on VFO A)"),
                ("FT", "0", "FT (transmit on VFO A)"),
                *per_vfo,
                rx,
            ]
        return [
            ("FR", "1", "FR (select VFO B)"),
            *[(n, v, f"{w} on VFO B") for n, v, w in per_vfo],
            ("FR", "0", "FR (receive on VFO A)"),
            *per_vfo,
            rx,
            ("FB", f"{tuning.tx_hz:011d}", f"FB (VFO B to {_mhz(tuning.tx_hz)})"),
            ("FT", "1", "FT (transmit on VFO B)"),
        ]

    def tone_index(self, hz: float) -> int:
        message = f"{self.name}: CTCSS tone {hz:g} Hz is not in the radio's tone table"
        return ctcss_index(hz, message, table=CTCSS_TONES) + self.tone_index_base

    def _tone_hz(self, index: str, what: str) -> float:
        message = f"{self.name}: the radio reports {what} index {index}"
        return ctcss_at(int(index) - self.tone_index_base, message, table=CTCSS_TONES)

    async def set_tuning(self, tuning: Tuning) -> None:
        for name, value, what in self.plan(tuning):
            await self._set(name, value, what)

    async def read_tuning(self) -> Tuning:
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
        md = await self._read("MD", "MD (read mode)")
        mode = _CODE_MODES.get(md)
        if mode is None:
            raise CatProtocolError(f"{self.name}: the radio is in mode MD{md}, not FM or AM")
        ctcss: float | None = None
        if await self._read("CT", "CT (read tone squelch)") == "1":
            ctcss = self._tone_hz(await self._read("CN", "CN (read decode tone)"), "CN")
        elif await self._read("TO", "TO (read tone)") == "1":
            ctcss = self._tone_hz(await self._read("TN", "TN (read encode tone)"), "TN")
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
