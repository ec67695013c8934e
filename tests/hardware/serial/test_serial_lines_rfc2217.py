"""Serial modem lines on a network device server (RFC 2217), through the real SerialLines.

`rfc2217://host:port` is how a gateway daemon reaches modem lines that a test in another
process drives: the test plays the device server with a radio wired to its port
(tests/support/emulators/line_radio.py), and the gateway opens the URL with pyserial's client,
default settings (no URL options). What loop:// cannot show: the lines cross a socket and pyserial's
Telnet client, and the port can go away while the gateway holds it.

Measured on a 2-CPU machine (poll 5 ms, debounce 5 ms): COS is reported 5-15 ms (median 7) after
the server changes CTS; a PTT level reaches the server within 1 ms of `set_line`, but `set_line`
returns ~50 ms later, as pyserial waits for the server's acknowledgement in 50 ms sleeps.
"""

from __future__ import annotations

import contextlib
import functools
import statistics
import threading
import time
from collections.abc import Callable, Iterator

import numpy as np
import pytest

from gateway.hardware.serial.line_ports import LinePortBank
from gateway.hardware.serial.lines import (
    CosLine,
    CosPoller,
    PttLine,
    SerialLines,
    SerialLinesError,
)
from tests.support.emulators.line_radio import InputLine, LineRadioServer
from tests.support.serial_loop import Changes

# pyserial 3.5's rfc2217 client still calls Thread.setDaemon() and setName().
pytestmark = pytest.mark.filterwarnings(r"ignore:set(Daemon|Name)\(\) is deprecated")

COS_WITHIN_S = 0.100  # generous: one 5 ms poll and a 5 ms debounce on a busy CI machine


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


@pytest.fixture
def radio() -> Iterator[LineRadioServer]:
    with LineRadioServer() as server:
        yield server


@pytest.fixture
def changes() -> Changes:
    return Changes()


def wait_until(what: Callable[[], object], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.002)


# --- PTT: opening never keys, keying reaches the radio -----------------------------------------


@pytest.mark.parametrize("invert", [False, True])
def test_opening_and_closing_never_key(invert: bool) -> None:
    idle = invert  # the inactive level of both PTT lines
    # The device server holds the idle levels before the gateway connects (with inverted PTT
    # that is asserted), so "never keyed" covers every instant, not only what the client set.
    with LineRadioServer(rts=idle, dtr=idle) as radio:
        lines = SerialLines(
            radio.url, ptt=[PttLine("a", "rts", invert), PttLine("b", "dtr", invert)]
        )
        lines.open()
        assert radio.connected
        assert (radio.rts, radio.dtr) == (idle, idle)
        # The client applied both lines while opening, at their idle level only.
        assert radio.levels("rts") == [idle]
        assert radio.levels("dtr") == [idle]
        lines.close()
        wait_until(lambda: not radio.connected)
        history = radio.history
    assert history, "the client set no line at all"
    assert all(level == idle for _, _, level in history), history


def test_ptt_on_rts_and_dtr_reaches_the_radio(radio: LineRadioServer) -> None:
    lines = SerialLines(radio.url, ptt=[PttLine("a", "rts"), PttLine("b", "dtr", invert=True)])
    with lines:
        assert (radio.rts, radio.dtr) == (False, True)
        asked = time.monotonic()
        lines.set_ptt("a", True)
        returned = time.monotonic()
        seen = radio.wait_for("rts", True)
        assert seen - asked < 0.050  # the level reaches the server at once...
        assert returned - asked < 1.0  # ...set_line waits for its acknowledgement (~50 ms)
        lines.set_ptt("b", True)  # inverted: keyed by negating DTR
        radio.wait_for("dtr", False)
        lines.set_ptt("a", False)
        lines.set_ptt("b", False)
        assert (radio.rts, radio.dtr) == (False, True)
        lines.set_ptt("b", True)  # left keyed: closing must unkey it
    assert (radio.rts, radio.dtr) == (False, True)
    assert radio.levels("rts") == [False, True, False, False]  # open, key, unkey, close
    assert radio.levels("dtr") == [True, False, True, False, True]


# --- COS: the radio's squelch reaches the poller ------------------------------------------------


