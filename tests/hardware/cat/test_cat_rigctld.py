"""The rigctld driver against the real `rigctld -m 1` (Hamlib's dummy rig), and against a tiny
TCP server of our own standing in for a broken rigctld (garbage, silence, refusals)."""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

import pytest

from gateway.hardware.cat.base import Tuning
from gateway.hardware.cat.errors import (
    CatError,
    CatLinkLost,
    CatProtocolError,
    CatRejected,
    CatTimeout,
)
from gateway.hardware.cat.rigctld import RigctldDriver
from tests.support.emulators.drive import drive, until
from tests.support.rigctld import RIGCTLD, free_port, start_rigctld

T = TypeVar("T")
needs_rigctld = pytest.mark.skipif(RIGCTLD is None, reason="rigctld (libhamlib-utils) missing")


class FastRigctld(RigctldDriver):
    timeout_s = 0.3


@pytest.fixture
def rigctld() -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    # -P RIG: the dummy rig keys through CAT (its default PTT type is None, which refuses).
    proc, port = start_rigctld("-P", "RIG")
    yield proc, port
    proc.kill()
    proc.wait(timeout=10)


@pytest.fixture
def rigctld_no_ptt() -> Iterator[int]:
    proc, port = start_rigctld()
    yield port
    proc.kill()
    proc.wait(timeout=10)


def run(port: int, body: Callable[[FastRigctld], Awaitable[T]]) -> T:
    return drive(lambda: FastRigctld("127.0.0.1", port), body)


# ---------------------------------------------------------------------- framer
@pytest.mark.parametrize(
    ("data", "lines"),
    [
        (
            b"get_freq:\nFrequency: 145500000\nRPRT 0\n",
            [b"get_freq:", b"Frequency: 145500000", b"RPRT 0"],
        ),
        (b"RPRT -1\r\n", [b"RPRT -1"]),
        (b"\n\n  \nRPRT 0\n", [b"RPRT 0"]),
    ],
)
def test_framer(data: bytes, lines: list[bytes]) -> None:
    for chunk in (len(data), 1):
        got: list[bytes] = []
        buffer = b""
        for i in range(0, len(data), chunk):
            buffer += data[i : i + chunk]
            while buffer:
                consumed, line = RigctldDriver.framer(buffer)
                if consumed == 0:
                    break
                buffer = buffer[consumed:]
                if line is not None:
                    got.append(line)
        assert got == lines


def test_framer_drops_overlong_junk() -> None:
    assert RigctldDriver.framer(b"RPRT") == (0, None)
    assert RigctldDriver.framer(b"\x00" * 5000) == (5000, None)


# ---------------------------------------------------------------------- the real rigctld
@needs_rigctld
def test_probe(rigctld: tuple[subprocess.Popen[bytes], int]) -> None:
    ident = run(rigctld[1], lambda d: d.probe())
    assert ident.model == "Hamlib Dummy"
    assert "Hz" in ident.detail


@needs_rigctld
@pytest.mark.parametrize(
    "tuning",
    [
        Tuning(145_500_000, 145_500_000, "fm"),
        Tuning(146_940_000, 146_340_000, "nfm", ctcss_hz=88.5),
        Tuning(440_000_000, 445_000_000, "fm", dcs="023N"),
        Tuning(124_000_000, 124_000_000, "am"),
    ],
)
def test_tune_and_read_back(rigctld: tuple[subprocess.Popen[bytes], int], tuning: Tuning) -> None:
    async def body(d: FastRigctld) -> Tuning:
        await d.set_tuning(Tuning(100_000_000, 100_600_000, "fm", ctcss_hz=250.3))
        await d.set_tuning(tuning)  # retuning clears the previous channel's tone and shift
        return await d.read_tuning()

    assert run(rigctld[1], body) == tuning


@needs_rigctld
def test_key_unkey_and_dcd(rigctld: tuple[subprocess.Popen[bytes], int]) -> None:
    async def body(d: FastRigctld) -> list[int | bool | None]:
        seen: list[int | bool | None] = []
        await d.set_ptt(True)
        seen.append(await d._get_int("get_ptt", "PTT"))
        await d.set_ptt(False)
        seen.append(await d._get_int("get_ptt", "PTT"))
        seen.append(await d.read_busy())  # the dummy rig's DCD is always closed
        return seen

    assert run(rigctld[1], body) == [1, 0, False]


def hamlib_version() -> tuple[int, int]:
    assert RIGCTLD is not None
    out = subprocess.run([RIGCTLD, "--version"], capture_output=True, text=True, timeout=10)
    found = re.search(r"Hamlib (\d+)\.(\d+)", out.stdout)
    assert found, f"rigctld --version said {out.stdout!r}"
    return int(found[1]), int(found[2])


