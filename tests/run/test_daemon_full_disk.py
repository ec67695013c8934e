"""A full disk under the state directory: a patch change is in effect, loud, and saved again;
the MQTT outbox goes on in its reserve, so the alarm and every event still reach the broker.

A real full filesystem: the state directory is a small tmpfs (the tests run as root) that the
test fills, then frees, while `crosspatch run` works on it.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.daemon import Daemon, Site
from tests.support.daemon_mqtt import PREFIX, MqttSite, payloads, seqs_seen, start
from tests.support.full_disk import fill, small_tmpfs
from tests.support.mqtt_env import Broker, Watcher


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    # Room for the control socket, the lock and a state file, and little more.
    with small_tmpfs(tmp_path / "state", "512k"):
        s = Site(tmp_path)
        yield s
        s.close()


def alarms(daemon: Daemon, kind: str) -> list[dict[str, Any]]:
    return [event for event in daemon.events("alarm") if event["kind"] == kind]


def saved_patches(site: Site) -> dict[str, Any]:
    stored: dict[str, Any] = json.loads((site.state_dir / "patches.json").read_text())["patches"]
    return stored


def test_a_change_on_a_full_disk_is_in_effect_loud_and_saved_once_there_is_room(
    site: Site,
) -> None:
    site.write(border_enabled=False)
    daemon = site.start()
    site.wait_ready(daemon)
    filler = fill(site.state_dir)

    enabled = site.cli("patch", "enable", "county")
    assert enabled.returncode == 0, enabled.stderr  # in effect...
    assert "NOT SAVED" in enabled.stdout and "No space left on device" in enabled.stdout
    states = {p["patch"]: p["state"] for p in site.status()["patches"]}
    assert states["county"] == "enabled"
    # ...and loud: an alarm, and `status` says so in JSON and in words.
    (alarm,) = daemon.wait_for(lambda: alarms(daemon, "state_not_saved"))
    assert "No space left on device" in alarm["detail"]
    state = site.status()["state"]
    assert state["saved"] is False and "No space left" in state["error"]
    text = site.cli("status")
    assert "PATCH STATE NOT SAVED" in text.stdout
    assert "county" not in saved_patches(site)

    # A second change while the disk is still full raises no second alarm.
    assert "NOT SAVED" in site.cli("patch", "enable", "border-tac").stdout
    daemon.wait_for(lambda: site.status()["state"]["failed_tries"] >= 3, timeout=30)
    assert len(alarms(daemon, "state_not_saved")) == 1

    filler.unlink()  # room again: the retry saves the state as it is now
    (cleared,) = daemon.wait_for(lambda: alarms(daemon, "state_saved"), timeout=30)
    assert "failed tries" in cleared["detail"]
    assert site.status()["state"] == {
        "file": str(site.state_dir / "patches.json"),
        "saved": True,
        "error": None,
        "failed_tries": 0,
    }
    assert set(saved_patches(site)) == {"county", "border-tac"}
    assert "NOT SAVED" not in site.cli("patch", "disable", "border-tac").stdout
    daemon.stop(signal.SIGKILL)

    again = site.start()
    site.wait_ready(again)
    states = {p["patch"]: p["state"] for p in site.status()["patches"]}
    assert states == {"border-tac": "disabled", "county": "enabled"}
    assert again.stop() == 0


def test_a_stop_with_the_state_not_saved_says_so_and_exits_1(site: Site) -> None:
    site.write(border_enabled=False)
    daemon = site.start()
    site.wait_ready(daemon)
    fill(site.state_dir)
    assert "NOT SAVED" in site.cli("patch", "enable", "county").stdout
    assert daemon.stop() == 1
    assert any("patch state NOT SAVED" in line for line in daemon.lines), daemon.log()


@pytest.fixture
def mqtt_site(tmp_path: Path) -> Iterator[MqttSite]:
    # Room for the outbox's reserve (8 MiB) twice over once the filler is gone.
    with small_tmpfs(tmp_path / "state", "40m"):
        s = MqttSite(tmp_path)
        yield s
        s.close()


def test_with_the_disk_full_every_event_and_the_alarm_still_reach_the_broker(
    mqtt_site: MqttSite, broker: Broker
) -> None:
    site = mqtt_site
    daemon = start(site, broker, every_s=1, talk_s=0.5)
    watcher = Watcher(broker, f"{PREFIX}/#")
    filler = fill(site.state_dir)

    def alarm_on_broker(kind: str) -> list[dict[str, Any]]:
        found = payloads(watcher, f"{PREFIX}/events")
        return [e for e in found if e["type"] == "alarm" and e["kind"] == kind]

    try:
        (full,) = watcher.wait_for(lambda: alarm_on_broker("disk_full"), timeout=30)
    except AssertionError as exc:  # what the daemon said is the clue
        said = "\n".join(line for line in daemon.lines if " events: " not in line)
        raise AssertionError(f"{exc}\n--- the daemon's log, but events:\n{said}") from None
    assert "free space now" in full["detail"]
    assert site.status()["mqtt"]["on_reserve"] is True
    assert "DISK FULL" in site.cli("status").stdout
    # Calls go on, and their records reach the broker from the reserve.
    mark = max(e["seq"] for e in daemon.events())
    watcher.wait_for(lambda: max(seqs_seen(watcher)) > mark + 20, timeout=30)

    filler.unlink()
    watcher.wait_for(lambda: alarm_on_broker("disk_ok"), timeout=30)
    assert site.status()["mqtt"]["on_reserve"] is False
    last = max(e["seq"] for e in daemon.events())
    watcher.wait_for(lambda: max(seqs_seen(watcher)) >= last, timeout=30)
    seen = seqs_seen(watcher)
    assert set(range(min(seen), last + 1)) <= seen  # nothing lost on the way
    watcher.close()
    assert daemon.stop() == 0
