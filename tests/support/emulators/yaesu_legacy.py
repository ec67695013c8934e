"""An FT-817/857/897 on a pty, speaking the 5-byte binary CAT of docs/protocols.md,
"Yaesu legacy CAT".

Commands are `P1 P2 P3 P4 OP`; only 03 (4 BCD bytes of 10 Hz, big-endian, + mode byte), E7 and
F7 (one byte) answer. Set commands the radio cannot carry out are ignored, as the rigs do.
Fault switches: `garbage_before` (bytes sent ahead of the next reply), `corrupt_next` (a 0xFF
inside the next reply), `truncate_replies` (that many next replies cut short), `silent_ops`
(reads that are never answered), `ignore_ops` (sets silently dropped), `freq_error_hz` (the
radio tunes this far off what it was told: a wrong frequency read back).
"""

from __future__ import annotations

from tests.support.emulators.pty_radio import PtyRadio

CTCSS_TENTHS = {
    670, 693, 719, 744, 770, 797, 825, 854, 885, 915, 948, 974, 1000, 1035, 1072, 1109, 1148,
    1188, 1230, 1273, 1318, 1365, 1413, 1462, 1514, 1567, 1598, 1622, 1655, 1679, 1713, 1738,
    1773, 1799, 1835, 1862, 1899, 1928, 1966, 1995, 2035, 2065, 2107, 2181, 2257, 2291, 2336,
    2418, 2503, 2541,
}  # fmt: skip
MODES = {0x00, 0x01, 0x02, 0x03, 0x04, 0x06, 0x08, 0x0A, 0x0C, 0x88, 0x82, 0x83}
LOW_HZ, HIGH_HZ = 100_000, 470_000_000  # FT-817 receive coverage, simplified


def bcd(data: bytes) -> int | None:
    value = 0
    for byte in data:
        if byte >> 4 > 9 or byte & 0x0F > 9:
            return None
        value = value * 100 + (byte >> 4) * 10 + (byte & 0x0F)
    return value


def to_bcd(value: int, digits: int) -> bytes:
    text = f"{value:0{digits}d}"
    return bytes(int(text[i]) << 4 | int(text[i + 1]) for i in range(0, digits, 2))


class YaesuLegacyRadio(PtyRadio):
    def __init__(
        self, *, squelch_bit_set_means_closed: bool = True, f7_keyed: str = "bit7_clear"
    ) -> None:
        super().__init__()
        self.squelch_bit_set_means_closed = squelch_bit_set_means_closed
        self.f7_keyed = f7_keyed  # how this rig shows PTT in F7: bit7_clear or bit7_set
        # radio state
        self.freq_hz = 145_500_000
        self.mode = 0x08
        self.shift = 0x89
        self.offset_hz = 600_000
        self.tone_mode = 0x8A
        self.ctcss_tx = self.ctcss_rx = 885
        self.dcs_tx = self.dcs_rx = 23
        self.ptt = False
        self.squelch_open = False
        self.commands: list[bytes] = []  # every whole command, in order
        # faults
        self.garbage_before = b""
        self.corrupt_next = False
        self.truncate_replies = 0
        self.silent_ops: set[int] = set()
        self.ignore_ops: set[int] = set()
        self.freq_error_hz = 0
        self._pending = b""

    @property
    def left_keyed(self) -> bool:
        return self.ptt and 0x88 not in self.ignore_ops  # 0x88: PTT off

    def receive(self, data: bytes) -> bytes:
        self._pending += data
        out = b""
        while len(self._pending) >= 5:
            cmd, self._pending = self._pending[:5], self._pending[5:]
            self.commands.append(cmd)
            out += self._reply(self._execute(cmd))
        return out

    def _reply(self, reply: bytes) -> bytes:
        if not reply:
            return b""
        if self.corrupt_next:
            self.corrupt_next = False
            reply = reply[: len(reply) // 2] + b"\xff" + reply[len(reply) // 2 :]
        if self.truncate_replies:
            self.truncate_replies -= 1
            reply = reply[: max(1, len(reply) - 2)]
        reply, self.garbage_before = self.garbage_before + reply, b""
        return reply

    def _execute(self, cmd: bytes) -> bytes:
        p, op = cmd[:4], cmd[4]
        if op in self.silent_ops or op in self.ignore_ops:
            return b""
        if op == 0x01:
            tens = bcd(p)
            if tens is not None and LOW_HZ <= tens * 10 <= HIGH_HZ:
                self.freq_hz = tens * 10 + self.freq_error_hz
        elif op == 0x03:
            return to_bcd(self.freq_hz // 10, 8) + bytes([self.mode])
        elif op == 0x07:
            if p[0] in MODES:
                self.mode = p[0]
        elif op == 0x08:
            self.ptt = True
        elif op == 0x88:
            self.ptt = False
        elif op == 0x09:
            if p[0] in (0x09, 0x49, 0x89):
                self.shift = p[0]
        elif op == 0xF9:
            tens = bcd(p)
            if tens is not None:
                self.offset_hz = tens * 10
        elif op == 0x0A:
            if p[0] in (0x0A, 0x2A, 0x4A, 0x8A):
                self.tone_mode = p[0]
        elif op == 0x0B:
            tx, rx = bcd(p[:2]), bcd(p[2:])
            if tx in CTCSS_TENTHS and rx in CTCSS_TENTHS:
                self.ctcss_tx, self.ctcss_rx = tx, rx
        elif op == 0x0C:
            tx, rx = bcd(p[:2]), bcd(p[2:])
            if tx is not None and rx is not None:
                self.dcs_tx, self.dcs_rx = tx, rx
        elif op == 0xE7:
            closed = not self.squelch_open
            bit = closed if self.squelch_bit_set_means_closed else not closed
            return bytes([(0x80 if bit else 0) | 0x05])  # S-meter 5
        elif op == 0xF7:
            if not self.ptt:
                return b"\xff" if self.f7_keyed == "bit7_clear" else b"\x00"
            return b"\x0a" if self.f7_keyed == "bit7_clear" else b"\x8a"
        return b""  # unknown opcodes are ignored, as the rigs do
