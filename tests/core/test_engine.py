"""The engine's rules, frame by frame.

Each test drives `PatchEngine` directly through a scripted timeline of carrier and audio (20 ms
frames of 160 samples at 8 kHz; tick t covers samples t*160 ... t*160+159) and asserts on the tx
frames, the PTT flags and the events it returns. Every rule of the engine's docstring and of
docs/design.md, "Timing rules per port", "Duplex", "Floor policies", "Events" has a test that fails
when the rule is removed or broken.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from gateway.core.engine import (
    LIMITER_CEILING,
    Floor,
    MemberMode,
    MemberSpec,
    PatchConflict,
    PatchEngine,
    PatchSpec,
    PortSpec,
    PortTiming,
)
from gateway.core.events import Event, EventStamper, TickClock
from gateway.core.timing import SAMPLE_RATE
from gateway.dsp.signals import speech_like, tone

FRAME = 160  # samples per 20 ms tick at 8 kHz
FRAME_MS = 20
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
ISO_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")

Floats = npt.NDArray[np.float32]
Bools = npt.NDArray[np.bool_]

# Tone frequencies on exact FFT bins of a 1600-sample (10-tick) window, so they do not leak.
HZ_A, HZ_B, HZ_C = 700.0, 1100.0, 1500.0
WINDOW = 10 * FRAME


# ---------------------------------------------------------------------------- building engines
def port(
    name: str,
    *,
    full: bool = False,
    tx_delay_ms: int = 0,
    hang_ms: int = 200,
    timeout_s: float = 180.0,
    rx_inhibit_ms: int = 100,
) -> PortSpec:
    """A port with explicit timing (tests default to no tx delay and a 200 ms hang)."""
    return PortSpec(
        name=name,
        talkgroup=f"ag-{name}/tg",
        agency=f"ag-{name}",
        timing=PortTiming(
            tx_delay_ms=tx_delay_ms,
            hang_ms=hang_ms,
            timeout_s=timeout_s,
            rx_inhibit_ms=rx_inhibit_ms,
        ),
        full_duplex=full,
    )


def member(name: str, mode: MemberMode = MemberMode.TALK_LISTEN, priority: int = 0) -> MemberSpec:
    return MemberSpec(port=name, mode=mode, priority=priority)


def patch(name: str, *members: MemberSpec | str, floor: Floor = Floor.FIRST) -> PatchSpec:
    specs = tuple(m if isinstance(m, MemberSpec) else member(m) for m in members)
    return PatchSpec(name=name, members=specs, floor=floor)


def make_engine(
    ports: Sequence[PortSpec], patches: Sequence[PatchSpec], enable: Sequence[str] = ("p",)
) -> PatchEngine:
    engine = PatchEngine(ports, patches, clock=TickClock(EPOCH, FRAME_MS), gateway_id="gw-test")
    for name in enable:
        engine.enable_patch(name)
    return engine


# ---------------------------------------------------------------------------- signals
def cosine(hz: float, n: int, level_dbfs: float = -12.0) -> Floats:
    """A cosine whose peak is `level_dbfs`; its first sample is the peak (never zero)."""
    t = np.arange(n, dtype=np.float64) / SAMPLE_RATE
    amplitude = 10 ** (level_dbfs / 20)
    return (amplitude * np.cos(2 * np.pi * hz * t)).astype(np.float32)


def level_at(samples: Floats, hz: float) -> float:
    """Amplitude of the sinusoid at `hz` in `samples` (hz must sit on an FFT bin)."""
    n = samples.size
    bin_ = hz * n / SAMPLE_RATE
    assert bin_ == int(bin_), "tone not on an FFT bin"
    spectrum = np.fft.rfft(samples.astype(np.float64))
    return float(2 * abs(spectrum[int(bin_)]) / n)


AMP_12 = 10 ** (-12 / 20)  # amplitude of a -12 dBFS tone


def heard(samples: Floats, hz: float) -> bool:
    """The -12 dBFS tone at `hz` is present (at least half its level)."""
    return level_at(samples, hz) > AMP_12 / 2


def absent(samples: Floats, hz: float) -> bool:
    return level_at(samples, hz) < 1e-4


# ---------------------------------------------------------------------------- the test bench
class Bench:
    """Drives an engine through a scripted timeline and records everything it returns."""

    def __init__(self, engine: PatchEngine, ticks: int) -> None:
        self.engine = engine
        self.ticks = ticks
        n = len(engine.ports)
        self.names = [p.name for p in engine.ports]
        self.rx = np.zeros((n, ticks * FRAME), dtype=np.float32)
        self.carrier = np.zeros((ticks, n), dtype=bool)
        self.tx = np.zeros((n, ticks * FRAME), dtype=np.float32)
        self.ptt = np.zeros((ticks, n), dtype=bool)
        self.log: list[tuple[int, Event]] = []
        self.now = 0

    def idx(self, name: str) -> int:
        return self.names.index(name)

    def key(self, name: str, start: int, stop: int) -> Bench:
        """Carrier on `name` for ticks start ... stop-1, without audio."""
        self.carrier[start:stop, self.idx(name)] = True
        return self

    def talk(
        self, name: str, start: int, stop: int, hz: float = HZ_A, level_dbfs: float = -12.0
    ) -> Bench:
        """Carrier and a tone on `name` for ticks start ... stop-1."""
        self.key(name, start, stop)
        self.rx[self.idx(name), start * FRAME : stop * FRAME] = cosine(
            hz, (stop - start) * FRAME, level_dbfs
        )
        return self

    def audio(self, name: str, start: int, samples: Floats) -> Bench:
        """Carrier and arbitrary audio on `name` from tick `start` (whole ticks of carrier)."""
        stop = start + -(-samples.size // FRAME)
        self.key(name, start, stop)
        self.rx[self.idx(name), start * FRAME : start * FRAME + samples.size] = samples
        return self

    def run(self, until: int | None = None) -> Bench:
        stop = self.ticks if until is None else until
        for t in range(self.now, stop):
            rx = np.ascontiguousarray(self.rx[:, t * FRAME : (t + 1) * FRAME])
            result = self.engine.tick(rx, self.carrier[t].copy())
            assert result.tx.shape == (len(self.names), FRAME)
            assert result.tx.dtype == np.float32
            self.tx[:, t * FRAME : (t + 1) * FRAME] = result.tx
            self.ptt[t] = result.ptt
            self.log.extend((t, e) for e in result.events)
        self.now = stop
        return self

    def note(self, events: list[Event]) -> list[Event]:
        """Records events returned outside a tick (disable, release) at the current tick."""
        self.log.extend((self.now, e) for e in events)
        return events

    # -- views
    def ptt_of(self, name: str) -> Bools:
        return self.ptt[:, self.idx(name)]

    def tx_of(self, name: str, start: int = 0, stop: int | None = None) -> Floats:
        """The samples sent to `name` over ticks start ... stop-1."""
        end = self.ticks if stop is None else stop
        return self.tx[self.idx(name), start * FRAME : end * FRAME]

    def rx_of(self, name: str) -> Floats:
        return self.rx[self.idx(name), :]

    def keyed_spans(self, name: str) -> list[tuple[int, int]]:
        """(first keyed tick, first unkeyed tick) of every transmission on `name`."""
        col = np.r_[False, self.ptt_of(name), False].astype(np.int8)
        edges = np.flatnonzero(np.diff(col))
        return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]

    def events(self, kind: str | None = None, /, **fields: Any) -> list[tuple[int, Event]]:
        """(tick, event) of the events of `kind` whose fields match (port names for
        `source`)."""
        found = []
        for t, e in self.log:
            if kind is not None and e["type"] != kind:
                continue
            ok = True
            for key, want in fields.items():
                got = e.get(key)
                if key == "source" and isinstance(got, dict):
                    got = got["port"]
                if got != want:
                    ok = False
            if ok:
                found.append((t, e))
        return found

    def ticks_of(self, kind: str, /, **fields: Any) -> list[int]:
        return [t for t, _ in self.events(kind, **fields)]


def dest_ports(event: Event) -> set[str]:
    return {d["port"] for d in event["destinations"]}


# ============================================================================ 1. floor: first
@pytest.mark.parametrize(
    "second",
    [
        pytest.param(port("b"), id="talk-only"),
        pytest.param(port("b", full=True), id="full-duplex"),
    ],
)
def test_first_floor_holds_for_first_talker_and_reserves_through_hang(second: PortSpec) -> None:
    talk_only = not second.full_duplex
    b = member("b", MemberMode.TALK if talk_only else MemberMode.TALK_LISTEN)
    engine = make_engine([port("a"), second, port("c")], [patch("p", "a", b, "c")])
    bench = Bench(engine, 200)
    bench.talk("a", 10, 60, HZ_A).talk("b", 30, 150, HZ_B).run()
    hold = 200 // FRAME_MS  # c's hang: 10 ticks

    # a holds the floor: one call, c hears a and never b while a talks or its hang runs.
    assert bench.ticks_of("call_start", source="a") == [10]
    assert bench.ticks_of("call_end", source="a", reason="carrier_drop") == [60]
    assert heard(bench.tx_of("c", 40, 50), HZ_A)
    assert absent(bench.tx_of("c", 40, 50), HZ_B)
    assert bench.keyed_spans("c")[0] == (10, 60 + hold)
    # a (half duplex, talking) is not keyed with b's audio.
    assert not bench.ptt_of("a")[10:60].any()
    assert not bench.tx_of("a", 10, 60).any()
    # During a's hang the floor stays reserved: b gets no call and nobody is sent b's audio.
    b_starts = bench.ticks_of("call_start", source="b")
    assert len(b_starts) == 1
    assert b_starts[0] in (60 + hold, 60 + hold + 1)
    assert not bench.tx_of("c", 60, 60 + hold).any()
    # Then the waiting talker gets the floor and is heard by c and by a.
    (_, start_b) = bench.events("call_start", source="b")[0]
    assert dest_ports(start_b) == {"a", "c"}
    assert heard(bench.tx_of("c", 100, 110), HZ_B)
    assert heard(bench.tx_of("a", 100, 110), HZ_B)
    if talk_only:
        assert not bench.ptt_of("b").any()


def test_first_floor_second_talker_never_heard_while_first_talks() -> None:
    """Broken `first` (e.g. latest talker wins, or all mixed): c would hear b's tone."""
    ports = [port("a"), port("b", full=True), port("c")]
    engine = make_engine(ports, [patch("p", "a", "b", "c")])
    bench = Bench(engine, 120).talk("a", 10, 100, HZ_A).talk("b", 30, 100, HZ_B).run()
    for start in range(30, 90, 10):
        window = bench.tx_of("c", start, start + 10)
        assert heard(window, HZ_A)
        assert absent(window, HZ_B)
    assert bench.ticks_of("call_start") == [10]
    assert bench.events("carrier", port="b", on=True)  # b's carrier is qualified, just not heard


