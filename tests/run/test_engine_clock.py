"""The engine's clock: a sound card's input paces the ticks (`FramePacer`), and the timer takes
over when that card stops delivering, and gives it back when it returns."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt
import pytest

from gateway.control.patch_control import PatchControl
from gateway.core.engine import MemberSpec, PatchEngine, PatchSpec, PortSpec, PortTiming
from gateway.core.events import EventStamper, TickClock
from gateway.hardware.sound.frame_pacer import CARD_STALL_S, MAX_BACKLOG, FramePacer
from gateway.ports.simulated import SimulatedRadios
from gateway.run.loop import EngineRuntime
from tests.support.waits import wait

FRAME = 160
DEVICE_FRAME = 960  # 20 ms at 48 kHz
TIMING = PortTiming(tx_delay_ms=0, hang_ms=200, timeout_s=60, rx_inhibit_ms=100)


FRAME_S = 0.020


class Clock:
    """Simulated monotonic time."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def pacer_at(clock: Clock, on_skip: Callable[[int], None] | None = None) -> FramePacer:
    return FramePacer(DEVICE_FRAME, FRAME_S, on_skip=on_skip, clock=clock)


def ticks_by(pacer: FramePacer, now: float) -> list[float | None]:
    """Every tick `poll` allows at `now`: card frame times, None for timer ticks."""
    ticks: list[float | None] = []
    while (tick := pacer.poll(now)) is not None:
        ticks.append(tick.due if tick.by_card else None)
    return ticks


def test_a_tick_is_due_for_each_whole_frame_the_card_delivers() -> None:
    pacer = pacer_at(Clock())
    assert ticks_by(pacer, 0.0) == []
    pacer.feed(480, now=0.01)
    assert ticks_by(pacer, 0.01) == []  # half a frame is no tick
    pacer.feed(480, now=0.02)
    assert ticks_by(pacer, 0.02) == [0.02]
    pacer.feed(3 * DEVICE_FRAME + 100, now=0.08)  # a burst: three ticks, served at once
    assert ticks_by(pacer, 0.08) == [0.08, 0.08, 0.08]
    pacer.feed(DEVICE_FRAME - 100, now=0.1)  # with the 100 left over: one more
    assert ticks_by(pacer, 0.1) == [0.1]


def test_the_timer_ticks_only_after_the_stall_limit_on_its_own_deadlines() -> None:
    pacer = pacer_at(Clock())
    pacer.feed(DEVICE_FRAME, now=0.02)
    assert ticks_by(pacer, 0.02) == [0.02]
    stall_at = 0.02 + CARD_STALL_S
    assert ticks_by(pacer, stall_at - 0.001) == []
    assert pacer.next_change() == pytest.approx(stall_at)
    assert ticks_by(pacer, stall_at) == [None]  # one, not the silent half second's worth
    assert ticks_by(pacer, stall_at + FRAME_S / 2) == []
    assert pacer.next_change() == pytest.approx(stall_at + FRAME_S)
    assert ticks_by(pacer, stall_at + 3 * FRAME_S) == [None, None, None]  # a late engine
    assert pacer.stats.timer_ticks == 4


def test_a_late_engine_catches_up_a_bounded_backlog_and_reset_forgets_it() -> None:
    clock = Clock()
    skipped: list[int] = []
    pacer = pacer_at(clock, skipped.append)
    clock.now = 0.1
    pacer.feed((MAX_BACKLOG + 5) * DEVICE_FRAME, now=0.1)
    assert len(ticks_by(pacer, 0.1)) == MAX_BACKLOG
    assert skipped == [5] and pacer.stats.skipped == 5  # their input is dropped too
    pacer.feed(2 * DEVICE_FRAME + 10, now=0.12)
    clock.now = 0.12
    pacer.reset()  # the card was lost: nothing stale, and the 10 spare samples are gone
    assert ticks_by(pacer, 0.12) == []
    pacer.feed(DEVICE_FRAME - 10, now=0.14)
    assert ticks_by(pacer, 0.14) == []


Arrivals = list[tuple[float, int]]  # (time, frames the card delivers then)


