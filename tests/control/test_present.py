"""Which calls and alarms are present: what begins and ends them (gateway.control.present)."""

from __future__ import annotations

from typing import Any

from gateway.control.present import Present
from gateway.core.events import Event


def alarm(kind: str, port: str | None = None, seq: int = 1) -> Event:
    event: dict[str, Any] = {"type": "alarm", "seq": seq, "time": "t", "kind": kind, "detail": "d"}
    if port is not None:
        event["port"] = port
    return event  # type: ignore[return-value]


def call(kind: str, call_id: str, source: str, *dests: str, recording: str | None = None) -> Event:
    event: dict[str, Any] = {
        "type": kind,
        "call_id": call_id,
        "source": {"port": source},
        "destinations": [{"port": d} for d in dests],
    }
    if kind == "call_end":
        event["recording"] = recording
    return event  # type: ignore[return-value]


def carrier(port: str, on: bool) -> Event:
    return {"type": "carrier", "time": "t", "port": port, "on": on}  # type: ignore[typeddict-item]


def paths(changes: list[tuple[str, Event | None]]) -> list[tuple[str, bool]]:
    return [(path, event is not None) for path, event in changes]


def test_a_call_is_present_from_its_start_to_its_end() -> None:
    present = Present()
    started = call("call_start", "c1", "rcmp-1", "usbp-1")
    assert present.note([started]) == [("calls/active/c1", started)]
    assert present.entries() == [("calls/active/c1", started)]
    assert present.note([carrier("rcmp-1", False)]) == []
    assert paths(present.note([call("call_end", "c1", "rcmp-1", "usbp-1")])) == [
        ("calls/active/c1", False)
    ]
    assert present.entries() == []


def test_each_alarm_ends_at_its_own_sign() -> None:
    present = Present()
    raised = [
        alarm("port_offline", "rcmp-1"),
        alarm("unkey_failed", "rcmp-1"),
        alarm("timeout", "usbp-1"),
        alarm("stuck_carrier", "rcmp-2"),
        alarm("recording_failed", "rcmp-2"),
        alarm("state_not_saved"),
        alarm("disk_full"),
        alarm("outbox_full"),
        alarm("some_new_kind", "usbp-1"),
    ]
    assert paths(present.note(raised)) == [
        ("alarms/active/port_offline/rcmp-1", True),
        ("alarms/active/unkey_failed/rcmp-1", True),
        ("alarms/active/timeout/usbp-1", True),
        ("alarms/active/stuck_carrier/rcmp-2", True),
        ("alarms/active/recording_failed/rcmp-2", True),
        ("alarms/active/state_not_saved/gateway", True),
        ("alarms/active/disk_full/gateway", True),
        ("alarms/active/outbox_full/gateway", True),
        ("alarms/active/some_new_kind/usbp-1", True),
    ]
    assert present.alarms() == raised
    assert paths(present.note([alarm("port_online", "rcmp-1")])) == [
        ("alarms/active/port_offline/rcmp-1", False),
        ("alarms/active/unkey_failed/rcmp-1", False),
    ]
    assert present.note([carrier("rcmp-2", True)]) == []
    assert paths(present.note([carrier("rcmp-2", False)])) == [
        ("alarms/active/stuck_carrier/rcmp-2", False)
    ]
    # A time-out of a port no known talker was sending to ends with the next call sent to it; an
    # unrecorded call ends no failure.
    assert paths(present.note([call("call_end", "c1", "rcmp-2", "usbp-1")])) == [
        ("alarms/active/timeout/usbp-1", False)
    ]
    assert paths(present.note([call("call_end", "c2", "rcmp-2", recording="/r/c2.wav")])) == [
        ("alarms/active/recording_failed/rcmp-2", False)
    ]
    assert paths(present.note([alarm("state_saved"), alarm("disk_ok")])) == [
        ("alarms/active/state_not_saved/gateway", False),
        ("alarms/active/disk_full/gateway", False),
    ]
    assert paths(present.clear("outbox_full")) == [("alarms/active/outbox_full/gateway", False)]
    assert present.clear("outbox_full") == []  # once
    assert paths(present.keep_ports(["rcmp-1"])) == [("alarms/active/some_new_kind/usbp-1", False)]
    assert present.alarms() == [] and present.entries() == []


def test_ends_are_never_active_and_a_repeat_replaces_the_first() -> None:
    present = Present()
    assert present.note([alarm("port_online", "rcmp-1"), alarm("disk_ok")]) == []
    first, again = alarm("port_offline", "rcmp-1", 1), alarm("port_offline", "rcmp-1", 2)
    present.note([first, alarm("disk_full"), again])
    assert present.alarms() == [alarm("disk_full"), again]


def test_a_time_out_lasts_while_its_talker_holds_on_even_after_the_call_ended() -> None:
    """rcmp-1 talks to usbp-1 alone; usbp-1 times out, so the call ends at once, but usbp-1 stays
    locked out (and rcmp-1's carrier ignored) until rcmp-1 lets go."""
    present = Present()
    present.note([call("call_start", "c1", "rcmp-1", "usbp-1")])
    raised = present.note([alarm("timeout", "usbp-1"), alarm("stuck_carrier", "rcmp-1")])
    assert paths(raised) == [
        ("alarms/active/timeout/usbp-1", True),
        ("alarms/active/stuck_carrier/rcmp-1", True),
    ]
    assert paths(present.note([call("call_end", "c1", "rcmp-1", "usbp-1")])) == [
        ("calls/active/c1", False)
    ]
    assert [a["kind"] for a in present.alarms()] == ["timeout", "stuck_carrier"]
    assert present.note([carrier("usbp-1", False)]) == []  # not the talker
    assert paths(present.note([carrier("rcmp-1", False)])) == [
        ("alarms/active/stuck_carrier/rcmp-1", False),
        ("alarms/active/timeout/usbp-1", False),
    ]
    assert present.alarms() == []


def test_a_timed_out_port_keyed_again_is_no_longer_locked_out() -> None:
    present = Present()
    present.note([call("call_start", "c1", "rcmp-1", "usbp-1", "wcso-1")])
    present.note([alarm("timeout", "usbp-1")])
    ptt: Event = {"type": "ptt", "time": "t", "port": "usbp-1", "on": True}  # type: ignore[typeddict-item]
    assert paths(present.note([ptt])) == [("alarms/active/timeout/usbp-1", False)]
    # Nothing waits for rcmp-1's drop any more.
    assert present.note([carrier("rcmp-1", False)]) == []
