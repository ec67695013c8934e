"""`crosspatch run` as a real subprocess: readiness, control socket, reload, restart, safe stop."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.daemon import CROSSPATCH, Daemon, Site


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    s = Site(tmp_path)
    yield s
    s.close()


def active_call(status: dict[str, Any], patch: str) -> dict[str, Any] | None:
    return next((c for c in status["calls"] if c["patch"] == patch), None)


def test_ready_enable_over_socket_and_traffic_is_routed(site: Site) -> None:
    site.write(border_enabled=False)
    daemon = site.start()
    site.wait_ready(daemon)
    assert site.socket.exists() and (site.socket.stat().st_mode & 0o777) == 0o660

    listed = site.cli("patch", "list")
    assert listed.returncode == 0 and "border-tac" in listed.stdout and "disabled" in listed.stdout

    enabled = site.cli("patch", "enable", "border-tac")
    assert enabled.returncode == 0, enabled.stderr
    assert "enabled" in enabled.stdout

    # Generated traffic on rcmp-1 is patched to usbp-1: a call and usbp-1's transmitter keyed.
    call = daemon.wait_for(lambda: active_call(site.status(), "border-tac"), timeout=20)
    assert call["source"]["port"] == "rcmp-1"
    assert [d["port"] for d in call["destinations"]] == ["usbp-1"]
    assert daemon.wait_for(
        lambda: [e for e in daemon.events("ptt") if e["port"] == "usbp-1" and e["on"]]
    )
    audit = daemon.wait_for(
        lambda: [a for a in daemon.events("audit") if a["command"] == "patch.enable"]
    )
    assert audit[0]["result"] == "accepted"
    assert audit[0]["principal"]  # the local user, from the socket's peer credentials
    # Reading is audited too: the list asked for above.
    assert [a["result"] for a in daemon.events("audit") if a["command"] == "patch.list"]

    status = site.status()
    assert status["gateway"] == "test-gw" and status["ticks"]["ticks"] > 0
    assert {p["port"] for p in status["ports"]} == {"rcmp-1", "usbp-1", "wcso-1", "wcso-2"}
    assert daemon.stop() == 0


def test_unknown_patch_is_a_clear_error_and_the_daemon_carries_on(site: Site) -> None:
    daemon = site.start()
    site.wait_ready(daemon)
    result = site.cli("patch", "enable", "no-such-patch")
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert "no-such-patch" in line and "border-tac" in line
    # Garbage on the socket does not hurt either.
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as raw:
        raw.settimeout(10)  # the daemon's reply, or a failure: never a hang
        raw.connect(str(site.socket))
        raw.sendall(b"this is not json\n")
        reply = json.loads(raw.makefile().readline())
        assert reply["ok"] is False
    assert site.status()["gateway"] == "test-gw"
    assert daemon.stop() == 0


def test_second_daemon_on_the_same_state_dir_is_refused(site: Site) -> None:
    first = site.start()
    site.wait_ready(first)
    second = subprocess.run(
        [*CROSSPATCH, "run", str(site.config)], capture_output=True, text=True, timeout=30
    )
    assert second.returncode == 1
    assert "another crosspatch daemon" in second.stderr and "Traceback" not in second.stderr
    assert first.proc.poll() is None
    assert first.stop() == 0


def test_reload_keeps_untouched_calls_and_applies_the_change(site: Site) -> None:
    daemon = site.start()
    site.wait_ready(daemon)
    assert site.cli("patch", "enable", "county").returncode == 0

    def on_air() -> dict[str, Any] | None:
        """border-tac's call in progress, from the log: no CLI round trip, which a busy machine
        makes slow, while the talker lets go after 8 s."""
        ended = {e["call_id"] for e in daemon.events("call_end")}
        calls = [
            c
            for c in daemon.events("call_start")
            if c["patch"] == "border-tac" and c["call_id"] not in ended
        ]
        return calls[-1] if calls else None

    call = daemon.wait_for(on_air, timeout=20)

    # county changes its floor; border-tac is untouched.
    text = site.config.read_text().replace(
        "  county:\n    members: [wcso/main, wcso/tac]",
        "  county:\n    members: [wcso/main, wcso/tac]\n    floor: mix",
    )
    site.config.write_text(text)
    daemon.proc.send_signal(signal.SIGHUP)
    daemon.wait_for(lambda: any("reloaded" in line for line in daemon.lines))

    def ends_of_call() -> tuple[int, list[tuple[int, dict[str, Any]]]]:
        """The reload's line, and each end of `call` with its line (in the log's order)."""
        lines = list(daemon.lines)
        reloaded = next(i for i, line in enumerate(lines) if "reloaded" in line)
        events = [
            (i, json.loads(line.split(" events: ", 1)[1]))
            for i, line in enumerate(lines)
            if " events: " in line
        ]
        ends = [(i, e) for i, e in events if e["type"] == "call_end"]
        return reloaded, [(i, e) for i, e in ends if e["call_id"] == call["call_id"]]

    after = site.status()
    still = active_call(after, "border-tac")
    if still is not None and still["call_id"] == call["call_id"]:
        assert ends_of_call()[1] == []  # no glitch: the same call goes on
    else:  # the talker let go meanwhile (the status takes a while on a busy machine)...
        reloaded, ends = daemon.wait_for(lambda: (r := ends_of_call())[1] and r)
        # ...after the reload: the call went on across it, and nothing else ended it.
        assert [(e["reason"], i > reloaded) for i, e in ends] == [("carrier_drop", True)]
    county = next(p for p in after["patches"] if p["patch"] == "county")
    assert county["floor"] == "mix" and county["state"] == "enabled"
    assert site.cli("reload").returncode == 0  # the CLI way works too
    assert daemon.stop() == 0


def test_reload_with_a_broken_config_changes_nothing(site: Site) -> None:
    daemon = site.start()
    site.wait_ready(daemon)
    before = site.status()
    site.config.write_text(site.config.read_text().replace("floor", "flor") + "\nbogus: [")
    daemon.proc.send_signal(signal.SIGHUP)
    daemon.wait_for(lambda: any("reload refused" in line for line in daemon.lines))
    result = site.cli("reload")
    assert result.returncode == 1 and "still running the previous" in result.stderr
    after = site.status()
    assert [(p["patch"], p["state"]) for p in after["patches"]] == [
        (p["patch"], p["state"]) for p in before["patches"]
    ]
    assert daemon.proc.poll() is None
    assert daemon.stop() == 0


def test_kill_9_and_restart_restores_enabled_patches(site: Site) -> None:
    site.write(border_enabled=False)
    daemon = site.start()
    site.wait_ready(daemon)
    assert site.cli("patch", "enable", "county").returncode == 0
    daemon.stop(signal.SIGKILL)

    again = site.start()
    site.wait_ready(again)
    states = {p["patch"]: p["state"] for p in site.status()["patches"]}
    assert states == {"border-tac": "disabled", "county": "enabled"}
    restored = again.wait_for(lambda: again.events("patch"))
    assert restored[0]["by"] == "restore"
    assert again.stop() == 0


def test_sigterm_ends_calls_unkeys_every_port_and_exits_0(site: Site) -> None:
    daemon = site.start()
    site.wait_ready(daemon)
    daemon.wait_for(lambda: active_call(site.status(), "border-tac"), timeout=20)
    started = time.monotonic()
    assert daemon.stop(signal.SIGTERM) == 0
    assert time.monotonic() - started < 2.5
    ends = [e for e in daemon.events("call_end") if e["reason"] == "shutdown"]
    assert ends and ends[0]["patch"] == "border-tac"
    keyed: dict[str, bool] = {}
    for event in daemon.events("ptt"):
        keyed[event["port"]] = event["on"]
    assert keyed and not any(keyed.values())
    assert not site.socket.exists()


def test_sd_notify_ready_watchdog_and_stopping(site: Site) -> None:
    env = {**os.environ, "NOTIFY_SOCKET": site.notify_path, "WATCHDOG_USEC": "1000000"}
    env.pop("WATCHDOG_PID", None)
    daemon = Daemon(site.config, env)
    site.daemons.append(daemon)
    messages = site.wait_ready(daemon)
    assert any(m.startswith("READY=1") or "\nREADY=1" in m for m in messages)
    pings = 0
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and pings < 3:
        try:
            if "WATCHDOG=1" in site.notify.recv(4096).decode():
                pings += 1
        except TimeoutError:
            continue
    assert pings >= 3  # the engine is alive, so the watchdog is fed (every 0.5 s here)
    daemon.proc.send_signal(signal.SIGTERM)
    rest: list[str] = []
    while True:
        try:
            rest.append(site.notify.recv(4096).decode())
        except TimeoutError:
            if daemon.proc.poll() is not None:
                break
    assert any("STOPPING=1" in m for m in rest)
    assert daemon.stop() == 0


def test_state_naming_removed_patches_is_dropped_with_a_warning(site: Site) -> None:
    site.state_dir.mkdir(parents=True)
    (site.state_dir / "patches.json").write_text(
        json.dumps(
            {
                "format": 1,
                "gateway": "test-gw",
                "saved": "2026-01-01T00:00:00.000Z",
                "patches": {
                    "county": {"state": "enabled", "approved_by": {"*": "tech1"}},
                    "old-patch": {"state": "enabled", "approved_by": {"*": "tech1"}},
                },
            }
        )
    )
    daemon = site.start()
    site.wait_ready(daemon)
    states = {p["patch"]: p["state"] for p in site.status()["patches"]}
    # The persisted state wins over the config's `enabled: true` on border-tac.
    assert states == {"border-tac": "disabled", "county": "enabled"}
    assert any("old-patch" in line and "WARNING" in line for line in daemon.lines)
    assert daemon.stop() == 0


def test_corrupt_state_file_is_set_aside_and_the_daemon_starts(site: Site) -> None:
    site.state_dir.mkdir(parents=True)
    (site.state_dir / "patches.json").write_text("{ this is not json")
    daemon = site.start()
    site.wait_ready(daemon)
    assert list(site.state_dir.glob("patches.json.corrupt-*"))
    states = {p["patch"]: p["state"] for p in site.status()["patches"]}
    assert states["border-tac"] == "enabled"  # back to the config's first-start flags
    assert daemon.stop() == 0
