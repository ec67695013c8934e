"""Serial-line radios patched end to end through the running engine: COS raised on one radio's
line keys the other radio's PTT line, hang holds it, a pulled adapter drops carrier, and closing
unkeys. pyserial's loop:// stands in for the ports (it wires each port's RTS to its own CTS, so
the test raises "the radio's COS" by setting RTS on the COS port)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from gateway.control.patch_control import PatchControl
from gateway.core.engine import MemberSpec, PatchEngine, PatchSpec, PortSpec, PortTiming
from gateway.core.events import Event, EventStamper, TickClock
from gateway.hardware.serial.line_ports import LinePortBank
from gateway.hardware.serial.lines import CosLine, PttLine, SerialLines
from gateway.run.loop import EngineRuntime
from tests.support.serial_loop import Factory, FailingLoop
from tests.support.waits import wait_for

TIMING = PortTiming(tx_delay_ms=0, hang_ms=200, timeout_s=60, rx_inhibit_ms=100)


class Site:
    def __init__(self, factory: Factory) -> None:
        self.cos_port = SerialLines("loop://a", cos=[CosLine("a", "cts")], factory=factory)
        self.ptt_port = SerialLines("loop://b", ptt=[PttLine("b", "rts")], factory=factory)
        self.applied: list[tuple[str, bool, float]] = []
        self.lost: list[tuple[str, str]] = []
        self.events: list[Event] = []
        self.bank = LinePortBank(
            ["a", "b"],
            160,
            [self.cos_port, self.ptt_port],
            on_ptt_applied=lambda radio, on, at: self.applied.append((radio, on, at)),
            on_lost=lambda url, reason: self.lost.append((url, reason)),
        )
        ports = [PortSpec("a", "x/a", "x", TIMING), PortSpec("b", "y/b", "y", TIMING)]
        patch = PatchSpec("p", (MemberSpec("a"), MemberSpec("b")))
        clock = TickClock(datetime(2026, 1, 1, tzinfo=UTC), 20)
        engine = PatchEngine(ports, [patch], clock=clock, gateway_id="gw")
        engine.enable_patch("p")
        control = PatchControl(engine, {}, {})
        self.runtime = EngineRuntime(
            engine, control, self.bank, EventStamper("gw"), self.events.extend
        )
        self.factory = factory

    def loop_port(self, url: str) -> Any:
        return self.factory.ports[self.factory.urls.index(url)]

    def raise_cos(self, on: bool) -> None:
        self.loop_port("loop://a").rts = on


@pytest.fixture
def site() -> Iterator[Site]:
    s = Site(Factory(FailingLoop))
    s.bank.start()
    s.runtime.start()
    yield s
    s.runtime.stop()
    s.bank.close()


def test_cos_on_one_line_keys_ptt_on_the_other_and_hang_holds_it(site: Site) -> None:
    assert site.loop_port("loop://b").before_open == (False, False)  # opening keyed nothing
    raised = time.monotonic()
    site.raise_cos(True)
    keyed = wait_for(lambda: [t for r, on, t in site.applied if r == "b" and on])
    # One 5 ms poll, a 10 ms debounce and one 20 ms tick, with room for a busy machine.
    assert keyed[0] - raised < 0.2
    assert site.loop_port("loop://b").rts is True

    dropped = time.monotonic()
    site.raise_cos(False)
    unkeyed = wait_for(lambda: [t for r, on, t in site.applied if r == "b" and not on])
    assert 0.2 <= unkeyed[0] - dropped < 0.5  # hang_ms 200
    assert site.loop_port("loop://b").rts is False
    kinds = [e["type"] for e in site.events]
    assert "call_start" in kinds and "call_end" in kinds


def test_a_pulled_adapter_drops_carrier_and_is_reported_once(site: Site) -> None:
    site.raise_cos(True)
    wait_for(lambda: [1 for r, on, _ in site.applied if r == "b" and on])
    site.loop_port("loop://a").fail_errno = 5  # EIO: the USB adapter is gone
    wait_for(lambda: site.lost)
    ends = wait_for(lambda: [e for e in site.events if e["type"] == "call_end"])
    assert ends[0]["reason"] == "carrier_drop"
    wait_for(lambda: site.loop_port("loop://b").rts is False)  # b unkeyed after its hang
    # The bank ran on for that hang (200 ms) after the loss, and reported it once.
    assert len(site.lost) == 1 and site.lost[0][0] == "loop://a"


def test_closing_unkeys_a_keyed_radio() -> None:
    s = Site(Factory())
    s.bank.start()
    s.runtime.start()
    try:
        s.raise_cos(True)
        wait_for(lambda: s.loop_port("loop://b").rts is True)
    finally:
        s.runtime.stop()
        s.bank.close()
    rts_levels = [level for line, level in s.loop_port("loop://b").applied if line == "rts"]
    assert rts_levels[-1] is False and True in rts_levels