# ============================================================================ 2. floor: priority
def priority_bench(b_priority: int) -> Bench:
    ports = [port("a"), port("b", full=True), port("c")]
    members = (member("a", priority=1), member("b", priority=b_priority), member("c"))
    engine = make_engine(ports, [patch("p", *members, floor=Floor.PRIORITY)])
    return Bench(engine, 240).talk("a", 10, 200, HZ_A).talk("b", 50, 100, HZ_B).run()


def test_priority_floor_higher_priority_preempts() -> None:
    bench = priority_bench(b_priority=5)
    # a's call ends preempted the tick b keys up, and b's call starts then.
    assert bench.ticks_of("call_start", source="a")[0] == 10
    ends_a = bench.events("call_end", source="a")
    assert ends_a[0][0] == 50
    assert ends_a[0][1]["reason"] == "preempted"
    assert bench.ticks_of("call_start", source="b") == [50]
    (_, start_b) = bench.events("call_start", source="b")[0]
    assert dest_ports(start_b) == {"a", "c"}
    # The preempted half-duplex talker a is keyed at once with b's audio.
    assert bench.ptt_of("a")[50]
    assert not bench.ptt_of("a")[10:50].any()
    assert heard(bench.tx_of("a", 60, 70), HZ_B)
    assert heard(bench.tx_of("a", 80, 90), HZ_B)
    # c hears b now, no longer a.
    assert heard(bench.tx_of("c", 30, 40), HZ_A)
    for start in (60, 80):
        assert heard(bench.tx_of("c", start, start + 10), HZ_B)
        assert absent(bench.tx_of("c", start, start + 10), HZ_A)


