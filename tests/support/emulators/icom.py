"""An IC-7300-like CI-V radio behind a pty, written from docs/protocols.md, "Icom CI-V"
(the radio's side).

Frames `FE FE <to> <from> <cmd> [sub] [data] FD`; set commands answered `FB` (OK) or `FA` (NG);
reads answered with the command, sub-command and data. It listens on `address` and answers
`19 00` with `transceiver_id`: its model's factory address, the same unless the radio was
renumbered. With `echo` on, every frame the controller sends is read back first, as on a
single-wire bus. Test switches: `collide` (answer the next N frames with a collision jam),
`foreign` (put another radio's traffic before each reply), `ng_commands` (answer NG to those
command bytes), `truncate_next` (cut the next reply short), `garbage` (bytes before each reply),
`wrong_freq` (report this frequency on `03`), `wrong_tone_tenths` (report this tone, in 0.1 Hz,
on `1B 00` and `1B 01`).
"""

from __future__ import annotations

from tests.support.emulators.pty_radio import PtyRadio

CTCSS_TENTHS = {
    670, 693, 719, 744, 770, 797, 825, 854, 885, 915, 948, 974, 1000, 1035, 1072, 1109, 1148,
    1188, 1230, 1273, 1318, 1365, 1413, 1462, 1514, 1567, 1598, 1622, 1655, 1679, 1713, 1738,
    1773, 1799, 1835, 1862, 1899, 1928, 1966, 1995, 2035, 2065, 2107, 2181, 2257, 2291, 2336,
    2418, 2503, 2541,
}  # fmt: skip
_DCS_TEXT = """
    023 025 026 031 032 036 043 047 051 053 054 065 071 072 073 074 114 115 116 122
    125 131 132 134 143 145 152 155 156 162 165 172 174 205 212 223 225 226 243 244 245 246 251
    252 255 261 263 265 266 271 274 306 311 315 325 331 332 343 346 351 356 364 365 371 411 412
    413 423 431 432 445 446 452 454 455 462 464 465 466 503 506 516 523 526 532 546 565 606 612
    624 627 631 632 654 662 664 703 712 723 731 732 734 743 754"""
DCS = {int(c) for c in _DCS_TEXT.split()}
# IC-7300 receive range, roughly: 30 kHz to 74.8 MHz.
IC7300_BANDS = ((30_000, 74_800_000),)


def bcd_le(value: int, n: int) -> bytes:
    s = f"{value:0{2 * n}d}"
    return bytes(int(s[i : i + 2], 16) for i in range(2 * n - 2, -1, -2))


def unbcd_le(data: bytes) -> int | None:
    text = data[::-1].hex()
    return int(text) if text.isdigit() else None


def unbcd_be(data: bytes) -> int | None:
    return unbcd_le(data[::-1])