@needs_rigctld
def test_dummy_ptt_without_ptt_type_as_each_hamlib_release_answers(rigctld_no_ptt: int) -> None:
    """Started without -P, Hamlib 4.5's dummy (Debian 12) has no PTT and answers RPRT -1 to
    set_ptt; Hamlib 4.6's (Debian 13) keys itself. The driver reports what rigctld says in both:
    a refusal is CatRejected (and an unkey goes out: test_failed_key_up_sends_unkey), an
    accepted key-up is read back keyed."""

    async def key_and_read_back(d: FastRigctld) -> tuple[str | None, str | None]:
        await d.set_ptt(True)
        keyed = await d._get("get_ptt", "PTT")
        await d.set_ptt(False)
        return keyed, await d._get("get_ptt", "PTT")

    if hamlib_version() < (4, 6):
        with pytest.raises(CatRejected, match=r"^rigctld: the rig refused set_ptt 1: EINVAL"):
            run(rigctld_no_ptt, lambda d: d.set_ptt(True))
    else:
        assert run(rigctld_no_ptt, key_and_read_back) == ("1", "0")


@needs_rigctld
def test_rprt_error_on_raw_command(rigctld: tuple[subprocess.Popen[bytes], int]) -> None:
    with pytest.raises(CatRejected, match=r"refused set_vfo BOGUS: EINVAL \(invalid parameter\)"):
        run(rigctld[1], lambda d: d._command("set_vfo", "BOGUS"))


@needs_rigctld
def test_rigctld_killed_mid_session(rigctld: tuple[subprocess.Popen[bytes], int]) -> None:
    proc, port = rigctld

    async def body(d: FastRigctld) -> None:
        assert await d.read_busy() is False
        proc.kill()
        await asyncio.to_thread(proc.wait, 10)  # gone, and its end of the socket with it
        await until(lambda: not d.is_open, what="the driver seeing the connection close")
        await d.read_busy()

    with pytest.raises(CatLinkLost, match=r"^rigctld: 127\.0\.0\.1:\d+ "):
        run(port, body)


def test_connection_refused() -> None:
    port = free_port()
    with pytest.raises(CatLinkLost, match=r"cannot connect to .*Connection refused.*running"):
        run(port, lambda d: d.read_busy())


@needs_rigctld
def test_connecting_as_another_client_hangs_up(
    rigctld: tuple[subprocess.Popen[bytes], int],
) -> None:
    # rigctld closes a finished client's descriptor three times; a client that connects in that
    # instant may find its new connection closed before the first reply (one in twelve here).
    port = rigctld[1]

    async def main() -> list[int]:
        tuned: list[int] = []
        for i in range(100):
            # The plain client meets the same race after the driver's previous session: its
            # connection may be reset too. Only the driver under test must ride it out.
            with socket.create_connection(("127.0.0.1", port), timeout=5) as other:
                reply = b""
                with contextlib.suppress(ConnectionResetError, BrokenPipeError):
                    other.sendall(b"+\\get_freq\n")
                    while b"RPRT" not in reply and (chunk := other.recv(1024)):
                        reply += chunk
            driver = FastRigctld("127.0.0.1", port)
            await driver.open()
            try:
                hz = 145_000_000 + 12_500 * i
                await driver.set_tuning(Tuning(hz, hz, "fm"))
                tuned.append((await driver.read_tuning()).rx_hz)
            finally:
                await driver.close()
        return tuned

    assert asyncio.run(main()) == [145_000_000 + 12_500 * i for i in range(100)]


# ---------------------------------------------------------------------- a broken rigctld
Handler = Callable[[str], bytes | None]


def ok(line: str) -> bytes:
    name, _, args = line.removeprefix("+\\").partition(" ")
    return f"{name}: {args}\nRPRT 0\n".encode()


def run_fake(
    handler: Handler, body: Callable[[FastRigctld], Awaitable[T]], seen: list[str] | None = None
) -> T:
    seen = [] if seen is None else seen

    served: list[asyncio.Task[None]] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        served.append(task)
        while line := await reader.readline():
            text = line.decode().rstrip("\n")
            seen.append(text)
            reply = handler(text)
            if reply == b"CLOSE":
                writer.close()
                return
            if reply:
                writer.write(reply)

    async def main() -> T:
        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        driver = FastRigctld("127.0.0.1", port)
        await driver.open()
        try:
            return await body(driver)
        finally:
            await driver.close()
            # The server reads to the end of what was sent (the unkey last), then EOF.
            if served:
                _, reading = await asyncio.wait(served, timeout=10)
                assert not reading, "the server did not read to the end of the connection"
            server.close()

    return asyncio.run(main())


def test_garbage_around_reply_is_skipped() -> None:
    def handler(line: str) -> bytes:
        return (
            b"\x00\xffjunk\nRPRT 0\nget_freq:\nRPRT -9\n"  # noise, a stray reply of another cmd
            b"get_dcd:\nDCD: 1\nRPRT 0\n"
        )

    assert run_fake(handler, lambda d: d.read_busy()) is True


