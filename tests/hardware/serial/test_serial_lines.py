"""Serial modem lines: PTT on RTS/DTR, COS from CTS/DSR/DCD/RI, polled, debounced, shared.

Most tests use pyserial's loop:// port, which wires RTS to CTS and DTR to DSR: keying a PTT line
is seen on the COS line of the same port, so one port plays both the gateway's cable and the
radio. A real pseudo-terminal shows what loop:// cannot: the kernel's hang-up on close (HUPCL)
and a device without modem lines. Adapter loss is a loop:// port that starts failing with EIO.
"""

from __future__ import annotations

import asyncio
import errno
import os
import termios
import threading
import time
from collections.abc import Callable, Iterator

import pytest
import serial

from gateway.hardware.keying import LineCarrier, LinePtt, UnkeyFailed
from gateway.hardware.serial.lines import (
    CosLine,
    CosPoller,
    Debouncer,
    PttLine,
    SerialLines,
    SerialLinesError,
)
from tests.support.serial_loop import Changes, Factory, FailingLoop, RecordingLoop


@pytest.fixture
def changes() -> Changes:
    return Changes()


@pytest.fixture
def lost() -> list[str]:
    return []


@pytest.fixture(autouse=True)
def no_threads_left() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:
        extra = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        if not extra:
            return
        time.sleep(0.01)
    pytest.fail(f"threads left running: {extra}")


# --- opening never keys, closing unkeys ---------------------------------------------------------


@pytest.mark.parametrize(
    ("rts_invert", "dtr_invert"), [(False, False), (True, False), (False, True), (True, True)]
)
def test_opening_never_asserts_a_ptt_line(rts_invert: bool, dtr_invert: bool) -> None:
    factory = Factory()
    lines = SerialLines(
        "loop://",
        ptt=[PttLine("a", "rts", rts_invert), PttLine("b", "dtr", dtr_invert)],
        factory=factory,
    )
    lines.open()
    port = factory.ports[0]
    # Inactive levels, inversion applied, were set on the unopened port...
    assert port.before_open == (rts_invert, dtr_invert)
    # ...and opening applied nothing else: no instant where a radio was keyed.
    assert port.applied == [("dtr", dtr_invert), ("rts", rts_invert)]
    assert (port.cts, port.dsr) == (rts_invert, dtr_invert)
    lines.close()


def test_lines_no_radio_keys_stay_negated() -> None:
    factory = Factory()
    with SerialLines("loop://", cos=[CosLine("a", "cts")], factory=factory):
        assert factory.ports[0].before_open == (False, False)
        assert not any(level for _, level in factory.ports[0].applied)


def test_set_line_applies_inversion_and_close_unkeys() -> None:
    factory = Factory()
    lines = SerialLines(
        "loop://", ptt=[PttLine("a", "rts"), PttLine("b", "dtr", invert=True)], factory=factory
    )
    lines.open()
    port = factory.ports[0]
    lines.set_line("rts", True)
    lines.set_ptt("b", True)
    assert (port.rts, port.dtr) == (True, False)  # b is keyed by negating DTR
    lines.close()
    assert port.applied[-2:] == [("rts", False), ("dtr", True)]  # both unkeyed, then closed
    assert not port.is_open
    lines.close()  # idempotent


def test_set_line_without_a_radio_on_it_is_refused() -> None:
    with SerialLines("loop://", ptt=[PttLine("a", "rts")], factory=Factory()) as lines:
        with pytest.raises(SerialLinesError, match=r"^DTR of loop:// keys no radio \(PTT lines"):
            lines.set_line("dtr", True)
        with pytest.raises(SerialLinesError, match=r"^nobody has no PTT line on loop://$"):
            lines.set_ptt("nobody", True)


def test_two_radios_on_one_line_is_an_error() -> None:
    with pytest.raises(SerialLinesError, match=r"^RTS of loop:// keys both a and b$"):
        SerialLines("loop://", ptt=[PttLine("a", "rts"), PttLine("b", "rts")])
    with pytest.raises(SerialLinesError, match=r"^CTS of loop:// is the squelch of both a and b$"):
        SerialLines("loop://", cos=[CosLine("a", "cts"), CosLine("b", "cts")])


