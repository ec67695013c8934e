"""Announcements in the engine: sent on free ports only, keyed like a call, never over one."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from gateway.core.engine import (
    ANNOUNCE_MAX_WAIT_S,
    MemberSpec,
    PatchEngine,
    PatchSpec,
    PortSpec,
    PortTiming,
)
from gateway.core.events import Event, TickClock

FRAME = 160
PORTS = [
    PortSpec("a", "ag/a", "ag", PortTiming(tx_delay_ms=40, hang_ms=100, rx_inhibit_ms=0)),
    PortSpec("b", "bg/b", "bg", PortTiming(tx_delay_ms=0, hang_ms=100, rx_inhibit_ms=0)),
]
PATCH = PatchSpec("p", (MemberSpec("a"), MemberSpec("b")))
BEEP = np.full(400, 0.25, dtype=np.float32)  # 50 ms


def engine() -> PatchEngine:
    clock = TickClock(datetime(2026, 1, 1, tzinfo=UTC), 20)
    e = PatchEngine(PORTS, [PATCH], clock=clock, gateway_id="gw")
    e.enable_patch("p")
    return e


def run(
    e: PatchEngine,
    ticks: int,
    talking: set[str] = frozenset(),  # type: ignore[assignment]
) -> tuple[np.ndarray, np.ndarray, list[Event]]:
    tx, ptt, events = [], [], []
    for _ in range(ticks):
        carrier = np.array([p.name in talking for p in PORTS])
        result = e.tick(np.zeros((2, FRAME), np.float32), carrier)
        tx.append(result.tx)
        ptt.append(result.ptt)
        events += result.events
    return np.concatenate(tx, axis=1), np.array(ptt), events


def test_an_announcement_keys_the_port_and_comes_out_after_its_tx_delay() -> None:
    e = engine()
    e.announce(["a", "b"], BEEP)
    tx, ptt, events = run(e, 20)
    on = [ev for ev in events if ev["type"] == "ptt" and ev["on"]]
    assert {ev["port"] for ev in on} == {"a", "b"}
    assert all(ev["reason"] == "announcement" for ev in on)
    assert not [ev for ev in events if ev["type"] == "call_start"]
    start_a = int(np.flatnonzero(tx[0])[0])
    start_b = int(np.flatnonzero(tx[1])[0])
    assert start_a - start_b == 320  # a's 40 ms key-up delay
    assert np.count_nonzero(tx[0]) == BEEP.size and np.count_nonzero(tx[1]) == BEEP.size
    assert not ptt[-1].any()  # unkeyed after the hang


def test_an_announcement_waits_for_a_call_to_end_and_never_plays_over_it() -> None:
    e = engine()
    tx, _, _ = run(e, 3, {"a"})  # a is talking: b is keyed for the call
    e.announce(["b"], BEEP)
    tx, _, _ = run(e, 10, {"a"})
    assert not np.any(tx[1] == np.float32(0.25))  # only the call's (silent) audio
    tx, _, _ = run(e, 30)
    assert np.count_nonzero(tx[1] == np.float32(0.25)) == BEEP.size  # once the call is over


def test_an_announcement_never_played_within_the_wait_is_dropped() -> None:
    e = engine()
    e.announce(["b"], BEEP)
    ticks = round(ANNOUNCE_MAX_WAIT_S * 50) + 5
    tx, _, _ = run(e, ticks, {"b"})  # b receives all along
    tx, ptt, _ = run(e, 20)
    assert not tx[1].any() and not ptt[:, 1].any()


def test_release_all_drops_pending_announcements() -> None:
    e = engine()
    e.announce(["a"], BEEP)
    e.release_all()
    tx, ptt, _ = run(e, 10)
    assert not tx.any() and not ptt.any()