def test_priority_floor_higher_priority_takes_a_reserved_floor_lower_waits() -> None:
    """During the hang of a call the floor is reserved: a higher-priority talker takes it at once,
    a lower-priority one waits until the hang is over."""
    ports = [port("a"), port("b"), port("c"), port("d")]
    members = (
        member("a", priority=1),
        member("b", MemberMode.TALK, priority=5),
        member("c", MemberMode.TALK, priority=0),
        member("d"),
    )
    engine = make_engine(ports, [patch("p", *members, floor=Floor.PRIORITY)])
    bench = Bench(engine, 200)
    bench.talk("a", 10, 50, HZ_A)  # hang until 60
    bench.talk("b", 55, 80, HZ_B)  # higher: takes the reserved floor
    bench.talk("c", 85, 140, HZ_C)  # lower than b: waits for b's hang (until 90)
    bench.run()
    assert bench.ticks_of("call_start", source="b") == [55]
    assert heard(bench.tx_of("d", 60, 70), HZ_B)
    c_start = bench.ticks_of("call_start", source="c")
    assert len(c_start) == 1
    assert c_start[0] in (90, 91)
    assert absent(bench.tx_of("d", 80, 90), HZ_C)
    assert heard(bench.tx_of("d", 100, 110), HZ_C)


@pytest.mark.parametrize("b_priority", [1, 0], ids=["equal", "lower"])
def test_priority_floor_equal_or_lower_does_not_preempt(b_priority: int) -> None:
    bench = priority_bench(b_priority)
    assert bench.ticks_of("call_start", source="a") == [10]
    assert bench.events("call_end", source="a")[0][1]["reason"] == "carrier_drop"
    assert bench.ticks_of("call_end", source="a") == [200]
    assert bench.ticks_of("call_start", source="b") == []
    assert not bench.ptt_of("a")[10:200].any()
    for start in (60, 80):
        assert heard(bench.tx_of("c", start, start + 10), HZ_A)
        assert absent(bench.tx_of("c", start, start + 10), HZ_B)


# ============================================================================ 3, 4. floor: mix
def test_mix_floor_every_listener_hears_every_talker() -> None:
    ports = [port("a"), port("b"), port("c"), port("d", tx_delay_ms=150)]
    engine = make_engine(ports, [patch("p", "a", "b", "c", "d", floor=Floor.MIX)])
    bench = Bench(engine, 120).talk("a", 10, 100, HZ_A).talk("b", 10, 100, HZ_B).run()
    for listener in ("c", "d"):
        window = bench.tx_of(listener, 40, 50)
        assert level_at(window, HZ_A) == pytest.approx(AMP_12, rel=1e-3)
        assert level_at(window, HZ_B) == pytest.approx(AMP_12, rel=1e-3)
    starts = bench.events("call_start")
    assert sorted(e["source"]["port"] for _, e in starts) == ["a", "b"]
    assert all(t == 10 for t, _ in starts)
    assert len({e["call_id"] for _, e in starts}) == 2
    for _, e in starts:
        assert dest_ports(e) == {"c", "d"}
    ends = bench.events("call_end", reason="carrier_drop")
    assert sorted(e["source"]["port"] for _, e in ends) == ["a", "b"]


