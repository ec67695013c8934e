"""The engine's clock: a sound card's input paces the ticks (`FramePacer`), and the timer takes
over when that card stops delivering, and gives it back when it returns."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt

from gateway.commands import PatchControl
from gateway.engine import MemberSpec, PatchEngine, PatchSpec, PortSpec, PortTiming
from gateway.events import EventStamper, TickClock
from gateway.hardware.sound_ports import FramePacer
from gateway.runtime import EngineRuntime
from gateway.simulated import SimulatedRadios

FRAME = 160
DEVICE_FRAME = 960  # 20 ms at 48 kHz
TIMING = PortTiming(tx_delay_ms=0, hang_ms=200, timeout_s=60, rx_inhibit_ms=100)


def test_a_tick_is_due_for_each_whole_frame_the_card_delivers() -> None:
    pacer = FramePacer(DEVICE_FRAME)
    assert pacer.wait(0.0) is None
    pacer.feed(480)
    assert pacer.wait(0.01) is None  # half a frame is no tick
    before = time.monotonic()
    pacer.feed(480)
    came = pacer.wait(0.0)
    assert came is not None and before <= came <= time.monotonic()
    pacer.feed(3 * DEVICE_FRAME + 100)  # a burst: three ticks, served at once
    assert all(pacer.wait(0.0) is not None for _ in range(3))
    assert pacer.wait(0.0) is None
    pacer.feed(DEVICE_FRAME - 100)  # with the 100 left over: one more
    assert pacer.wait(0.0) is not None


def test_a_late_engine_catches_up_a_bounded_backlog_and_reset_forgets_it() -> None:
    pacer = FramePacer(DEVICE_FRAME)
    pacer.feed(20 * DEVICE_FRAME)
    served = 0
    while pacer.wait(0.0) is not None:
        served += 1
    assert served == FramePacer.MAX_BACKLOG
    pacer.feed(2 * DEVICE_FRAME + 10)
    pacer.reset()  # the card was lost: nothing stale, and the 10 spare samples are gone
    assert pacer.wait(0.0) is None
    pacer.feed(DEVICE_FRAME - 10)
    assert pacer.wait(0.0) is None


def test_wait_wakes_when_the_card_delivers() -> None:
    pacer = FramePacer(DEVICE_FRAME)
    threading.Timer(0.05, pacer.feed, args=(DEVICE_FRAME,)).start()
    began = time.monotonic()
    came = pacer.wait(2.0)
    assert came is not None and 0.03 < came - began < 1.0


class PacedRadios(SimulatedRadios):
    """Simulated radios whose bank offers a card clock, as `SiteRadios` does with a sound card."""

    def __init__(self, names: list[str]) -> None:
        super().__init__(names, FRAME)
        self.pacer = FramePacer(DEVICE_FRAME)
        self.ticks = 0

    def frame(self) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_]]:
        self.ticks += 1
        return super().frame()


def ticks_in(radios: PacedRadios, seconds: float) -> float:
    """Ticks per second over `seconds`."""
    first = radios.ticks
    time.sleep(seconds)
    return (radios.ticks - first) / seconds


def test_the_engine_follows_the_card_clock_and_falls_back_to_its_timer() -> None:
    ports = [PortSpec("a", "x/a", "x", TIMING), PortSpec("b", "y/b", "y", TIMING)]
    patch = PatchSpec("p", (MemberSpec("a"), MemberSpec("b")))
    engine = PatchEngine(
        ports, [patch], clock=TickClock(datetime(2026, 1, 1, tzinfo=UTC), 20), gateway_id="gw"
    )
    radios = PacedRadios(["a", "b"])
    runtime = EngineRuntime(
        engine, PatchControl(engine, {}, {}), radios, EventStamper("gw"), lambda events: None
    )
    feeding = threading.Event()
    done = threading.Event()

    def card() -> None:
        # A card whose frames come every 12 ms: far faster than the 20 ms timer, so which of
        # the two clocks the engine follows shows in its tick rate.
        while not done.is_set():
            if feeding.is_set():
                radios.pacer.feed(DEVICE_FRAME)
            time.sleep(0.012)

    feeder = threading.Thread(target=card, daemon=True)
    feeder.start()
    runtime.start()
    try:
        feeding.set()
        time.sleep(0.3)
        paced = ticks_in(radios, 1.5)
        feeding.clear()  # the card is unplugged: the timer keeps the engine going
        time.sleep(0.3)
        timed = ticks_in(radios, 1.5)
        feeding.set()  # back: the card rules again
        time.sleep(0.3)
        again = ticks_in(radios, 1.5)
    finally:
        done.set()
        assert runtime.stop()
        feeder.join()
    card_rate, timer_rate = 1 / 0.012, 1 / 0.020
    assert paced > 0.85 * card_rate and again > 0.85 * card_rate, (paced, again)
    assert 0.7 * timer_rate < timed < 1.15 * timer_rate, timed
    assert runtime.stats.overruns == 0