def test_open_failure_is_one_sentence() -> None:
    lines = SerialLines("/dev/crosspatch-test-no-such-port", ptt=[PttLine("a", "rts")])
    with pytest.raises(SerialLinesError) as info:
        lines.open()
    assert str(info.value) == (
        "cannot open /dev/crosspatch-test-no-such-port: No such file or directory"
    )
    assert not lines.is_open


def test_read_inputs_raw_levels() -> None:
    with SerialLines("loop://", ptt=[PttLine("a", "rts", invert=True)], factory=Factory()) as sl:
        # loop:// reports CD asserted and RI negated, always; RTS is asserted (inverted, idle).
        assert sl.read_inputs() == {"cts": True, "dsr": False, "dcd": True, "ri": False}


# --- a real tty: hang-up on close, and no modem lines ------------------------------------------


@pytest.fixture
def pty() -> Iterator[tuple[str, int]]:
    master, slave = os.openpty()
    try:
        yield os.ttyname(slave), slave
    finally:
        os.close(slave)
        os.close(master)


def _set_hupcl(fd: int) -> None:
    attributes = termios.tcgetattr(fd)
    attributes[2] |= termios.HUPCL
    termios.tcsetattr(fd, termios.TCSANOW, attributes)


def test_inverted_ptt_clears_the_hang_up_at_open(pty: tuple[str, int]) -> None:
    """Dropping RTS on close (or on a crash) would key an inverted PTT: HUPCL goes at open."""
    path, slave = pty
    _set_hupcl(slave)
    lines = SerialLines(path, ptt=[PttLine("a", "rts", invert=True)])
    lines.open()
    assert not termios.tcgetattr(slave)[2] & termios.HUPCL
    lines.close()  # a pty has no modem lines (ENOTTY): nothing to unkey, no error


def test_normal_ptt_keeps_the_hang_up(pty: tuple[str, int]) -> None:
    path, slave = pty
    _set_hupcl(slave)
    with SerialLines(path, ptt=[PttLine("a", "dtr")]):
        assert termios.tcgetattr(slave)[2] & termios.HUPCL


def test_a_tty_without_modem_lines_is_named(
    pty: tuple[str, int], changes: Changes, lost: list[str]
) -> None:
    path, _ = pty
    with SerialLines(path, cos=[CosLine("a", "cts")]) as lines:
        poller = CosPoller(lines, changes, lost.append)
        assert poller.poll_once() is False
    assert lost == [
        f"{path} has no modem control lines (Inappropriate ioctl for device): "
        "it is not a serial port"
    ]
    assert changes.items == []


# --- the poller ---------------------------------------------------------------------------------


def test_ptt_on_rts_is_seen_as_cos_on_cts_within_10_ms(changes: Changes, lost: list[str]) -> None:
    # One port, two radios, as Dire Wolf allows: "tx" keyed on RTS, "rx" hears on CTS (and
    # loop:// wires one to the other, so keying tx is rx receiving).
    lines = SerialLines(
        "loop://", ptt=[PttLine("tx", "rts")], cos=[CosLine("rx", "cts")], factory=Factory()
    )
    with lines, CosPoller(lines, changes, lost.append, debounce_s=0.0):
        changes.wait("rx", False)  # the initial state
        keyed = time.monotonic()
        lines.set_ptt("tx", True)
        at, arrived = changes.wait("rx", True)
        assert at - keyed < 0.010
        assert arrived - keyed < 0.100  # generous: thread scheduling on a loaded CI machine
        lines.set_ptt("tx", False)
        changes.wait("rx", False)
    assert changes.of("rx") == [False, True, False]
    assert lost == []


def test_debounced_change_is_reported_with_the_time_it_began(
    changes: Changes, lost: list[str]
) -> None:
    lines = SerialLines(
        "loop://", ptt=[PttLine("tx", "dtr")], cos=[CosLine("rx", "dsr")], factory=Factory()
    )
    with lines, CosPoller(lines, changes, lost.append, poll_s=0.005, debounce_s=0.010):
        changes.wait("rx", False)
        keyed = time.monotonic()
        lines.set_line("dtr", True)
        at, arrived = changes.wait("rx", True)
        assert at - keyed < 0.010  # stamped when first seen...
        assert arrived - at >= 0.010  # ...reported once it has held for debounce_s