def test_mix_floor_late_full_duplex_talker_joins_the_mix() -> None:
    ports = [port("a"), port("b", full=True), port("c")]
    engine = make_engine(ports, [patch("p", "a", "b", "c", floor=Floor.MIX)])
    bench = Bench(engine, 120).talk("a", 10, 100, HZ_A).talk("b", 30, 100, HZ_B).run()
    assert bench.ticks_of("call_start", source="a") == [10]
    assert bench.ticks_of("call_start", source="b") == [30]
    assert heard(bench.tx_of("c", 50, 60), HZ_A)
    assert heard(bench.tx_of("c", 50, 60), HZ_B)


def test_mix_minus_nobody_hears_themselves() -> None:
    ports = [port("a", full=True), port("b", full=True, tx_delay_ms=100), port("c")]
    engine = make_engine(ports, [patch("p", "a", "b", "c", floor=Floor.MIX)])
    bench = Bench(engine, 120).talk("a", 10, 100, HZ_A).talk("b", 10, 100, HZ_B).run()
    assert bench.ptt_of("a")[10:100].all()
    assert bench.ptt_of("b")[10:100].all()
    for start in (20, 50, 80):
        assert heard(bench.tx_of("a", start, start + 10), HZ_B)
        assert absent(bench.tx_of("a", start, start + 10), HZ_A)
        assert heard(bench.tx_of("b", start, start + 10), HZ_A)
        assert absent(bench.tx_of("b", start, start + 10), HZ_B)
        assert heard(bench.tx_of("c", start, start + 10), HZ_A)
        assert heard(bench.tx_of("c", start, start + 10), HZ_B)
    # The whole of a's transmission is b's audio alone (a's own contribution is removed exactly).
    np.testing.assert_allclose(
        bench.tx_of("a", 10, 100), bench.rx_of("b")[10 * FRAME : 100 * FRAME], atol=1e-6
    )


# ============================================================================ 5. tx_delay_ms
@pytest.mark.parametrize("delay_ms", [0, 100, 150])
def test_tx_delay_keys_at_once_and_audio_follows_to_the_sample(delay_ms: int) -> None:
    # The talker's own tx_delay and another destination's differ, so the delay must be the
    # destination's own.
    ports = [port("a", tx_delay_ms=50), port("b", tx_delay_ms=delay_ms), port("c", tx_delay_ms=60)]
    engine = make_engine(ports, [patch("p", "a", "b", "c")])
    bench = Bench(engine, 120).talk("a", 10, 60, HZ_A).run()
    for name, ms in (("b", delay_ms), ("c", 60)):
        delay = ms * SAMPLE_RATE // 1000
        ptt = bench.ptt_of(name)
        assert not ptt[:10].any()
        assert ptt[10]  # keyed the tick the carrier starts
        tx = bench.tx[bench.idx(name)]
        first = int(np.flatnonzero(tx)[0])
        assert first == 10 * FRAME + delay
        # Everything the talker said goes out, unchanged, exactly `delay` samples later.
        sent = tx[10 * FRAME + delay : 60 * FRAME + delay]
        np.testing.assert_array_equal(sent, bench.rx_of("a")[10 * FRAME : 60 * FRAME])
        assert not tx[60 * FRAME + delay :].any()


# ============================================================================ 6. hang_ms
@pytest.mark.parametrize("hang_ms", [0, 300, 800])
def test_hang_without_delay_drops_ptt_exactly_hang_ms_after_carrier(hang_ms: int) -> None:
    ports = [port("a", hang_ms=1000), port("b", hang_ms=hang_ms)]
    engine = make_engine(ports, [patch("p", "a", "b")])
    bench = Bench(engine, 150).talk("a", 10, 60, HZ_A).run()
    off = 60 + hang_ms // FRAME_MS
    assert bench.keyed_spans("b") == [(10, off)]
    ptt_off = bench.events("ptt", port="b", on=False)
    assert [t for t, _ in ptt_off] == [off]
    assert ptt_off[0][1]["reason"] == "hang_elapsed"
    assert [t for t, _ in bench.events("ptt", port="b", on=True)] == [10]
    assert bench.events("ptt", port="b", on=True)[0][1]["reason"] == "call"
    # The hang sends silence.
    assert not bench.tx_of("b", 60, off).any()