def deliveries(seconds: float, burst: int = 1, start: float = 0.0) -> Arrivals:
    """A card delivering `burst` frames at a time, on time on average."""
    count = round(seconds / FRAME_S / burst)
    return [(start + (i + 1) * burst * FRAME_S, burst) for i in range(count)]


def irregular(seconds: float, seed: int) -> Arrivals:
    """Callbacks at random gaps (0-150 ms), each with the whole frames come in by then."""
    rng = np.random.default_rng(seed)
    out: Arrivals = []
    t, delivered = 0.0, 0
    while t < seconds:
        t += float(rng.uniform(0.0, 0.150))
        due = int(t / FRAME_S) - delivered
        if due > 0:
            out.append((t, due))
            delivered += due
    return out


@dataclass
class Run:
    card_frames: int
    tick_times: list[float]
    timer_ticks: int
    arrivals: Arrivals
    depth: list[float]  # an output FIFO's depth in frames after each delivery and its ticks


def run(arrivals: Arrivals, until: float) -> Run:
    """The engine loop of `gateway.run.loop` on simulated time (1 ms steps) against `arrivals`;
    an output FIFO gets a frame per tick and the card takes back what it delivered (it plays
    at the rate it records), so its depth shows what extra ticks would leave behind."""
    pacer = pacer_at(Clock())
    pending = sorted(arrivals)
    tick_times: list[float] = []
    depth, depths = 0.0, []
    seen: Arrivals = []  # as the engine saw them: on its 1 ms steps
    for step in range(round(until * 1000) + 1):
        now = step / 1000
        delivered = False
        while pending and pending[0][0] <= now:
            _, frames = pending.pop(0)
            pacer.feed(frames * DEVICE_FRAME, now=now)
            depth -= frames
            delivered = True
            seen.append((now, frames))
        while pacer.poll(now) is not None:
            tick_times.append(now)
            depth += 1
        if delivered:
            depths.append(depth)
    return Run(pacer.stats.card_frames, tick_times, pacer.stats.timer_ticks, seen, depths)


def per_second(times: list[float], until: float) -> list[int]:
    return [sum(1 for t in times if s <= t < s + 1) for s in range(int(until))]


def worst_window(result: Run, until: float) -> int:
    """The largest difference between ticks and frames delivered over any one-second window
    (sliding in 10 ms steps)."""
    worst = 0
    for step in range(int((until - 1.0) * 100) + 1):
        s = step / 100
        frames = sum(n for t, n in result.arrivals if s <= t < s + 1)
        ticks = sum(1 for t in result.tick_times if s <= t < s + 1)
        worst = max(worst, abs(ticks - frames))
    return worst


@pytest.mark.parametrize("burst", [1, 2, 3, 4])
def test_bursts_tick_exactly_the_frames_delivered(burst: int) -> None:
    result = run(deliveries(10.0, burst), until=10.4)
    assert len(result.tick_times) == result.card_frames
    assert result.timer_ticks == 0
    assert worst_window(result, 10.4) == 0
    # The output FIFO, fed a frame a tick and drained a block at a time, neither grows nor
    # starves: it holds the block in flight and at most a frame more.
    assert max(result.depth) <= 1 and min(result.depth) >= -1


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_irregular_gaps_tick_exactly_the_frames_delivered(seed: int) -> None:
    arrivals = irregular(10.0, seed)
    result = run(arrivals, until=10.4)
    assert len(result.tick_times) == result.card_frames
    assert result.timer_ticks == 0
    assert worst_window(result, 10.4) == 0
    assert max(result.depth) <= 1 and min(result.depth) >= -1  # no growth


def test_a_200_ms_stall_that_catches_up_ticks_the_card_only() -> None:
    arrivals = [a for a in deliveries(4.0) if not 2.0 < a[0] <= 2.2]
    arrivals.append((2.2, 10))  # the stalled frames, all at once
    result = run(arrivals, until=4.4)
    assert result.card_frames == 200
    assert len(result.tick_times) == 200 and result.timer_ticks == 0


def test_a_longer_stall_is_bridged_by_the_timer_and_not_counted_twice() -> None:
    # Silent for a whole second, then every frame of it at once and on time again.
    arrivals = [a for a in deliveries(4.0) if not 1.0 < a[0] <= 2.0]
    arrivals.append((2.0 + FRAME_S / 2, 50))
    result = run(arrivals, until=4.4)
    assert result.card_frames == 200
    assert 20 <= result.timer_ticks <= 26  # from CARD_STALL_S after the last frame
    assert abs(len(result.tick_times) - result.card_frames) <= 1
    assert per_second(result.tick_times, 4)[3] == 50  # and at the card's rate afterwards
    assert max(result.depth[-20:]) <= 1