def test_a_3_ms_glitch_is_rejected(changes: Changes, lost: list[str]) -> None:
    factory = Factory()
    lines = SerialLines(
        "loop://", ptt=[PttLine("tx", "rts")], cos=[CosLine("rx", "cts")], factory=factory
    )
    with lines, CosPoller(lines, changes, lost.append, poll_s=0.001, debounce_s=0.010):
        changes.wait("rx", False)
        glitches = 0
        for _ in range(20):
            began = time.perf_counter()
            lines.set_line("rts", True)
            while time.perf_counter() - began < 0.003:
                pass
            lines.set_line("rts", False)
            if time.perf_counter() - began < 0.008:  # a descheduled test thread is no glitch
                glitches += 1
            time.sleep(0.015)  # idle between glitches, longer than the debounce
        assert glitches > 0
        # Not happening: the poller samples the idle line for well past the debounce (30 reads
        # of 1 ms) without reporting the last glitch.
        port = factory.ports[0]
        reads = port.cts_reads
        deadline = time.monotonic() + 5.0
        while port.cts_reads < reads + 30 and time.monotonic() < deadline:
            time.sleep(0.002)
        assert port.cts_reads >= reads + 30, "the poller stopped sampling"
    # With a 1 ms poll the glitch is sampled, but never for 10 ms: no change is reported.
    assert changes.of("rx") == [False]


def test_inverted_cos(changes: Changes, lost: list[str]) -> None:
    lines = SerialLines(
        "loop://",
        ptt=[PttLine("tx", "rts")],
        cos=[CosLine("rx", "cts", invert=True)],
        factory=Factory(),
    )
    with lines, CosPoller(lines, changes, lost.append, debounce_s=0.0):
        changes.wait("rx", True)  # CTS negated: an inverted COS is receiving
        lines.set_line("rts", True)
        changes.wait("rx", False)


def test_shared_port_two_radios_each_way(changes: Changes, lost: list[str]) -> None:
    # Radio a: PTT on RTS, COS on DSR. Radio b: PTT on DTR (inverted), COS on CTS. loop://
    # wires a's PTT to b's COS and b's PTT to a's COS.
    lines = SerialLines(
        "loop://",
        ptt=[PttLine("a", "rts"), PttLine("b", "dtr", invert=True)],
        cos=[CosLine("a", "dsr", invert=True), CosLine("b", "cts")],
        factory=Factory(),
    )
    with lines, CosPoller(lines, changes, lost.append, debounce_s=0.0):
        changes.wait("a", False)
        changes.wait("b", False)
        lines.set_ptt("a", True)
        changes.wait("b", True)
        lines.set_ptt("b", True)  # negates DTR: a's inverted COS on DSR is receiving
        changes.wait("a", True)
        lines.set_ptt("a", False)
        lines.set_ptt("b", False)
        changes.wait("a", False)
        changes.wait("b", False)
    assert changes.of("a") == [False, True, False]
    assert changes.of("b") == [False, True, False]


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (errno.EIO, "Input/output error"),
        (errno.ENODEV, "No such device"),
    ],
)
def test_port_lost_is_reported_once(code: int, reason: str, changes: Changes) -> None:
    factory = Factory(FailingLoop)
    lines = SerialLines(
        "/dev/ttyUSB7", ptt=[PttLine("tx", "rts")], cos=[CosLine("rx", "cts")], factory=factory
    )
    lost: list[str] = []
    lost_event = threading.Event()

    def on_lost(why: str) -> None:
        lost.append(why)
        lost_event.set()

    with lines:
        poller = CosPoller(lines, changes, on_lost)
        with poller:
            changes.wait("rx", False)
            factory.ports[0].fail_errno = code
            assert lost_event.wait(10.0)
            deadline = time.monotonic() + 5.0
            while poller.running and time.monotonic() < deadline:
                time.sleep(0.005)
            assert not poller.running  # stopped: it cannot report the loss again
        lines.close()
    assert lost == [
        f"serial port /dev/ttyUSB7 is gone ({reason}): the USB adapter was unplugged or reset"
    ]


def test_closing_under_a_poller_is_not_a_loss(changes: Changes, lost: list[str]) -> None:
    lines = SerialLines("loop://", cos=[CosLine("rx", "cts")], factory=Factory())
    lines.open()
    with CosPoller(lines, changes, lost.append) as poller:
        changes.wait("rx", False)
        lines.close()
        deadline = time.monotonic() + 5.0
        while poller.running and time.monotonic() < deadline:
            time.sleep(0.005)
        assert not poller.running
    assert lost == []