class IcomRadio(PtyRadio):
    def __init__(
        self,
        address: int = 0x94,
        *,
        transceiver_id: int | None = None,
        echo: bool = False,
        bands: tuple[tuple[int, int], ...] = IC7300_BANDS,
    ) -> None:
        super().__init__()
        self.address = address
        self.transceiver_id = address if transceiver_id is None else transceiver_id
        self.echo = echo
        self.bands = bands
        self._buf = b""
        # state
        self.freq = 14_074_000
        self.mode = 0x01  # USB
        self.filter = 0x01
        self.duplex = 0x10
        self.offset_hz = 0
        self.tone_tenths = 885  # 1B 00
        self.tsql_tenths = 885  # 1B 01
        self.dtcs_polarity = 0x00
        self.dtcs_code = 23
        self.tone_on = self.tsql_on = self.dtcs_on = False
        self.ptt = False
        self.squelch_open = False
        self.ptt_history: list[bool] = []
        # fault switches
        self.collide = 0
        self.foreign = False
        self.ng_commands: set[int] = set()
        self.truncate_next = False
        self.garbage = b""
        self.wrong_freq: int | None = None
        self.wrong_tone_tenths: int | None = None

    # ------------------------------------------------------------------ bytes in, bytes out
    def receive(self, data: bytes) -> bytes:
        self._buf += data
        out = b""
        while True:
            start = self._buf.find(b"\xfe\xfe")
            if start < 0:
                self._buf = self._buf[-1:] if self._buf.endswith(b"\xfe") else b""
                return out
            end = self._buf.find(b"\xfd", start)
            if end < 0:
                self._buf = self._buf[start:]
                return out
            frame = self._buf[start : end + 1]
            self._buf = self._buf[end + 1 :]
            out += self._handle(frame)

    def _handle(self, frame: bytes) -> bytes:
        if self.collide:
            self.collide -= 1
            # Two talkers at once: the echo is garbled and the bus is jammed.
            return frame[:4] + b"\xfc\xfc\xfc"
        out = frame if self.echo else b""
        body = frame.lstrip(b"\xfe")[:-1]
        if len(body) < 3:
            return out
        to, src, cmd, rest = body[0], body[1], body[2], body[3:]
        if to != self.address:
            return out  # for another radio on the bus
        reply = self._answer(cmd, rest)
        full = b"\xfe\xfe" + bytes((src, self.address)) + reply + b"\xfd"
        if self.foreign:
            # another radio answering its controller, and a transceive broadcast
            out += b"\xfe\xfe\xe0\x88\x03\x00\x00\x50\x45\x01\xfd"
            out += b"\xfe\xfe\x00" + bytes((self.address,)) + b"\x00\x00\x00\x50\x45\x01\xfd"
        if self.truncate_next:
            self.truncate_next = False
            full = full[:-3]
        return out + self.garbage + full

    # ------------------------------------------------------------------ the radio
    def _answer(self, cmd: int, rest: bytes) -> bytes:
        ok, ng = b"\xfb", b"\xfa"
        if cmd in self.ng_commands:
            return ng
        if cmd == 0x05:
            hz = unbcd_le(rest) if len(rest) == 5 else None
            if hz is None or not any(lo <= hz <= hi for lo, hi in self.bands):
                return ng
            self.freq = hz
            return ok
        if cmd == 0x03 and not rest:
            hz = self.wrong_freq if self.wrong_freq is not None else self.freq
            return b"\x03" + bcd_le(hz, 5)
        if cmd == 0x06 and len(rest) in (1, 2):
            if rest[0] not in (0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x07, 0x08):
                return ng
            filt = rest[1] if len(rest) == 2 else 0x01
            if filt not in (1, 2, 3):
                return ng
            self.mode, self.filter = rest[0], filt
            return ok
        if cmd == 0x04 and not rest:
            return bytes((0x04, self.mode, self.filter))
        if cmd == 0x0F:
            if not rest:
                return bytes((0x0F, self.duplex))
            if len(rest) == 1 and rest[0] in (0x10, 0x11, 0x12):
                self.duplex = rest[0]
                return ok
            return ng
        if cmd == 0x0D and len(rest) == 3:
            value = unbcd_le(rest)
            if value is None:
                return ng
            self.offset_hz = value * 100
            return ok
        if cmd == 0x0C and not rest:
            return b"\x0c" + bcd_le(self.offset_hz // 100, 3)
        if cmd == 0x16 and rest and rest[0] in (0x42, 0x43, 0x4B):
            attr = {0x42: "tone_on", 0x43: "tsql_on", 0x4B: "dtcs_on"}[rest[0]]
            if len(rest) == 1:
                return bytes((0x16, rest[0], int(getattr(self, attr))))
            if len(rest) == 2 and rest[1] in (0, 1):
                setattr(self, attr, rest[1] == 1)
                return ok
            return ng
        if cmd == 0x1B and rest and rest[0] in (0x00, 0x01):
            attr = "tone_tenths" if rest[0] == 0 else "tsql_tenths"
            if len(rest) == 1:
                tenths = self.wrong_tone_tenths or getattr(self, attr)
                return bytes((0x1B, rest[0])) + bcd_le(tenths, 3)[::-1]
            value = unbcd_be(rest[1:]) if len(rest) == 4 else None
            if value not in CTCSS_TENTHS:
                return ng
            setattr(self, attr, value)
            return ok
        if cmd == 0x1B and rest and rest[0] == 0x02:
            if len(rest) == 1:
                code = bcd_le(self.dtcs_code, 2)[::-1]
                return bytes((0x1B, 0x02, self.dtcs_polarity)) + code
            value = unbcd_be(rest[2:]) if len(rest) == 4 else None
            if value not in DCS or rest[1] not in (0x00, 0x01, 0x10, 0x11):
                return ng
            self.dtcs_polarity, self.dtcs_code = rest[1], value
            return ok
        if cmd == 0x1C and rest[:1] == b"\x00":
            if len(rest) == 1:
                return bytes((0x1C, 0x00, int(self.ptt)))
            if len(rest) == 2 and rest[1] in (0, 1):
                self.ptt = rest[1] == 1
                self.ptt_history.append(self.ptt)
                return ok
            return ng
        if cmd == 0x15 and rest == b"\x01":
            return bytes((0x15, 0x01, int(self.squelch_open)))
        if cmd == 0x19 and rest == b"\x00":
            return bytes((0x19, 0x00, self.transceiver_id))
        return ng