def test_a_card_that_loses_a_second_is_bridged_and_resumes_at_its_rate() -> None:
    # Its audio of that second is gone: the timer's ticks stand, nothing is paid back.
    arrivals = [a for a in deliveries(4.0) if not 1.0 < a[0] <= 2.0]
    result = run(arrivals, until=4.01)
    assert 20 <= result.timer_ticks <= 26
    assert max(per_second(result.tick_times, 4)) <= 50
    assert len(result.tick_times) - result.card_frames == result.timer_ticks


def test_wait_wakes_when_the_card_delivers_or_the_engine_stops() -> None:
    pacer = FramePacer(DEVICE_FRAME, FRAME_S)
    threading.Timer(0.05, pacer.feed, args=(DEVICE_FRAME,)).start()
    began = time.monotonic()
    tick = pacer.wait()
    assert tick is not None and tick.by_card and 0.03 < tick.due - began < 1.0
    threading.Timer(0.05, pacer.wake).start()
    began = time.monotonic()
    assert pacer.wait() is None
    assert time.monotonic() - began < CARD_STALL_S
    assert pacer.stats.timer_ticks == 0


class PacedRadios(SimulatedRadios):
    """Simulated radios whose bank offers a card clock, as `SiteRadios` does with a sound card."""

    def __init__(self, names: list[str]) -> None:
        super().__init__(names, FRAME)
        self.pacer = FramePacer(DEVICE_FRAME, FRAME_S)
        self.ticks = 0

    def frame(self) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_]]:
        self.ticks += 1
        return super().frame()


def ticks_in(radios: PacedRadios, seconds: float) -> float:
    """Ticks per second over `seconds`."""
    first = radios.ticks
    time.sleep(seconds)  # the window the rate is measured over
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
    stats = radios.pacer.stats
    try:
        feeding.set()
        wait(lambda: stats.card_ticks >= 10, what="the card driving the engine")
        paced = ticks_in(radios, 1.5)
        feeding.clear()  # the card is unplugged: the timer keeps the engine going
        timer_ticks = stats.timer_ticks
        wait(lambda: stats.timer_ticks >= timer_ticks + 5, what="the timer taking over")
        timed = ticks_in(radios, 1.5)
        feeding.set()  # back: the card rules again (and pays back no debt at this rate)
        card_ticks = stats.card_ticks
        wait(lambda: stats.card_ticks >= card_ticks + 5, what="the card ticking again")
        # Ahead of real time, it repays the timer's ticks until its debt is forgiven, a
        # CARD_STALL_S after its return (a rule of time): measure its rate after that.
        time.sleep(CARD_STALL_S + 0.1)
        again = ticks_in(radios, 1.5)
    finally:
        done.set()
        assert runtime.stop()
        feeder.join()
    card_rate, timer_rate = 1 / 0.012, 1 / 0.020
    assert paced > 0.85 * card_rate and again > 0.85 * card_rate, (paced, again)
    assert 0.7 * timer_rate < timed < 1.15 * timer_rate, timed
    assert runtime.stats.overruns == 0


def test_a_card_known_lost_hands_over_to_the_timer_at_once() -> None:
    clock = Clock()
    pacer = pacer_at(clock)
    pacer.feed(DEVICE_FRAME, now=0.02)
    assert ticks_by(pacer, 0.02) == [0.02]
    clock.now = 0.05
    pacer.reset(lost=True)  # unplugged: no half second without ticks
    assert ticks_by(pacer, 0.05) == [None]
    assert ticks_by(pacer, 0.05 + FRAME_S) == [None]
    clock.now = 2.0
    pacer.reset()  # reopened: the card rules again, the timer waits its stall limit
    pacer.feed(DEVICE_FRAME, now=2.02)
    assert ticks_by(pacer, 2.02) == [2.02]
    assert ticks_by(pacer, 2.02 + CARD_STALL_S - 0.01) == []