def test_a_failing_callback_does_not_stop_polling(lost: list[str]) -> None:
    seen: list[bool] = []

    def flaky(radio: str, active: bool, at: float) -> None:
        seen.append(active)
        if len(seen) == 1:
            raise RuntimeError("consumer bug")

    lines = SerialLines(
        "loop://", ptt=[PttLine("tx", "rts")], cos=[CosLine("rx", "cts")], factory=Factory()
    )
    with lines, CosPoller(lines, flaky, lost.append, debounce_s=0.0):
        deadline = time.monotonic() + 5.0
        while not seen and time.monotonic() < deadline:
            time.sleep(0.002)
        lines.set_line("rts", True)
        while len(seen) < 2 and time.monotonic() < deadline:
            time.sleep(0.002)
    assert seen == [False, True]


# --- the debouncer, in simulated time -----------------------------------------------------------


def test_debouncer_rules() -> None:
    d = Debouncer(hold_s=0.010)
    assert d.update(False, 0.000) == (False, 0.000)  # the first sample sets the state
    assert d.update(True, 0.005) is None  # seen once
    assert d.update(False, 0.008) is None  # gone after 3 ms: rejected
    assert d.update(True, 0.020) is None
    assert d.update(True, 0.025) is None
    assert d.update(True, 0.030) == (True, 0.020)  # held 10 ms: reported as of 0.020
    assert d.update(True, 0.035) is None
    assert d.state is True


def test_serial_exceptions_are_reasons_too(changes: Changes) -> None:
    class Unplugged(RecordingLoop):
        @property
        def cts(self) -> bool:
            raise serial.SerialException("read failed: device reports readiness to read")

    lost: list[str] = []
    lines = SerialLines("loop://", cos=[CosLine("rx", "cts")], factory=Factory(Unplugged))
    with lines:
        assert CosPoller(lines, changes, lost.append).poll_once() is False
    assert lost == ["serial port loop:// failed: read failed: device reports readiness to read"]


# --- the keying seam: one radio's PTT and carrier, driven from the asyncio loop ------------------


async def _until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.002)


def test_line_ptt_opens_unkeyed_and_keys_only_its_own_line() -> None:
    factory = Factory()
    lines = SerialLines(
        "loop://", ptt=[PttLine("a", "rts"), PttLine("b", "dtr", invert=True)], factory=factory
    )
    ptt = LinePtt(lines, "b")
    assert ptt.description == "DTR (inverted) of loop://"

    async def session() -> None:
        await ptt.open()
        port = factory.ports[0]
        assert port.before_open == (False, True)  # both radios unkeyed from the first instant
        await ptt.key()
        assert (port.rts, port.dtr) == (False, False)  # b keyed by negating DTR; a untouched
        await ptt.unkey()
        assert (port.rts, port.dtr) == (False, True)
        await ptt.close()
        assert not port.is_open

    asyncio.run(session())


def test_line_ptt_that_cannot_unkey_says_so_loudly() -> None:
    lines = SerialLines("loop://", ptt=[PttLine("a", "rts")], factory=Factory())
    ptt = LinePtt(lines, "a")

    async def session() -> None:
        await ptt.open()
        await ptt.key()
        lines.close()  # the port gone under the PTT
        with pytest.raises(
            UnkeyFailed,
            match=r"^UNKEY FAILED, check the radio now \(or run crosspatch unkey-all\): ",
        ):
            await ptt.unkey()
        await ptt.close()  # never raises

    asyncio.run(session())


def test_line_carrier_follows_the_cos_line_debounced() -> None:
    lines = SerialLines(
        "loop://", ptt=[PttLine("tx", "rts")], cos=[CosLine("rx", "cts")], factory=Factory()
    )
    carrier = LineCarrier(lines, "rx")
    assert carrier.description == "CTS of loop://"
    assert carrier.state is None  # not known until the first poll

    async def session() -> None:
        await carrier.start()
        try:
            await _until(lambda: carrier.state is False)
            lines.set_ptt("tx", True)  # loop:// wires RTS to CTS: the radio's squelch opens
            await _until(lambda: carrier.state is True)
        finally:
            await carrier.close()
        assert carrier.problem is None

    asyncio.run(session())
