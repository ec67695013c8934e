"""A Kenwood HF radio behind a pty, written from docs/protocols.md, "Kenwood CAT" and the radios' PC
command references (the radio's side). It is a TS-2000 unless told to be another model (`MODELS`):
each answers its own `ID;` and numbers CTCSS tones in its own table, and the TS-990S takes the
receiver before `TN`/`CN` digits and has `OM0` for mode instead of `MD`.

It keeps VFO A and B (frequency, mode, tone settings each), the receive and transmit VFO, PTT
and the squelch; set commands are silent, reads answer in the set form, and anything malformed
or unknown is answered `?;`. Faults for tests: `fault(pattern, reply)` answers a command (matched
as a whole, without its `;`) with `reply` instead of running it; `PtyRadio.silent`, `inject`,
`unplug`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tests.support.emulators.pty_radio import PtyRadio
from tests.support.emulators.tones import KENWOOD_38, KENWOOD_42, STANDARD_TONES

# The TS-2000's bands (Hz): a frequency outside them is refused with `?;`.
BANDS = (
    (30_000, 60_000_000),
    (142_000_000, 152_000_000),
    (420_000_000, 450_000_000),
    (1_240_000_000, 1_300_000_000),
)
MODES = frozenset("12345679")  # MD codes the radio accepts (8 is not a mode)
BURST_HZ = 1750.0  # numbered after the CTCSS tones by TN


@dataclass(frozen=True)
class Model:
    """How one model answers `ID;` and numbers its tones: `CN` numbers `tones` from `first`;
    `TN` too, and one more number after them is the 1750 Hz burst."""

    rig_id: str
    tones: tuple[float, ...]
    first: int = 0
    receiver: bool = False  # TN, CN and the mode command take the receiver (0 = main) first
    mode_command: str = "MD"


MODELS: dict[str, Model] = {
    "TS-2000": Model("019", KENWOOD_38, first=1),  # TS-2000 manual: TN 01-39, CN 01-38
    "TS-480": Model("020", KENWOOD_42),  # TS-480 reference: TN 00-42, CN 00-41
    "TS-590S": Model("021", KENWOOD_42),  # TS-590S/SG reference: TN 00-42 (42 = 1750), CN 00-41
    "TS-590SG": Model("023", KENWOOD_42),
    "TS-990S": Model("022", STANDARD_TONES, receiver=True, mode_command="OM"),  # TN0 00-50
    "TS-890S": Model("024", STANDARD_TONES),  # TS-890S reference: TN 00-50, CN 00-49
}


@dataclass
class Vfo:
    hz: int = 14_074_000
    mode: str = "2"
    tn: int = 1
    cn: int = 1
    to: bool = False
    ct: bool = False


@dataclass
class _Fault:
    pattern: re.Pattern[str]
    reply: bytes
    times: int
    after: int


class KenwoodRadio(PtyRadio):
    """`model` is one of `MODELS`; `rig_id` makes it answer another ID (a model nobody knows)."""

    def __init__(self, model: str = "TS-2000", *, rig_id: str | None = None) -> None:
        super().__init__()
        self.model = MODELS[model]
        self.rig_id = rig_id or self.model.rig_id
        first = self.model.first
        self.vfos = [Vfo(tn=first, cn=first), Vfo(hz=14_074_500, tn=first, cn=first)]
        self.rx_vfo = 0
        self.tx_vfo = 0
        self.ptt = False
        self.squelch_open = False
        self.commands: list[str] = []  # every whole command received, without `;`
        self._buffer = b""
        self._faults: list[_Fault] = []

    # ------------------------------------------------------------------ test controls
    def fault(self, pattern: str, reply: bytes, *, times: int = 1, after: int = 0) -> None:
        """The next `times` commands fully matching `pattern` (after skipping `after` of them)
        are answered with `reply` and not executed."""
        self._faults.append(_Fault(re.compile(pattern), reply, times, after))

    @property
    def vfo_a(self) -> Vfo:
        return self.vfos[0]

    @property
    def vfo_b(self) -> Vfo:
        return self.vfos[1]

    def tone_hz(self, number: int) -> float:
        """What this model sends for tone number `number` (TN's numbering)."""
        return (*self.model.tones, BURST_HZ)[number - self.model.first]

    def tone_number(self, hz: float) -> int:
        return self.model.tones.index(hz) + self.model.first

    # ------------------------------------------------------------------ the radio
    def receive(self, data: bytes) -> bytes:
        self._buffer += data
        out = b""
        while b";" in self._buffer:
            raw, self._buffer = self._buffer.split(b";", 1)
            command = raw.decode("ascii", "replace")
            self.commands.append(command)
            faulted = self._faulted(command)
            out += faulted if faulted is not None else self._run(command)
        return out

    def _faulted(self, command: str) -> bytes | None:
        for fault in self._faults:
            if fault.times > 0 and fault.pattern.fullmatch(command):
                if fault.after > 0:
                    fault.after -= 1
                    return None
                fault.times -= 1
                return fault.reply
        return None

    def _run(self, command: str) -> bytes:
        name, arg = command[:2], command[2:]
        handler = getattr(self, f"_cmd_{name.lower()}", None)
        if not name.isupper() or handler is None or not (arg == "" or arg.isdigit()):
            return b"?;"
        reply: str | None = handler(arg)
        return b"?;" if reply is None else reply.encode()

    @property
    def _rx(self) -> Vfo:
        return self.vfos[self.rx_vfo]

    # Each handler gets the digits after the name; it returns the answer ("" for a silent set)
    # or None for `?;`.
    def _cmd_id(self, arg: str) -> str | None:
        return f"ID{self.rig_id};" if arg == "" else None

    def _freq(self, vfo: Vfo, name: str, arg: str) -> str | None:
        if arg == "":
            return f"{name}{vfo.hz:011d};"
        if len(arg) != 11:
            return None
        hz = int(arg)
        if not any(lo <= hz <= hi for lo, hi in BANDS):
            return None
        vfo.hz = hz
        return ""

    def _cmd_fa(self, arg: str) -> str | None:
        return self._freq(self.vfos[0], "FA", arg)

    def _cmd_fb(self, arg: str) -> str | None:
        return self._freq(self.vfos[1], "FB", arg)

    def _cmd_fr(self, arg: str) -> str | None:
        if arg == "":
            return f"FR{self.rx_vfo};"
        if arg not in ("0", "1"):
            return None
        self.rx_vfo = self.tx_vfo = int(arg)  # FR moves the transmit VFO too (TS-2000)
        return ""

    def _cmd_ft(self, arg: str) -> str | None:
        if arg == "":
            return f"FT{self.tx_vfo};"
        if arg not in ("0", "1"):
            return None
        self.tx_vfo = int(arg)
        return ""

    def _receiver(self, name: str, arg: str) -> tuple[str, str] | None:
        """(the command as answered, its digits): on a model that takes the receiver first,
        only the main receiver's ("0") is kept here."""
        if not self.model.receiver:
            return name, arg
        if arg[:1] != "0":
            return None
        return name + "0", arg[1:]

    def _mode(self, name: str, arg: str) -> str | None:
        found = self._receiver(name, arg)
        if found is None:
            return None
        name, arg = found
        if arg == "":
            return f"{name}{self._rx.mode};"
        if arg not in MODES:
            return None
        self._rx.mode = arg
        return ""

    def _cmd_md(self, arg: str) -> str | None:
        return self._mode("MD", arg) if self.model.mode_command == "MD" else None

    def _cmd_om(self, arg: str) -> str | None:
        return self._mode("OM", arg) if self.model.mode_command == "OM" else None

    def _tone(self, name: str, arg: str) -> str | None:
        found = self._receiver(name, arg)
        if found is None:
            return None
        answer, arg = found
        if arg == "":
            return f"{answer}{getattr(self._rx, name.lower()):02d};"
        first = self.model.first
        count = len(self.model.tones) + (name == "TN")  # TN also numbers the 1750 Hz burst
        if len(arg) != 2 or not first <= int(arg) < first + count:
            return None
        setattr(self._rx, name.lower(), int(arg))
        return ""

    def _cmd_tn(self, arg: str) -> str | None:
        return self._tone("TN", arg)

    def _cmd_cn(self, arg: str) -> str | None:
        return self._tone("CN", arg)

    def _switch(self, name: str, arg: str) -> str | None:
        if arg == "":
            return f"{name}{int(getattr(self._rx, name.lower()))};"
        if arg not in ("0", "1"):
            return None
        on = arg == "1"
        setattr(self._rx, name.lower(), on)
        if on:  # tone (encode only) and CTCSS (tone squelch) exclude each other
            setattr(self._rx, "ct" if name == "TO" else "to", False)
        return ""

    def _cmd_to(self, arg: str) -> str | None:
        return self._switch("TO", arg)

    def _cmd_ct(self, arg: str) -> str | None:
        return self._switch("CT", arg)

    def _cmd_tx(self, arg: str) -> str | None:
        if arg not in ("", "0", "1", "2"):
            return None
        self.ptt = True
        return ""

    def _cmd_rx(self, arg: str) -> str | None:
        if arg != "":
            return None
        self.ptt = False
        return ""

    def _cmd_by(self, arg: str) -> str | None:
        return f"BY{int(self.squelch_open)}0;" if arg == "" else None

    def _cmd_if(self, arg: str) -> str | None:
        if arg != "":
            return None
        vfo = self.vfos[self.tx_vfo if self.ptt else self.rx_vfo]
        tone = vfo.to or vfo.ct
        body = (
            f"{vfo.hz:011d}"  # 2-12
            "     "  # 13-17
            "+0000"  # 18-22 RIT/XIT offset
            "00"  # 23 RIT, 24 XIT
            "0"  # 25
            "00"  # 26-27 memory channel
            f"{int(self.ptt)}"  # 28 RX/TX
            f"{vfo.mode}"  # 29
            f"{self.rx_vfo}"  # 30
            "0"  # 31 scan
            f"{int(self.tx_vfo != self.rx_vfo)}"  # 32 split
            f"{int(tone)}"  # 33
            f"{vfo.tn:02d}"  # 34-35
            "0"  # 36
        )
        assert len(body) == 35
        return f"IF{body};"