@pytest.mark.parametrize(("delay_ms", "hang_ms"), [(150, 800), (100, 500), (150, 0), (60, 110)])
def test_hang_with_delay_covers_the_delayed_audio_then_hang(delay_ms: int, hang_ms: int) -> None:
    ports = [port("a", hang_ms=2000), port("b", tx_delay_ms=delay_ms, hang_ms=hang_ms)]
    engine = make_engine(ports, [patch("p", "a", "b")])
    bench = Bench(engine, 150).talk("a", 10, 60, HZ_A).run()
    delay = delay_ms * SAMPLE_RATE // 1000
    hang = hang_ms * SAMPLE_RATE // 1000
    # The last delayed sample goes out at 60*FRAME - 1 + delay; then hang_ms more, rounded up to
    # whole frames.
    off = 60 + math.ceil((delay + hang) / FRAME)
    assert bench.keyed_spans("b") == [(10, off)]
    (t_off, ev) = bench.events("ptt", port="b", on=False)[0]
    assert (t_off, ev["reason"]) == (off, "hang_elapsed")
    tx = bench.tx[bench.idx("b")]
    last = 60 * FRAME - 1 + delay
    assert tx[last] == bench.rx_of("a")[60 * FRAME - 1]
    assert bench.ptt[last // FRAME, bench.idx("b")]
    assert off * FRAME - (last + 1) >= hang  # at least hang_ms after the audio...
    assert off * FRAME - (last + 1) < hang + FRAME  # ...and less than a frame more


# ============================================================================ 7. timeout_s
TIMEOUT_TICKS = 50  # 1.0 s


def timeout_bench(rekey_gap: int = 20) -> Bench:
    """a's carrier sticks from tick 10 to 300, b talks at 100 ... 129, a keys again after a break
    of `rekey_gap` ticks (a short break keeps the engine busy, a long one lets it go idle)."""
    ports = [
        port("a", timeout_s=180.0),
        port("b", timeout_s=1.0),
        port("c", timeout_s=1.0),
    ]
    engine = make_engine(ports, [patch("p", "a", "b", "c")])
    bench = Bench(engine, 400)
    bench.key("a", 10, 300)  # a stuck carrier
    bench.talk("b", 100, 130, HZ_B)  # b talks while a is locked out
    bench.talk("a", 300 + rekey_gap, 360, HZ_A)  # a dropped, keys again: works again
    return bench.run()


def test_timeout_unkeys_after_exactly_timeout_s_and_alarms() -> None:
    bench = timeout_bench()
    end = 10 + TIMEOUT_TICKS
    for name in ("b", "c"):
        assert bench.keyed_spans(name)[0] == (10, end)
        assert int(bench.ptt_of(name)[10:end].sum()) == TIMEOUT_TICKS
        alarms = bench.events("alarm", kind="timeout", port=name)
        assert [t for t, _ in alarms] == [end]
        offs = bench.events("ptt", port=name, on=False)
        assert (offs[0][0], offs[0][1]["reason"]) == (end, "timeout")
    # The call ends with reason timeout, and the stuck source raises stuck_carrier.
    ends = bench.events("call_end", source="a")
    assert ends[0][1]["reason"] == "timeout"
    assert ends[0][0] in (end, end + 1)
    stuck = bench.events("alarm", kind="stuck_carrier", port="a")
    assert len(stuck) == 1
    assert stuck[0][0] in (end, end + 1)
    assert all(e["detail"] for _, e in bench.events("alarm"))


@pytest.mark.parametrize("rekey_gap", [1, 20])
def test_timeout_locks_out_the_stuck_source_until_it_drops(rekey_gap: int) -> None:
    bench = timeout_bench(rekey_gap)
    again = 300 + rekey_gap
    end = 10 + TIMEOUT_TICKS
    # No destination is keyed by a again while its carrier stays up (ticks end ... 299), other
    # than by b's own call.
    b_call = bench.keyed_spans("c")[1]
    assert b_call[0] == 100
    assert not bench.ptt_of("c")[end:100].any()
    assert not bench.ptt_of("c")[b_call[1] : again].any()
    assert not bench.ptt_of("b")[end:again].any()
    assert bench.ticks_of("call_start", source="a") == [10, again]
    assert len(bench.events("call_end", source="a")) == 2
    # Once a has dropped and keys again, it works again.
    assert bench.ptt_of("b")[again]
    assert bench.ptt_of("c")[again]
    assert heard(bench.tx_of("c", 330, 340), HZ_A)


def test_timeout_other_member_can_talk_while_stuck_source_locked_out() -> None:
    bench = timeout_bench()
    (t, start_b) = bench.events("call_start", source="b")[0]
    assert t == 100
    assert dest_ports(start_b) == {"a", "c"}
    assert bench.ptt_of("c")[100:130].all()
    assert heard(bench.tx_of("c", 110, 120), HZ_B)
    assert bench.events("call_end", source="b")[0][1]["reason"] == "carrier_drop"


def test_timeout_each_destination_by_its_own_timer() -> None:
    ports = [port("a"), port("b", timeout_s=1.0), port("c", timeout_s=2.0)]
    engine = make_engine(ports, [patch("p", "a", "b", "c")])
    bench = Bench(engine, 250).key("a", 10, 200).run()
    assert bench.keyed_spans("b") == [(10, 60)]
    assert bench.keyed_spans("c") == [(10, 110)]
    # The source keeps the floor while one destination still takes it.
    assert bench.ticks_of("call_end", source="a")[0] in (110, 111)
    assert bench.events("call_end", source="a")[0][1]["reason"] == "timeout"


# ============================================================================ 8. rx_inhibit_ms
@pytest.mark.parametrize("inhibit_ms", [100, 200])
def test_rx_inhibit_ignores_false_carrier_after_unkey(inhibit_ms: int) -> None:
    ports = [port("a"), port("b", rx_inhibit_ms=inhibit_ms), port("c")]
    engine = make_engine(ports, [patch("p", "a", "b", "c")])
    bench = Bench(engine, 150).talk("a", 10, 30, HZ_A)
    unkey = 30 + 10  # 200 ms hang
    k = inhibit_ms // FRAME_MS
    bench.key("b", unkey, unkey + k)  # a false COR as b unkeys, lasting rx_inhibit_ms
    bench.talk("b", unkey + k + 1, 100, HZ_B)  # a real call after the inhibit
    bench.run()
    assert bench.keyed_spans("b") == [(10, unkey)]
    b_carrier = bench.events("carrier", port="b")
    assert [(t, e["on"]) for t, e in b_carrier] == [(unkey + k + 1, True), (100, False)]
    assert bench.ticks_of("call_start", source="b") == [unkey + k + 1]
    assert bench.ptt_of("c")[unkey + k + 1]
    assert heard(bench.tx_of("c", 70, 80), HZ_B)


# ============================================================================ 9. duplex
def test_half_duplex_carrier_ignored_while_keyed_full_duplex_heard() -> None:
    ports = [port("a"), port("b"), port("c", full=True), port("d")]
    engine = make_engine(ports, [patch("p", "a", "b", "c", "d", floor=Floor.MIX)])
    bench = Bench(engine, 150)
    bench.talk("a", 10, 100, HZ_A)
    bench.talk("b", 30, 60, HZ_B)  # half duplex, keyed by a: deaf
    bench.talk("c", 30, 100, HZ_C)  # full duplex, keyed by a: heard
    bench.run()
    assert bench.ptt_of("b")[10:100].all()
    assert bench.events("carrier", port="b") == []
    assert bench.ticks_of("call_start", source="b") == []
    assert bench.ticks_of("call_start", source="c") == [30]
    assert [(t, e["on"]) for t, e in bench.events("carrier", port="c")] == [
        (30, True),
        (100, False),
    ]
    window = bench.tx_of("d", 40, 50)
    assert heard(window, HZ_A)
    assert heard(window, HZ_C)
    assert absent(window, HZ_B)
    assert absent(bench.tx_of("b", 40, 50), HZ_B)
    assert heard(bench.tx_of("b", 40, 50), HZ_C)


def test_full_duplex_talker_not_cut_when_its_own_hang_ends() -> None:
    """A full-duplex port hears while it sends: the carrier it already had while keyed is a real
    talker, not a false COR of its unkey, so unkeying must not drop it or split its call."""
    ports = [port("a"), port("b", full=True, rx_inhibit_ms=100), port("c")]
    engine = make_engine(ports, [patch("p", "a", "b", "c", floor=Floor.MIX)])
    bench = Bench(engine, 250).talk("a", 10, 50, HZ_A).talk("b", 20, 200, HZ_B).run()
    # b is keyed by a (plus hang) while it talks; it unkeys at 60 and goes on talking.
    assert bench.keyed_spans("b") == [(10, 60)]
    assert [(t, e["on"]) for t, e in bench.events("carrier", port="b")] == [
        (20, True),
        (200, False),
    ]
    assert bench.ticks_of("call_start", source="b") == [20]
    assert bench.ticks_of("call_end", source="b") == [200]
    assert bench.ptt_of("c")[20:200].all()


# ============================================================================ 10. member modes
def modes_bench() -> Bench:
    ports = [port("a"), port("b"), port("c"), port("d")]
    members = (
        member("a", MemberMode.LISTEN),
        member("b"),
        member("c"),
        member("d", MemberMode.TALK),
    )
    engine = make_engine(ports, [patch("p", *members)])
    bench = Bench(engine, 350)
    bench.talk("a", 10, 50, HZ_A)
    bench.talk("b", 100, 150, HZ_B)
    bench.talk("d", 250, 300, HZ_C)
    return bench.run()


def test_listen_only_member_is_never_a_source() -> None:
    bench = modes_bench()
    assert bench.ticks_of("call_start", source="a") == []
    assert not bench.ptt[:100].any()
    assert not bench.tx[:, : 100 * FRAME].any()
    assert [e["type"] for _, e in bench.log if _ < 100] == ["carrier", "carrier"]
    # It still listens.
    (_, start_b) = bench.events("call_start", source="b")[0]
    assert dest_ports(start_b) == {"a", "c"}
    assert heard(bench.tx_of("a", 110, 120), HZ_B)


def test_talk_only_member_is_never_keyed() -> None:
    bench = modes_bench()
    assert not bench.ptt_of("d").any()
    assert not bench.tx_of("d").any()
    assert bench.events("ptt", port="d") == []
    # It still talks.
    (t, start_d) = bench.events("call_start", source="d")[0]
    assert t == 250
    assert dest_ports(start_d) == {"a", "b", "c"}
    for name in ("a", "b", "c"):
        assert bench.ptt_of(name)[250:300].all()
        assert heard(bench.tx_of(name, 260, 270), HZ_C)


# ============================================================================ 11. limiter
@pytest.mark.parametrize("level_dbfs", [-1.0, 0.0])
@pytest.mark.parametrize(("hz_a", "hz_b"), [(1000.0, 1000.0), (HZ_A, HZ_B)])
def test_limiter_mixed_talkers_never_exceed_ceiling(
    level_dbfs: float, hz_a: float, hz_b: float
) -> None:
    ports = [port("a"), port("b"), port("c"), port("d", tx_delay_ms=150)]
    engine = make_engine(ports, [patch("p", "a", "b", "c", "d", floor=Floor.MIX)])
    bench = Bench(engine, 200)
    bench.talk("a", 10, 100, hz_a, level_dbfs).talk("b", 10, 150, hz_b, level_dbfs).run()
    peak = float(np.abs(bench.tx).max())
    assert peak <= 1.0
    assert peak <= LIMITER_CEILING * (1 + 1e-6)  # float32 rounding of the ceiling itself
    # It limits, it does not mute: the listeners get audio right up to the ceiling.
    for name in ("c", "d"):
        assert float(np.abs(bench.tx_of(name, 20, 100)).max()) > 0.9 * LIMITER_CEILING


def test_limiter_leaves_a_single_quiet_talker_bit_exact() -> None:
    ports = [port("a"), port("b"), port("c", tx_delay_ms=150)]
    engine = make_engine(ports, [patch("p", "a", "b", "c", floor=Floor.MIX)])
    bench = Bench(engine, 120).talk("a", 10, 90, 1000.0, -12.0).run()
    rx = bench.rx_of("a")[10 * FRAME : 90 * FRAME]
    np.testing.assert_array_equal(bench.tx_of("b", 10, 90), rx)
    delay = 150 * SAMPLE_RATE // 1000
    np.testing.assert_array_equal(
        bench.tx[bench.idx("c"), 10 * FRAME + delay : 90 * FRAME + delay], rx
    )


# ============================================================================ 12. conflicts
def test_enabling_a_conflicting_patch_names_the_other_patch() -> None:
    ports = [port("a"), port("b"), port("c")]
    engine = make_engine(ports, [patch("p1", "a", "b"), patch("p2", "b", "c")], enable=["p1"])
    with pytest.raises(PatchConflict, match="'p1'") as info:
        engine.enable_patch("p2")
    assert info.value.other == "p1"
    assert info.value.port == "b"
    assert engine.enabled_patches == frozenset({"p1"})
    assert engine.patch_of_port("c") is None
    engine.disable_patch("p1")
    engine.enable_patch("p2")
    assert engine.enabled_patches == frozenset({"p2"})
    bench = Bench(engine, 60).talk("b", 10, 30, HZ_B).run()
    assert bench.ptt_of("c")[10]
    assert not bench.ptt_of("a").any()


# ============================================================================ 13. disable
def test_disable_mid_call_ends_call_and_unkeys() -> None:
    ports = [port("a"), port("b", tx_delay_ms=150), port("c", tx_delay_ms=150)]
    engine = make_engine(ports, [patch("p", "a", "b", "c")])
    bench = Bench(engine, 150).talk("a", 10, 150, HZ_A).run(50)
    assert bench.ptt[49, [1, 2]].all()
    events = bench.note(engine.disable_patch("p"))
    ends = [e for e in events if e["type"] == "call_end"]
    assert len(ends) == 1
    assert ends[0]["reason"] == "patch_disabled"
    assert ends[0]["source"]["port"] == "a"
    assert ends[0]["end"] == engine.clock.iso(50)
    offs = [e for e in events if e["type"] == "ptt"]
    assert sorted(e["port"] for e in offs) == ["b", "c"]
    assert not any(e["on"] for e in offs)
    assert not engine.ptt.any()
    assert engine.active_calls() == []
    bench.run()
    assert not bench.ptt[50:].any()
    assert not bench.tx[:, 50 * FRAME :].any()  # not even the delayed tail
    assert [e["type"] for t, e in bench.log if t > 50] == []


def test_reenabled_patch_sends_no_stale_delayed_audio() -> None:
    """A patch disabled mid-call and enabled again at once (a reload): the new call's audio
    starts exactly tx_delay after its PTT, never with the old call's delayed tail."""
    ports = [port("a"), port("b", tx_delay_ms=150)]
    engine = make_engine(ports, [patch("p", "a", "b")])
    bench = Bench(engine, 100)
    bench.talk("a", 10, 50, HZ_A).key("a", 50, 80).run(50)  # a goes silent, carrier stays
    assert bench.tx_of("b", 49, 50).any()  # the delayed tail is still on its way
    bench.note(engine.disable_patch("p"))
    engine.enable_patch("p")
    bench.run()
    assert bench.ticks_of("call_start", source="a") == [10, 50]
    assert bench.ptt_of("b")[50]
    assert not bench.tx_of("b", 50).any()


# ============================================================================ 14. release_all
def test_release_all_ends_every_call_and_unkeys_every_port() -> None:
    ports = [port(n) for n in "abcde"]
    patches = [patch("p1", "a", "b", "c"), patch("p2", "d", "e", floor=Floor.MIX)]
    engine = make_engine(ports, patches, enable=["p1", "p2"])
    bench = Bench(engine, 60).talk("a", 10, 60, HZ_A).talk("d", 10, 60, HZ_B).run(40)
    assert sorted(bench.names[i] for i in np.flatnonzero(bench.ptt[39])) == ["b", "c", "e"]
    events = engine.release_all()
    ends = [e for e in events if e["type"] == "call_end"]
    assert sorted(e["source"]["port"] for e in ends) == ["a", "d"]
    assert {e["reason"] for e in ends} == {"shutdown"}
    offs = [e for e in events if e["type"] == "ptt"]
    assert sorted(e["port"] for e in offs) == ["b", "c", "e"]
    assert not any(e["on"] for e in offs)
    assert not engine.ptt.any()
    assert engine.active_calls() == []


# ============================================================================ 15. events
def events_bench() -> Bench:
    ports = [port("a"), port("b"), port("z")]
    engine = make_engine(ports, [patch("p", "a", "b")])
    bench = Bench(engine, 100)
    bench.audio("a", 10, tone(1000.0, 1.0, -6.0))  # ticks 10 ... 59
    bench.talk("z", 20, 40, HZ_C, -1.0)  # louder, but in no patch: not part of the call
    return bench.run()


def test_every_event_has_type_and_millisecond_utc_time() -> None:
    bench = events_bench()
    timeout = timeout_bench()
    assert bench.log
    for engine_bench in (bench, timeout):
        for t, e in engine_bench.log:
            assert isinstance(e["type"], str)
            assert ISO_MS.match(e["time"]), e["time"]
            assert e["time"] == engine_bench.engine.clock.iso(t)
    assert bench.log[0][1]["time"] == "2026-01-01T00:00:00.200Z"


def test_call_start_and_end_fields() -> None:
    bench = events_bench()
    (t0, start) = bench.events("call_start")[0]
    (t1, end) = bench.events("call_end")[0]
    assert (t0, t1) == (10, 60)
    ref_a = {"port": "a", "talkgroup": "ag-a/tg", "agency": "ag-a"}
    ref_b = {"port": "b", "talkgroup": "ag-b/tg", "agency": "ag-b"}
    assert start["source"] == ref_a
    assert start["destinations"] == [ref_b]
    assert start["patch"] == "p"
    assert start["call_id"]
    for key in ("call_id", "patch", "source", "destinations"):
        assert end[key] == start[key]
    assert end["start"] == "2026-01-01T00:00:00.200Z"
    assert end["end"] == "2026-01-01T00:00:01.200Z"
    assert end["duration_s"] == pytest.approx(1.0)
    assert end["reason"] == "carrier_drop"
    assert end["peak_dbfs"] == pytest.approx(-6.0, abs=0.1)
    assert "recording" in end
    assert end["recording"] is None
    assert [(t, e["on"], e["reason"]) for t, e in bench.events("ptt", port="b")] == [
        (10, True, "call"),
        (70, False, "hang_elapsed"),
    ]
    assert [(t, e["on"]) for t, e in bench.events("carrier", port="a")] == [
        (10, True),
        (60, False),
    ]


def test_event_stamper_numbers_events_in_order() -> None:
    bench = events_bench()
    stamper = EventStamper("gw-test")
    raw = [e for _, e in bench.log]
    stamped = [stamper.stamp(e) for e in raw]
    assert [e["seq"] for e in stamped] == list(range(1, len(raw) + 1))
    for original, final in zip(raw, stamped, strict=True):
        assert final["gateway"] == "gw-test"
        assert list(final)[:4] == ["type", "gateway", "seq", "time"]
        assert {k: v for k, v in final.items() if k not in ("gateway", "seq")} == original
    more = stamper.stamp({"type": "alarm", "time": "2026-01-01T00:00:09.000Z", "kind": "x"})
    assert more["seq"] == len(raw) + 1


# ============================================================================ 16. isolation
def test_no_audio_to_ports_outside_enabled_patches() -> None:
    ports = [port("a"), port("b"), port("c"), port("d")]
    patches = [patch("p1", "a", "b"), patch("p2", "a", "d")]  # p2 is not enabled
    engine = make_engine(ports, patches, enable=["p1"])
    bench = Bench(engine, 200).talk("a", 10, 50, HZ_A).talk("c", 100, 150, HZ_C).run()
    assert bench.keyed_spans("b") == [(10, 60)]
    for name in ("c", "d"):
        assert not bench.ptt_of(name).any()
        assert not bench.tx_of(name).any()
    # A port in no patch with carrier gives carrier events and nothing else.
    late = [(t, e["type"], e.get("port"), e.get("on")) for t, e in bench.log if t >= 60]
    assert late == [
        (60, "ptt", "b", False),
        (100, "carrier", "c", True),
        (150, "carrier", "c", False),
    ]
    assert not bench.tx[:, 60 * FRAME :].any()


# ============================================================================ 17. determinism
def busy_run() -> tuple[Floats, Bools, list[tuple[int, Event]]]:
    ports = [
        port("a", tx_delay_ms=150, hang_ms=800),
        port("b", full=True, tx_delay_ms=100),
        port("c", timeout_s=3.0),
        port("d"),
        port("e", tx_delay_ms=60),
        port("f", full=True),
    ]
    patches = [
        patch("p1", "a", "b", member("c", priority=3), floor=Floor.PRIORITY),
        patch("p2", "d", "e", "f", floor=Floor.MIX),
    ]
    engine = make_engine(ports, patches, enable=["p1", "p2"])
    bench = Bench(engine, 600)
    rng = np.random.default_rng(7)
    bench.audio("a", 10, speech_like(2.0, -6.0, rng))
    bench.audio("b", 40, speech_like(1.5, -3.0, rng))
    bench.audio("c", 60, speech_like(4.0, -1.0, rng))
    bench.audio("d", 20, speech_like(3.0, 0.0, rng))
    bench.audio("f", 30, speech_like(3.0, -1.0, rng))
    bench.key("e", 200, 500)
    bench.run()
    return bench.tx, bench.ptt, bench.log


def test_same_inputs_give_identical_outputs() -> None:
    tx1, ptt1, log1 = busy_run()
    tx2, ptt2, log2 = busy_run()
    assert tx1.any()
    assert len(log1) > 10
    np.testing.assert_array_equal(tx1, tx2)
    np.testing.assert_array_equal(ptt1, ptt2)
    assert log1 == log2