def test_cos_on_cts_and_inverted_dsr_is_reported_promptly(
    radio: LineRadioServer, changes: Changes, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = SerialLines(radio.url, cos=[CosLine("a", "cts"), CosLine("b", "dsr", invert=True)])
    lost: list[str] = []
    latencies: list[float] = []
    with lines, CosPoller(lines, changes, lost.append):
        changes.wait("a", False)
        changes.wait("b", True)  # DSR negated: an inverted COS is receiving
        for i in range(20):
            receiving = i % 2 == 0
            sent = radio.set_input("cts", receiving)
            _, arrived = changes.wait("a", receiving)
            latencies.append(arrived - sent)
            time.sleep(0.013)  # off the poll period's beat, to sample the whole range
        sent = radio.set_input("dsr", True)
        _, arrived = changes.wait("b", False)
        latencies.append(arrived - sent)
    assert lost == []
    assert changes.of("b") == [True, False]
    with capsys.disabled():
        print(
            f"\nCOS over rfc2217: median {statistics.median(latencies) * 1000:.1f} ms, "
            f"max {max(latencies) * 1000:.1f} ms over {len(latencies)} changes"
        )
    assert max(latencies) < COS_WITHIN_S, latencies


def test_every_input_line_reads_through(radio: LineRadioServer) -> None:
    with SerialLines(radio.url, cos=[CosLine("a", "cts")]) as lines:
        assert lines.read_inputs() == {"cts": False, "dsr": False, "dcd": False, "ri": False}
        lines_in: tuple[InputLine, ...] = ("cts", "dsr", "dcd", "ri")
        for line in lines_in:
            radio.set_input(line, True)
            wait_until(functools.partial(lambda name: lines.read_inputs()[name], line))
        assert lines.read_inputs() == {"cts": True, "dsr": True, "dcd": True, "ri": True}


# --- the device server goes away ----------------------------------------------------------------


def test_device_server_going_away_is_reported_once(
    radio: LineRadioServer, changes: Changes
) -> None:
    lines = SerialLines(radio.url, ptt=[PttLine("a", "rts")], cos=[CosLine("a", "cts")])
    lost: list[str] = []
    lost_event = threading.Event()

    def on_lost(why: str) -> None:
        lost.append(why)
        lost_event.set()

    lines.open()
    try:
        with CosPoller(lines, changes, on_lost) as poller:
            changes.wait("a", False)
            radio.set_input("cts", True)
            changes.wait("a", True)  # a call is up: a stale COS would hold it forever
            radio.stop()
            assert lost_event.wait(10.0), "the poller did not notice the device server going"
            wait_until(lambda: not poller.running)  # stopped: it cannot report the loss again
        assert len(lost) == 1 and radio.url in lost[0], lost
        began = time.monotonic()
        lines.close()  # nothing left to unkey: must neither wait nor fail
        assert time.monotonic() - began < 1.0
    finally:
        if lines.is_open:
            with contextlib.suppress(SerialLinesError):
                lines.close()


def test_a_restarted_device_server_serves_a_reopened_port(
    radio: LineRadioServer, changes: Changes
) -> None:
    with SerialLines(radio.url, ptt=[PttLine("a", "rts")]) as lines:
        lines.set_ptt("a", True)
        radio.wait_for("rts", True)
        lines.set_ptt("a", False)
    radio.stop()
    with pytest.raises(
        SerialLinesError, match=r"^cannot open rfc2217://127\.0\.0\.1:\d+: Connection refused$"
    ):
        SerialLines(radio.url, ptt=[PttLine("a", "rts")]).open()
    radio.start()  # the same port: the gateway's configured URL works again
    lines = SerialLines(radio.url, ptt=[PttLine("a", "rts")], cos=[CosLine("a", "cts")])
    lost: list[str] = []
    with lines, CosPoller(lines, changes, lost.append):
        changes.wait("a", False)
        radio.set_input("cts", True)
        changes.wait("a", True)
        lines.set_ptt("a", True)
        radio.wait_for("rts", True)
    assert radio.connections == 2
    assert radio.rts is False
    assert lost == []


# --- the port bank the engine uses --------------------------------------------------------------


def test_line_port_bank_over_rfc2217(radio: LineRadioServer) -> None:
    wiring = SerialLines(radio.url, ptt=[PttLine("b", "rts")], cos=[CosLine("a", "cts")])
    applied: list[tuple[str, bool, float]] = []
    bank = LinePortBank(
        ["a", "b"],
        160,
        [wiring],
        on_ptt_applied=lambda name, on, at: applied.append((name, on, at)),
    )
    bank.start()
    try:
        assert radio.levels("rts") == [False]  # opening keyed nothing
        radio.set_input("cts", True)
        wait_until(lambda: bool(bank.frame()[1][0]))
        tx = np.zeros((2, 160), dtype=np.float32)
        keyed = time.monotonic()
        bank.transmit(tx, np.array([False, True]))
        assert radio.wait_for("rts", True) - keyed < 0.1
        wait_until(lambda: [(name, on) for name, on, _ in applied] == [("b", True)])
    finally:
        bank.close()
    assert radio.rts is False  # closing unkeyed b
    assert radio.levels("rts") == [False, True, False]


def test_a_site_of_device_server_ports_unkeys_and_closes_them_side_by_side() -> None:
    # A device server's port takes a few tenths of a second to close (pyserial waits on the
    # server in 50 ms sleeps): one after another, a site's ports would add up on every stop.
    with contextlib.ExitStack() as stack:
        radios = [stack.enter_context(LineRadioServer()) for _ in range(5)]
        alone = SerialLines(radios[0].url, ptt=[PttLine("r0", "rts")])
        alone.open()
        started = time.monotonic()
        alone.close()
        one_close_s = time.monotonic() - started
        names = [f"r{i}" for i in range(1, 5)]
        wirings = [
            SerialLines(radio.url, ptt=[PttLine(name, "rts")])
            for radio, name in zip(radios[1:], names, strict=True)
        ]
        bank = LinePortBank(names, 160, wirings)
        bank.start()
        bank.transmit(np.zeros((4, 160), dtype=np.float32), np.ones(4, dtype=bool))
        for radio in radios[1:]:
            radio.wait_for("rts", True)
        started = time.monotonic()
        bank.close()
        four_close_s = time.monotonic() - started
        assert [radio.rts for radio in radios[1:]] == [False] * 4  # every radio unkeyed
        # Four ports one after another would take four times one port's close.
        assert four_close_s < 2.5 * one_close_s + 0.1, (one_close_s, four_close_s)