def test_garbage_value_is_protocol_error() -> None:
    def handler(line: str) -> bytes:
        return b"get_dcd:\nDCD: maybe\nRPRT 0\n"

    with pytest.raises(CatProtocolError, match="DCD 'maybe' from get_dcd is not a number"):
        run_fake(handler, lambda d: d.read_busy())


def test_missing_value_is_protocol_error() -> None:
    with pytest.raises(CatProtocolError, match="no 'DCD' line"):
        run_fake(ok, lambda d: d.read_busy())


def test_garbage_only_times_out() -> None:
    started = time.monotonic()
    with pytest.raises(CatTimeout, match=r"^rigctld: no answer to get_dcd after 1 tries"):
        run_fake(lambda line: b"\x01\x02garbage\nRPRT 0\n", lambda d: d.read_busy())
    assert time.monotonic() - started < 2


def test_silence_times_out() -> None:
    with pytest.raises(CatTimeout, match="no answer to get_dcd"):
        run_fake(lambda line: None, lambda d: d.read_busy())


def test_server_closes_mid_command() -> None:
    seen: list[str] = []
    with pytest.raises(CatLinkLost, match="went away during get_dcd"):
        run_fake(lambda line: b"CLOSE", lambda d: d.read_busy(), seen)
    # A new connection cut before any answer is made once more, then the loss is reported.
    assert seen == ["+\\get_dcd", "+\\get_dcd"]


def test_a_new_connection_cut_before_its_first_answer_is_made_again() -> None:
    seen: list[str] = []

    def handler(line: str) -> bytes:
        return b"CLOSE" if len(seen) == 1 else b"get_dcd:\nDCD: 1\nRPRT 0\n"

    assert run_fake(handler, lambda d: d.read_busy(), seen) is True
    assert seen == ["+\\get_dcd", "+\\get_dcd"]


def test_a_connection_that_answered_is_not_made_again() -> None:
    seen: list[str] = []

    def handler(line: str) -> bytes:
        return b"CLOSE" if line == "+\\get_dcd" else ok(line)

    async def body(d: FastRigctld) -> bool:
        await d.set_ptt(False)  # answered: this connection is known good
        return await d.read_busy()

    with pytest.raises(CatLinkLost, match="went away during get_dcd"):
        run_fake(handler, body, seen)
    assert seen == ["+\\set_ptt 0", "+\\get_dcd"]


def test_failed_key_up_sends_unkey() -> None:
    def handler(line: str) -> bytes:
        return b"set_ptt: 1\nRPRT -9\n" if line == "+\\set_ptt 1" else ok(line)

    seen: list[str] = []
    with pytest.raises(CatRejected, match="refused set_ptt 1: ERJCTED"):
        run_fake(handler, lambda d: d.set_ptt(True), seen)
    assert seen == ["+\\set_ptt 1", "+\\set_ptt 0"]


def test_silent_key_up_sends_unkey() -> None:
    seen: list[str] = []
    with pytest.raises(CatTimeout):
        run_fake(lambda line: None, lambda d: d.set_ptt(True), seen)
    assert seen == ["+\\set_ptt 1", "+\\set_ptt 0"]


def test_wrong_frequency_read_back() -> None:
    def handler(line: str) -> bytes:
        replies = {
            "+\\get_freq": b"get_freq:\nFrequency: 145525000\nRPRT 0\n",
            "+\\get_mode": b"get_mode:\nMode: FM\nPassband: 15000\nRPRT 0\n",
            "+\\get_rptr_shift": b"get_rptr_shift:\nRptr Shift: None\nRPRT 0\n",
            "+\\get_ctcss_tone": b"get_ctcss_tone:\nRPRT -11\n",
            "+\\get_dcs_code": b"get_dcs_code:\nDCS Code: 0\nRPRT 0\n",
        }
        return replies.get(line) or ok(line)

    async def body(d: FastRigctld) -> Tuning:
        await d.set_tuning(Tuning(145_500_000, 145_500_000, "fm"))
        return await d.read_tuning()

    assert run_fake(handler, body) == Tuning(145_525_000, 145_525_000, "fm")


@pytest.mark.parametrize(
    ("tuning", "message"),
    [
        (Tuning(0, 0), "not a frequency"),
        (Tuning(145_500_000, 145_500_000, ctcss_hz=88.6), "not a standard CTCSS tone"),
        (Tuning(145_500_000, 145_500_000, dcs="999N"), "not a DCS code"),
        (Tuning(145_500_000, 145_500_000, dcs="023I"), "normal polarity"),
        (Tuning(145_500_000, 145_500_000, ctcss_hz=88.5, dcs="023N"), "not both"),
    ],
)
def test_unrepresentable_rejected_before_sending(tuning: Tuning, message: str) -> None:
    seen: list[str] = []
    with pytest.raises(CatError, match=message):
        run_fake(ok, lambda d: d.set_tuning(tuning), seen)
    assert seen == []
