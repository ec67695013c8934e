"""The present on the broker for consoles that open late: calls in progress, active alarms, the
gateway's info and each login's access, retained under PREFIX/GW; cleared when they end, and
what a crashed run left behind cleared by the next one."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from gateway import __version__
from tests.support.daemon_mqtt import PREFIX, MqttSite, payloads, start
from tests.support.mqtt_env import Broker, Message, Watcher

ALL = ["enable", "disable", "approve", "deny"]
ACTIVE_CALLS = f"{PREFIX}/calls/active/+"
ACTIVE_ALARMS = f"{PREFIX}/alarms/active/#"


class TimeoutSite(MqttSite):
    """rcmp-1 talks in bursts (e.g. 8 s in every 10); usbp-1 times out after 1 s of each:
    alarms `timeout` on usbp-1 and `stuck_carrier` on rcmp-1 during each call, both over when
    the call ends."""

    def write(self, **options: Any) -> None:  # type: ignore[override]
        super().write(**options)
        text = self.config.read_text()
        text = text.replace(
            "  usbp-1:\n    talkgroup: usbp/ch4\n    simulated: {}\n",
            "  usbp-1:\n    talkgroup: usbp/ch4\n    simulated: {}\n    timing: {timeout_s: 1}\n",
        )
        assert "timeout_s: 1" in text
        self.config.write_text(text)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[MqttSite]:
    s = MqttSite(tmp_path)
    yield s
    s.close()


@pytest.fixture
def timeout_site(tmp_path: Path) -> Iterator[TimeoutSite]:
    s = TimeoutSite(tmp_path)
    yield s
    s.close()


def retained(watcher: Watcher, topic: str) -> list[Message]:
    return [m for m in watcher.on(topic) if m.retain and m.payload]


def cleared(watcher: Watcher, topic: str) -> bool:
    return any(not m.payload for m in watcher.on(topic))


def command(watcher: Watcher, user: str, body: dict[str, Any]) -> dict[str, Any]:
    before = len(watcher.on(f"{PREFIX}/reply/{user}"))
    watcher.publish(f"{PREFIX}/cmd/{user}", json.dumps(body))
    replies = watcher.wait_for(lambda: payloads(watcher, f"{PREFIX}/reply/{user}")[before:])
    reply: dict[str, Any] = replies[0]
    return reply


def test_a_late_console_sees_the_call_in_progress_and_its_end(
    site: MqttSite, broker: Broker
) -> None:
    daemon = start(site, broker, every_s=4, talk_s=3)
    live = Watcher(broker, f"{PREFIX}/calls")
    start_event = live.wait_for(
        lambda: [c for c in payloads(live, f"{PREFIX}/calls") if c["type"] == "call_start"]
    )[0]
    topic = f"{PREFIX}/calls/active/{start_event['call_id']}"
    late = Watcher(broker, ACTIVE_CALLS)
    (message,) = late.wait_for(lambda: retained(late, topic))
    assert message.json() == start_event  # the call_start object itself
    late.wait_for(lambda: cleared(late, topic), message="the call's topic was not cleared")
    # Its call_end comes through the outbox, the clear straight from the present: either may
    # reach a subscriber first.
    ended = live.wait_for(
        lambda: [c for c in payloads(live, f"{PREFIX}/calls") if c["type"] == "call_end"]
    )
    assert ended[0]["call_id"] == start_event["call_id"]
    after = Watcher(broker, topic)
    live.wait_for(lambda: payloads(live, f"{PREFIX}/calls")[-1]["type"] == "call_start")
    assert not retained(after, topic)  # the ended call is gone from the broker
    assert daemon.stop() == 0
    # A clean stop ends the calls in progress (call_end shutdown), and their topics with them.
    final = Watcher(broker, ACTIVE_CALLS, f"{PREFIX}/status")
    final.wait_for(lambda: final.on(f"{PREFIX}/status"))
    assert not [m for m in final.messages if m.topic != f"{PREFIX}/status" and m.payload]
    for w in (live, late, after, final):
        w.close()


def test_alarms_are_active_while_their_condition_lasts(
    timeout_site: TimeoutSite, broker: Broker
) -> None:
    # Each call's alarms last about 7 s: long enough to be seen by polling `status` on a busy
    # machine, where one `crosspatch status` may take a second.
    daemon = start(timeout_site, broker, every_s=10, talk_s=8)
    timeout_topic = f"{PREFIX}/alarms/active/timeout/usbp-1"
    stuck_topic = f"{PREFIX}/alarms/active/stuck_carrier/rcmp-1"
    events = Watcher(broker, f"{PREFIX}/events")
    events.wait_for(
        lambda: [e for e in payloads(events, f"{PREFIX}/events") if e["type"] == "alarm"],
        timeout=30,
    )
    late = Watcher(broker, ACTIVE_ALARMS)
    (timeout,) = late.wait_for(lambda: retained(late, timeout_topic))
    alarm = timeout.json()
    assert alarm["type"] == "alarm" and alarm["kind"] == "timeout" and alarm["port"] == "usbp-1"
    # `status` lists the active alarms too (polled).
    listed = late.wait_for(
        lambda: [a for a in timeout_site.status()["alarms"] if a.get("port") == "usbp-1"],
        timeout=30,
    )
    assert [a["kind"] for a in listed] == ["timeout"]
    # The lock-out ends with the call, the stuck carrier when rcmp-1's carrier drops.
    late.wait_for(lambda: cleared(late, timeout_topic), message="timeout not cleared")
    late.wait_for(lambda: cleared(late, stuck_topic), message="stuck_carrier not cleared")
    alarms = [e for e in payloads(events, f"{PREFIX}/events") if e["type"] == "alarm"]
    assert {a["kind"] for a in alarms} >= {"timeout", "stuck_carrier"}
    assert daemon.stop() == 0
    for w in (events, late):
        w.close()


def test_info_and_what_each_login_may_do(site: MqttSite, broker: Broker) -> None:
    start(site, broker, border_enabled=False)
    late = Watcher(broker, f"{PREFIX}/info", f"{PREFIX}/access/+", f"{PREFIX}/reply/+")
    access = late.wait_for(
        lambda: (
            {m.topic.rsplit("/", 1)[1]: m.json() for m in retained(late, f"{PREFIX}/access/+")}
            if len(retained(late, f"{PREFIX}/access/+")) == 4
            else None
        )
    )
    assert access == {
        "alice": {
            "user": "alice",
            "role": "dispatcher",
            "agency": "rcmp",
            "patches": {"border-tac": ALL},
        },
        "bob": {
            "user": "bob",
            "role": "dispatcher",
            "agency": "usbp",
            "patches": {"border-tac": ALL, "county": ALL},
        },
        "carol": {
            "user": "carol",
            "role": "dispatcher",
            "agency": "wcso",
            "patches": {"county": ALL},
        },
        "tech1": {
            "user": "tech1",
            "role": "technician",
            "agency": None,
            "patches": {"border-tac": ALL, "county": ALL},
        },
    }
    (info,) = late.wait_for(lambda: retained(late, f"{PREFIX}/info"))
    assert info.json() == {
        "gateway": "mq-gw",
        "site": None,
        "version": __version__,
        "agencies": {
            "rcmp": {"name": "Royal Canadian Mounted Police", "country": "CA"},
            "usbp": {"name": "U.S. Border Patrol", "country": "US"},
            "wcso": {"name": "Whatcom County Sheriff", "country": "US"},
        },
        "pending_expiry_s": 900,
    }
    # What is not offered is refused by the gateway too.
    refused = command(late, "carol", {"command": "patch.enable", "patch": "border-tac"})
    assert refused["ok"] is False and "no talkgroup of wcso" in refused["error"]
    # A reload that removes a login clears its access; one that names the site shows it.
    text = site.config.read_text()
    text = text.replace(", carol: {agency: wcso}", "").replace(
        "id: mq-gw,", "id: mq-gw, site: Blaine,"
    )
    assert "carol" not in text and "site: Blaine" in text
    site.config.write_text(text)
    assert site.cli("reload").returncode == 0
    late.wait_for(lambda: cleared(late, f"{PREFIX}/access/carol"), message="carol's access stays")
    late.wait_for(
        lambda: (
            retained(late, f"{PREFIX}/info")[-1:]
            and late.on(f"{PREFIX}/info")[-1].json()["site"] == "Blaine"
        )
    )
    late.close()


def test_a_pending_patch_names_who_asked_who_must_approve_and_when_it_expires(
    site: MqttSite, broker: Broker
) -> None:
    start(site, broker, border_enabled=False)
    watcher = Watcher(
        broker, f"{PREFIX}/patches/border-tac", f"{PREFIX}/events", f"{PREFIX}/reply/+"
    )
    reply = command(watcher, "alice", {"command": "patch.enable", "patch": "border-tac"})
    assert reply["ok"] and reply["result"]["state"] == "pending"
    pending = watcher.wait_for(
        lambda: [
            p for p in payloads(watcher, f"{PREFIX}/patches/border-tac") if p["state"] == "pending"
        ]
    )[-1]
    assert pending["requested_by"] == "alice" and pending["waiting_for"] == ["usbp"]
    assert pending["consent"] == ["rcmp", "usbp"] and pending["agencies"] == ["rcmp", "usbp"]
    assert pending["floor"] == "first"
    assert [m["agency"] for m in pending["members"]] == ["rcmp", "usbp"]
    event = [e for e in payloads(watcher, f"{PREFIX}/events") if e["type"] == "patch"][-1]
    assert event["state"] == "pending" and event["waiting_for"] == ["usbp"]
    # Expires pending_expiry_s (900 s) after the request, to the millisecond.
    assert pending["expires"] > event["time"]
    start_s = _seconds(event["time"])
    assert abs(_seconds(pending["expires"]) - start_s - 900) < 0.05
    command(watcher, "bob", {"command": "patch.approve", "patch": "border-tac"})
    enabled = watcher.wait_for(
        lambda: [
            p for p in payloads(watcher, f"{PREFIX}/patches/border-tac") if p["state"] == "enabled"
        ]
    )[-1]
    assert enabled["requested_by"] is None and enabled["waiting_for"] == []
    assert enabled["expires"] is None
    watcher.close()


def _seconds(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def test_a_restart_after_a_crash_clears_what_the_last_run_left(
    site: MqttSite, broker: Broker
) -> None:
    daemon = start(site, broker, every_s=4, talk_s=3)
    live = Watcher(broker, f"{PREFIX}/calls")
    call = live.wait_for(
        lambda: [c for c in payloads(live, f"{PREFIX}/calls") if c["type"] == "call_start"]
    )[0]
    stale_call = f"{PREFIX}/calls/active/{call['call_id']}"
    seen = Watcher(broker, stale_call)
    seen.wait_for(lambda: retained(seen, stale_call))
    daemon.stop(signal.SIGKILL)  # mid-call: its topic stays on the broker
    # What other crashed runs may have left: an alarm and a login no longer in the config.
    stale_alarm = f"{PREFIX}/alarms/active/port_offline/gone-1"
    stale_login = f"{PREFIX}/access/mallory"
    for topic in (stale_alarm, stale_login):
        seen.client.publish(topic, b'{"stale": true}', qos=1, retain=True).wait_for_publish(10)
    before = Watcher(broker, stale_call, stale_alarm, stale_login)
    before.wait_for(lambda: len(retained(before, "#")) == 3)
    start(site, broker, every_s=600, talk_s=1)  # no call this time
    for topic in (stale_call, stale_alarm, stale_login):
        before.wait_for(lambda topic=topic: cleared(before, topic), message=f"{topic} stays")
    after = Watcher(
        broker, f"{PREFIX}/calls/active/#", f"{PREFIX}/alarms/active/#", f"{PREFIX}/access/+"
    )
    after.wait_for(lambda: len(retained(after, f"{PREFIX}/access/+")) == 4)
    kept = {m.topic for m in after.messages if m.payload}
    assert not kept & {stale_call, stale_alarm, stale_login}
    for w in (live, seen, before, after):
        w.close()
