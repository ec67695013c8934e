"""Hamlib's rigctld over TCP: any radio Hamlib drives, through its network daemon.

The link is TCP to rigctld (default port 4532, docs/protocols.md, "rigctld"); the framer
cuts `\\n`-terminated lines. Every command uses the extended protocol (`+\\set_freq 145500000`),
so each reply is a header line naming the command (`set_freq: 145500000`), `Key: value` lines
for a get, and `RPRT n`: unambiguous, even after a stray or late reply (a reply is only taken
when its header names the command awaiting it). `RPRT -n` is CatRejected with Hamlib's error
name.

Choices (say so if a rig differs):
- **Transmit offset: repeater shift, not split.** `tx_hz` is set with `\\set_rptr_shift +/-/0`
  and `\\set_rptr_offs <Hz>` (what an LMR repeater channel is), as the Icom driver does.
- **Mode:** `FM` / `FMN` / `AM` with passband 0 (the rig's default for the mode).
- **Tones:** CTCSS sets `\\set_ctcss_tone` and `\\set_ctcss_sql` (tenths of Hz), DCS sets
  `\\set_dcs_code` and `\\set_dcs_sql` (the octal digits as a number, `023` -> 23); the unused
  ones are set to 0, Hamlib's "off". Hamlib's DCS calls carry no polarity, so an inverted code
  ("023I") is refused before sending. Turning off something the rig lacks (ENIMPL/ENAVAIL) is
  not an error, nor is a missing repeater shift on a simplex channel.
- **No resend on timeout** (`retries = 0`): TCP does not lose lines, and rigctld does its own
  retries towards the radio; a resend would only queue a duplicate. `timeout_s` is 3 s since
  rigctld's own serial retries take time.
- **Probe:** `\\dump_caps` (model and maker) then `\\get_freq` (the radio itself answers).
- **A new connection cut before its first answer is made again, once.** rigctld (Hamlib 4.5 and
  4.6, `tests/rigctld.c` `handle_socket`) closes a finished client's socket three times over
  (`fclose` of its read and write streams, then `close`); when another client connects in that
  instant, its socket gets the freed descriptor and is closed under it. Measured here: one
  connection in twelve made right after another client hung up (a logger, WSJT-X, a technician's
  `rigctl`) was reset before its first reply. Nothing had been answered on it, and every command
  this driver sends is idempotent, so the driver connects again and sends the command once more,
  after a pause (`RECONNECT_PAUSE_S`) that lets the thread of the cut connection finish its own
  three closes (without it, one reconnect in thirty was cut the same way); a second cut is
  reported as the link lost.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from typing import ClassVar

from gateway.hardware.cat.base import CatDriver, FramedProtocol, Mode, RigIdentity, Tuning
from gateway.hardware.cat.errors import CatError, CatLinkLost, CatProtocolError, CatRejected
from gateway.hardware.cat.tones import ctcss_index, dcs_code

log = logging.getLogger(__name__)

MAX_LINE = 4096  # a line longer than this is garbage, not rigctld
RECONNECT_PAUSE_S = 0.05  # before connecting again after a cut (see the module's notes)

# Hamlib's `RPRT -n` codes (rig.h `rig_errcode_e`), docs/protocols.md, "rigctld".
HAMLIB_ERRORS: dict[int, tuple[str, str]] = {
    1: ("EINVAL", "invalid parameter"),
    2: ("ECONF", "invalid configuration"),
    3: ("ENOMEM", "out of memory"),
    4: ("ENIMPL", "function not implemented"),
    5: ("ETIMEOUT", "communication timed out"),
    6: ("EIO", "I/O error"),
    7: ("EINTERNAL", "internal Hamlib error"),
    8: ("EPROTO", "protocol error"),
    9: ("ERJCTED", "command rejected by the rig"),
    10: ("ETRUNC", "argument truncated"),
    11: ("ENAVAIL", "function not available"),
    12: ("ENTARGET", "VFO not targetable"),
    13: ("BUSERROR", "error talking on the bus"),
    14: ("BUSBUSY", "collision on the bus"),
    15: ("EARG", "invalid argument"),
    16: ("EVFO", "invalid VFO"),
    17: ("EDOM", "argument out of domain"),
    18: ("EDEPRECATED", "function deprecated"),
    19: ("ESECURITY", "security error"),
    20: ("EPOWER", "rig not powered on"),
    21: ("ELIMIT", "limit exceeded"),
    22: ("EACCESS", "access denied"),
}
ENIMPL, ENAVAIL = -4, -11

MODES: dict[Mode, str] = {"fm": "FM", "nfm": "FMN", "am": "AM"}
RPRT = re.compile(rb"RPRT (-?\d+)")


class RigctldDriver(CatDriver):
    name = "rigctld"
    timeout_s: ClassVar[float] = 3.0
    retries: ClassVar[int] = 0

    def __init__(self, host: str = "localhost", port: int = 4532) -> None:
        super().__init__(f"{host}:{port}", 0)
        self.host = host
        self.port = port
        self._expect: str | None = None  # the command whose reply is being collected
        self._header_seen = False
        self._lines: list[str] = []
        self._answered = False  # whether rigctld has said anything on this connection

    # ------------------------------------------------------------------ link
    async def _connect(self) -> tuple[asyncio.BaseTransport, FramedProtocol]:
        loop = asyncio.get_running_loop()
        try:
            return await asyncio.wait_for(
                loop.create_connection(
                    lambda: FramedProtocol(self.framer, self._on_frame), self.host, self.port
                ),
                self.timeout_s,
            )
        except TimeoutError:
            raise CatLinkLost(
                f"rigctld: no connection to {self.url} within {self.timeout_s:g} s"
            ) from None
        except OSError as exc:
            # asyncio's own text ("Connect call failed (...)") hides the reason; errno has it
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise CatLinkLost(
                f"rigctld: cannot connect to {self.url}: {reason} (is rigctld running?)"
            ) from None

    async def open(self) -> None:
        self._answered = False
        await super().open()

    def _on_frame(self, frame: bytes) -> None:
        self._answered = True
        super()._on_frame(frame)

    async def _request_anew(self, what: str) -> bytes:
        """`+\\what`'s final `RPRT` line; on a connection cut before rigctld ever answered on
        it, connects once more and sends it again (see the module's notes)."""
        payload = f"+\\{what}\n".encode()
        protocol = self._protocol
        try:
            return await self.request(payload, self._is_end, what)
        except CatLinkLost:
            if self._answered or protocol is None or self._protocol is not protocol:
                raise
        log.info("rigctld: %s cut a new connection before answering; connecting again", self.url)
        await self.close()
        await asyncio.sleep(RECONNECT_PAUSE_S)
        await self.open()
        self._header_seen, self._lines = False, []
        return await self.request(payload, self._is_end, what)

    @staticmethod
    def framer(buffer: bytes) -> tuple[int, bytes | None]:
        """One `\\n`-terminated line (without `\\r\\n`); blank lines and over-long junk skipped."""
        end = buffer.find(b"\n")
        if end < 0:
            return (len(buffer), None) if len(buffer) > MAX_LINE else (0, None)
        line = buffer[:end].rstrip(b"\r")
        return end + 1, (line if line.strip() else None)

    # ------------------------------------------------------------------ replies
    def unsolicited(self, frame: bytes) -> None:
        # Lines before `RPRT`: a header naming the awaited command starts a fresh reply; lines
        # of any other reply (late, stray, garbage) are dropped.
        text = frame.decode("utf-8", errors="replace")
        if self._expect is not None and text.startswith(f"{self._expect}:"):
            self._header_seen = True
            self._lines = []
        elif self._header_seen:
            self._lines.append(text)
        else:
            log.debug("rigctld: dropped %r", text)

    def _is_end(self, frame: bytes) -> bool:
        return self._header_seen and RPRT.fullmatch(frame) is not None

    async def _command(
        self, cmd: str, *args: str | int, optional: bool = False
    ) -> dict[str, str] | None:
        """Runs `+\\cmd args`; returns the reply's `Key: value` lines as a dict, or None when
        `optional` and the rig lacks the function (ENIMPL/ENAVAIL)."""
        what = " ".join((cmd, *map(str, args)))
        self._expect, self._header_seen, self._lines = cmd, False, []
        try:
            end = await self._request_anew(what)
            lines = self._lines
        finally:
            self._expect, self._header_seen, self._lines = None, False, []
        match = RPRT.fullmatch(end)
        assert match is not None  # _is_end accepted it
        code = int(match.group(1))
        if code == 0:
            values: dict[str, str] = {}
            for line in lines:
                key, _, value = line.partition(":")
                values[key.strip()] = value.strip()
            return values
        if optional and code in (ENIMPL, ENAVAIL):
            return None
        name, meaning = HAMLIB_ERRORS.get(-code, (f"error {code}", "unknown Hamlib error"))
        if code > 0:
            raise CatProtocolError(f"rigctld: unexpected RPRT {code} to {what}")
        raise CatRejected(f"rigctld: the rig refused {what}: {name} ({meaning})")

    async def _get(self, cmd: str, key: str, *, optional: bool = False) -> str | None:
        values = await self._command(cmd, optional=optional)
        if values is None:
            return None
        if key not in values:
            raise CatProtocolError(f"rigctld: the answer to {cmd} has no {key!r} line")
        return values[key]

    async def _get_int(self, cmd: str, key: str, *, optional: bool = False) -> int | None:
        text = await self._get(cmd, key, optional=optional)
        if text is None:
            return None
        try:
            return int(float(text))  # Hamlib prints some numbers as floats
        except ValueError:
            raise CatProtocolError(f"rigctld: {key} {text!r} from {cmd} is not a number") from None

    # ------------------------------------------------------------------ rig API
    async def probe(self) -> RigIdentity:
        caps = await self._command("dump_caps")
        assert caps is not None
        model = caps.get("Model name")
        if model is None:
            raise CatProtocolError("rigctld: dump_caps did not name a model")
        maker = caps.get("Mfg name", "")
        hz = await self._get_int("get_freq", "Frequency")
        return RigIdentity(
            model=f"{maker} {model}".strip(), detail=f"rigctld at {self.url}, on {hz} Hz"
        )

    async def set_tuning(self, tuning: Tuning) -> None:
        # Everything is checked before the first line goes out.
        for hz in (tuning.rx_hz, tuning.tx_hz):
            if not 0 < hz < 10**12:
                raise CatError(f"rigctld: {hz} Hz is not a frequency a rig can be tuned to")
        offset = tuning.tx_hz - tuning.rx_hz
        ctcss = dcs = 0
        if tuning.ctcss_hz is not None:
            message = f"rigctld: {tuning.ctcss_hz:g} Hz is not a standard CTCSS tone"
            ctcss_index(tuning.ctcss_hz, message)
            ctcss = round(tuning.ctcss_hz * 10)
        if tuning.dcs is not None:
            message = (
                f"rigctld: {tuning.dcs!r} is not a DCS code Hamlib can set "
                "(standard code, normal polarity, like 023N)"
            )
            code = dcs_code(tuning.dcs, message)
            if code.inverted:
                raise CatError(message)
            dcs = int(code.digits)
        if ctcss and dcs:
            raise CatError("rigctld: a channel has CTCSS or DCS, not both")

        await self._command("set_freq", tuning.rx_hz)
        await self._command("set_mode", MODES[tuning.mode], 0)
        shift = "+" if offset > 0 else "-" if offset < 0 else "0"
        await self._command("set_rptr_shift", shift, optional=offset == 0)
        if offset:
            await self._command("set_rptr_offs", abs(offset))
        # Off first, so the rig never has both tone kinds on.
        for cmd, value in (
            ("set_ctcss_tone", ctcss),
            ("set_ctcss_sql", ctcss),
            ("set_dcs_code", dcs),
            ("set_dcs_sql", dcs),
        ):
            if value == 0:
                await self._command(cmd, 0, optional=True)
        for cmd, value in (
            ("set_ctcss_tone", ctcss),
            ("set_ctcss_sql", ctcss),
            ("set_dcs_code", dcs),
            ("set_dcs_sql", dcs),
        ):
            if value:
                await self._command(cmd, value)

    async def read_tuning(self) -> Tuning:
        rx_hz = await self._get_int("get_freq", "Frequency")
        assert rx_hz is not None
        mode_name = await self._get("get_mode", "Mode")
        mode = next((m for m, token in MODES.items() if token == mode_name), None)
        if mode is None:
            raise CatProtocolError(f"rigctld: the rig is in mode {mode_name}, not FM/FMN/AM")
        shift = await self._get("get_rptr_shift", "Rptr Shift", optional=True)
        offset = 0
        if shift in ("+", "-"):
            offs = await self._get_int("get_rptr_offs", "Rptr Offset")
            assert offs is not None
            offset = offs if shift == "+" else -offs
        elif shift not in (None, "None"):
            raise CatProtocolError(f"rigctld: unknown repeater shift {shift!r}")
        tone = await self._get_int("get_ctcss_tone", "CTCSS Tone", optional=True)
        code = await self._get_int("get_dcs_code", "DCS Code", optional=True)
        return Tuning(
            rx_hz,
            rx_hz + offset,
            mode,
            ctcss_hz=tone / 10 if tone else None,
            dcs=f"{code:03d}N" if code else None,
        )

    async def set_ptt(self, on: bool) -> None:
        try:
            await self._command("set_ptt", int(on))
        except BaseException:
            if on:
                self._unkey_best_effort()
            raise

    def _unkey_best_effort(self) -> None:
        """After a failed or cancelled key-up the rig may be keyed anyway: send PTT off without
        waiting (see `CatDriver._write_now`; no command awaits its reply, so it is dropped)."""
        if self._write_now(b"+\\set_ptt 0\n"):
            log.warning("rigctld: key-up failed; sent PTT off best-effort")

    async def read_busy(self) -> bool:
        dcd = await self._get_int("get_dcd", "DCD")
        if dcd not in (0, 1):
            raise CatProtocolError(f"rigctld: DCD {dcd} is neither 0 nor 1")
        return dcd == 1
