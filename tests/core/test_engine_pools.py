"""Pool radios and ports out of service, in the engine.

A pool radio serves whatever talkgroup an enabled patch needs and no dedicated port serves; a port
out of service (offline hardware, a radio still being tuned) is neither heard nor keyed, and its
patch carries on without it.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from gateway.core.engine import (
    MemberSpec,
    NoFreeRadio,
    PatchEngine,
    PatchSpec,
    PooledMemberSpec,
    PortSpec,
    PortTiming,
)
from gateway.core.events import Event, TickClock

FRAME = 160
TIMING = PortTiming(tx_delay_ms=0, hang_ms=0, timeout_s=180, rx_inhibit_ms=0)


def dedicated(name: str) -> PortSpec:
    return PortSpec(name, f"{name}-ag/tg", f"{name}-ag", TIMING)


def pool_radio(name: str) -> PortSpec:
    return PortSpec(name, "", "", TIMING, pool="vhf")


def pooled(talkgroup: str, *candidates: str) -> PooledMemberSpec:
    return PooledMemberSpec(talkgroup, talkgroup.split("/")[0], candidates)


PORTS = [dedicated("a"), dedicated("b"), dedicated("c"), pool_radio("p1"), pool_radio("p2")]
PATCHES = [
    PatchSpec("pa", (MemberSpec("a"),), pooled=(pooled("usbp/ch4", "p1", "p2"),)),
    PatchSpec("pb", (MemberSpec("b"),), pooled=(pooled("cbp/ch1", "p1", "p2"),)),
    PatchSpec("pc", (MemberSpec("c"),), pooled=(pooled("usfs/air", "p1", "p2"),)),
]


def engine() -> PatchEngine:
    clock = TickClock(datetime(2026, 1, 1, tzinfo=UTC), 20)
    return PatchEngine(PORTS, PATCHES, clock=clock, gateway_id="gw")


def tick(e: PatchEngine, talking: set[str]) -> tuple[dict[str, bool], list[Event]]:
    rx = np.zeros((len(PORTS), FRAME), np.float32)
    carrier = np.array([p.name in talking for p in PORTS])
    rx[carrier] = 0.25
    result = e.tick(rx, carrier)
    return {p.name: bool(result.ptt[i]) for i, p in enumerate(PORTS)}, result.events


def test_two_patches_take_the_two_free_pool_radios_and_a_third_is_refused() -> None:
    e = engine()
    e.enable_patch("pa")
    e.enable_patch("pb")
    assert e.assignments == {"p1": "usbp/ch4", "p2": "cbp/ch1"}
    with pytest.raises(NoFreeRadio, match=r"no free pool radio can serve 'usfs/air'.*'pa'"):
        e.enable_patch("pc")
    assert "pc" not in e.enabled_patches
    assert e.patch_of_port("c") is None  # a refused enable takes nothing


def test_disabling_a_patch_returns_its_radio_to_the_pool() -> None:
    e = engine()
    e.enable_patch("pa")
    e.enable_patch("pb")
    e.disable_patch("pa")
    assert e.assignments == {"p2": "cbp/ch1"}
    assert e.port_serves("p1") == ("", "")
    e.enable_patch("pc")
    assert e.assignments == {"p1": "usfs/air", "p2": "cbp/ch1"}


def test_a_call_through_a_pool_radio_names_the_talkgroup_it_serves() -> None:
    e = engine()
    e.enable_patch("pa")
    ptt, events = tick(e, {"a"})
    assert ptt["p1"] and not ptt["p2"]
    start = next(ev for ev in events if ev["type"] == "call_start")
    assert start["destinations"] == [{"port": "p1", "talkgroup": "usbp/ch4", "agency": "usbp"}]
    for _ in range(3):  # the call ends, p1 unkeys
        tick(e, set())
    ptt, events = tick(e, {"p1"})  # and the other way
    start = next(ev for ev in events if ev["type"] == "call_start")
    assert start["source"] == {"port": "p1", "talkgroup": "usbp/ch4", "agency": "usbp"}
    assert ptt["a"]


def test_an_offline_pool_radio_is_not_taken() -> None:
    e = engine()
    e.set_port_online("p1", False)
    e.enable_patch("pa")
    assert e.assignments == {"p2": "usbp/ch4"}
    with pytest.raises(NoFreeRadio, match=r"p1 \(offline\)"):
        e.enable_patch("pb")


def test_check_enable_changes_nothing() -> None:
    e = engine()
    members = e.check_enable("pa")
    assert [m.port for m in members] == ["a", "p1"]
    assert e.assignments == {} and not e.enabled_patches


def test_a_port_going_offline_unkeys_now_and_is_neither_heard_nor_keyed() -> None:
    e = engine()
    e.enable_patch("pa")
    ptt, _ = tick(e, {"a"})
    assert ptt["p1"]
    events = e.set_port_online("p1", False)
    assert [(ev["type"], ev.get("on"), ev.get("reason")) for ev in events] == [
        ("ptt", False, "port_offline")
    ]
    ptt, _ = tick(e, {"a"})
    assert not ptt["p1"]
    ptt, events = tick(e, {"p1"})  # its carrier is not heard
    assert not any(ptt.values()) and not [ev for ev in events if ev["type"] == "call_start"]
    e.set_port_online("p1", True)
    ptt, _ = tick(e, {"a"})
    assert ptt["p1"]


def test_an_offline_talker_ends_its_call() -> None:
    e = engine()
    e.enable_patch("pa")
    tick(e, {"p1"})
    events = e.set_port_online("p1", False)
    end = [ev for ev in events if ev["type"] == "call_end"]
    assert end and end[0]["reason"] == "port_offline"
    ptt, _ = tick(e, {"p1"})
    assert not ptt["a"]


def test_a_radio_being_tuned_is_out_of_service_but_stays_in_its_patch() -> None:
    e = engine()
    e.enable_patch("pa")
    e.set_port_ready("p1", False)
    ptt, _ = tick(e, {"a"})
    assert not ptt["p1"]
    assert e.patch_of_port("p1") == "pa"
    e.set_port_ready("p1", True)
    ptt, _ = tick(e, {"a"})
    assert ptt["p1"]


def test_reload_keeps_the_same_pool_radios_for_a_kept_patch() -> None:
    e = engine()
    e.set_port_online("p1", False)
    e.enable_patch("pa")  # takes p2
    e.set_port_online("p1", True)
    tick(e, {"a"})
    new, events = e.successor(PORTS, PATCHES)
    assert new.assignments == {"p2": "usbp/ch4"}
    assert events == []
    ptt = new.tick(np.zeros((len(PORTS), FRAME), np.float32), np.array([True] + [False] * 4)).ptt
    assert ptt[PORTS.index(pool_radio("p2"))]


def test_an_alarm_carries_the_engine_time() -> None:
    e = engine()
    alarm = e.alarm("port_offline", "unplugged", port="a")
    assert alarm["type"] == "alarm" and alarm["port"] == "a" and alarm["time"].startswith("2026")
