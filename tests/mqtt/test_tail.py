"""`crosspatch tail` against a real mosquitto: the lines a dispatcher reads, outages, exits."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.cli import run
from gateway.mqtt.tail import EventLines
from tests.support.mqtt_env import Broker, Watcher
from tests.support.paths import ROOT

EXAMPLE = ROOT / "config" / "example.yaml"
CROSSPATCH = [sys.executable, "-m", "gateway.cli"]
CALLS = "crosspatch/peace-arch/calls"
EVENTS = "crosspatch/peace-arch/events"

RCMP = {"port": "rcmp-1", "talkgroup": "rcmp/tac2", "agency": "rcmp"}
USBP = {"port": "usbp-1", "talkgroup": "usbp/ch4", "agency": "usbp"}
VTAC = {"port": "vtac12", "talkgroup": "interop/vtac12", "agency": "interop"}
CALL = {
    "call_id": "peace-arch-20261128T051001.020Z-rcmp-1",
    "patch": "border-tac",
    "source": RCMP,
    "destinations": [USBP, VTAC],
}


def event(type_: str, seq: int, time_: str, gateway: str = "peace-arch", /, **fields: Any) -> str:
    return json.dumps({"type": type_, "gateway": gateway, "seq": seq, "time": time_, **fields})


CALL_START = event("call_start", 41, "2026-11-28T05:10:01.020Z", **CALL)
CALL_END = event(
    "call_end",
    47,
    "2026-11-28T05:10:05.220Z",
    **CALL,
    start="2026-11-28T05:10:01.020Z",
    end="2026-11-28T05:10:05.220Z",
    duration_s=4.2,
    reason="carrier_drop",
    peak_dbfs=-12.0,
    recording="/var/lib/crosspatch/recordings/peace-arch-20261128T051001.020Z-rcmp-1.opus",
)
PTT = event("ptt", 42, "2026-11-28T05:10:01.020Z", port="usbp-1", on=True, reason="call")
CARRIER = event("carrier", 40, "2026-11-28T05:10:01.000Z", port="rcmp-1", on=True)
ALARM = event(
    "alarm",
    60,
    "2026-11-28T05:11:00.000Z",
    kind="port_offline",
    port="rcmp-1",
    detail="serial line /dev/ttyUSB0 lost",
)
PENDING = event(
    "patch",
    2,
    "2026-11-28T05:09:50.000Z",
    patch="border-tac",
    state="pending",
    by="alice",
    waiting_for=["usbp"],
)
PATCH = event(
    "patch", 3, "2026-11-28T05:09:58.000Z", patch="border-tac", state="enabled", by="alice"
)


def patch_event(seq: int, by: str, gateway: str = "peace-arch") -> str:
    return event(
        "patch", seq, "2026-11-28T06:00:00.000Z", gateway, patch="c", state="disabled", by=by
    )


class Tail:
    """A `crosspatch tail` subprocess; its stdout and stderr lines, in order."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [*CROSSPATCH, "tail", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def shown(self) -> list[str]:
        """The log lines, without the program's own notes."""
        return [line for line in self.lines if not line.startswith("crosspatch tail: ")]

    def notes(self, word: str) -> list[str]:
        return [
            line for line in self.lines if line.startswith("crosspatch tail: ") and word in line
        ]

    def wait_for(self, what: Callable[[], Any], timeout: float = 20.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = what()
            if value:
                return value
            if self.proc.poll() is not None:
                self._reader.join(5)  # the last lines
                raise AssertionError(f"tail exited {self.proc.returncode}:\n" + self.text())
            time.sleep(0.05)
        raise AssertionError("timed out; tail printed:\n" + self.text())

    def text(self) -> str:
        return "\n".join(self.lines)

    def stop(self, sig: int = signal.SIGINT) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(10)
        self._reader.join(5)
        return code


@pytest.fixture
def tails() -> Iterator[list[Tail]]:
    started: list[Tail] = []
    yield started
    for tail in started:
        if tail.proc.poll() is None:
            tail.proc.kill()
            tail.proc.wait(10)


def start(tails: list[Tail], *args: str) -> Tail:
    tail = Tail(*args)
    tails.append(tail)
    return tail


def test_calls_alarms_and_patches_with_agency_names(broker: Broker, tails: list[Tail]) -> None:
    tail = start(tails, "--mqtt", broker.url, "--config", str(EXAMPLE))
    tail.wait_for(lambda: tail.notes("following"))
    publisher = Watcher(broker)
    try:
        for topic, payload in [
            (EVENTS, PENDING),  # names who must still approve
            (EVENTS, PATCH),
            (EVENTS, CARRIER),
            (CALLS, CALL_START),
            (EVENTS, PTT),
            (CALLS, CALL_START),  # a QoS 1 repeat: shown once
            (CALLS, CALL_END),
            (EVENTS, ALARM),
            (EVENTS, "\x1b[2J not json\n at all"),
            (CALLS, json.dumps({"type": "call_start", "gateway": "peace-arch"})),
            ("crosspatch/blaine/events", patch_event(9, "maria", "blaine")),  # every gateway
            (EVENTS, patch_event(99, "bob")),
        ]:
            publisher.publish(topic, payload)
        tail.wait_for(lambda: any("by bob" in line for line in tail.shown()))
    finally:
        publisher.close()
    rcmp = "rcmp-1 Royal Canadian Mounted Police (E Division) [CA] rcmp/tac2"
    usbp = "usbp-1 U.S. Border Patrol (Blaine Sector) [US] usbp/ch4"
    vtac = "vtac12 US national interoperability channels (NIFOG) [US] interop/vtac12"
    assert tail.shown() == [
        "2026-11-28 05:09:50Z peace-arch PATCH border-tac pending by alice: waiting for usbp",
        "2026-11-28 05:09:58Z peace-arch PATCH border-tac enabled by alice",
        f"2026-11-28 05:10:01Z peace-arch border-tac  CALL  {rcmp} -> {usbp}, {vtac}",
        "2026-11-28 05:10:05Z peace-arch border-tac  END   rcmp-1 4.2 s carrier_drop peak -12.0 "
        "dBFS rec /var/lib/crosspatch/recordings/peace-arch-20261128T051001.020Z-rcmp-1.opus",
        "2026-11-28 05:11:00Z peace-arch ALARM port_offline rcmp-1: serial line /dev/ttyUSB0 lost",
        f"? {EVENTS}: ?[2J not json at all (not a crosspatch event)",
        f'? {CALLS}: {{"type": "call_start", "gateway": "peace-arch"}} (not a crosspatch event)',
        "2026-11-28 06:00:00Z blaine PATCH c disabled by maria",
        "2026-11-28 06:00:00Z peace-arch PATCH c disabled by bob",
    ]
    assert tail.stop() == 0
    assert "Traceback" not in tail.text()


def test_all_shows_ptt_and_carrier_for_one_gateway(broker: Broker, tails: list[Tail]) -> None:
    tail = start(tails, "--mqtt", broker.url, "--gateway", "peace-arch", "--all")
    tail.wait_for(lambda: tail.notes("following crosspatch/peace-arch/calls"))
    publisher = Watcher(broker)
    try:
        publisher.publish("crosspatch/blaine/events", patch_event(9, "maria", "blaine"))
        for topic, payload in [(EVENTS, CARRIER), (CALLS, CALL_START), (EVENTS, PTT)]:
            publisher.publish(topic, payload)
        publisher.publish(EVENTS, patch_event(99, "bob"))
        tail.wait_for(lambda: any("by bob" in line for line in tail.shown()))
    finally:
        publisher.close()
    # Without a config, agencies show as their ids.
    assert tail.shown()[:3] == [
        "2026-11-28 05:10:01Z peace-arch CARRIER rcmp-1 on",
        "2026-11-28 05:10:01Z peace-arch border-tac  CALL  rcmp-1 RCMP rcmp/tac2 -> usbp-1 USBP "
        "usbp/ch4, vtac12 INTEROP interop/vtac12",
        "2026-11-28 05:10:01Z peace-arch PTT   usbp-1 on (call)",
    ]
    assert len(tail.shown()) == 4
    assert tail.stop(signal.SIGTERM) == 0


def test_a_broker_restart_is_survived(broker: Broker, tails: list[Tail]) -> None:
    tail = start(tails, "--mqtt", broker.url)
    tail.wait_for(lambda: tail.notes("following"))
    broker.stop()
    tail.wait_for(lambda: tail.notes("waiting for it to come back"))
    broker.start()  # the same port
    tail.wait_for(lambda: len(tail.notes("following")) == 2)
    publisher = Watcher(broker)
    try:
        publisher.publish(CALLS, CALL_START)
        tail.wait_for(lambda: any("CALL" in line for line in tail.shown()))
    finally:
        publisher.close()
    assert tail.proc.poll() is None
    assert tail.stop(signal.SIGINT) == 0
    assert "Traceback" not in tail.text()
    assert "KeyboardInterrupt" not in tail.text()


def test_it_waits_for_a_broker_that_is_not_up_yet(broker: Broker, tails: list[Tail]) -> None:
    broker.stop()
    tail = start(tails, "--mqtt", broker.url)
    tail.wait_for(lambda: tail.notes("waiting for the broker"))
    # Not happening: retries after 0.5 s and 1.5 s more (the backoff doubles), still one line.
    time.sleep(2.5)
    assert len(tail.notes("waiting")) == 1
    broker.start()
    tail.wait_for(lambda: tail.notes("following"))
    publisher = Watcher(broker)
    try:
        publisher.publish(EVENTS, ALARM)
        tail.wait_for(lambda: any("ALARM port_offline" in line for line in tail.shown()))
    finally:
        publisher.close()
    assert tail.stop() == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--mqtt", "http://broker.example"],
            "url must be mqtt://host[:port] or mqtts://host[:port] (got 'http://broker.example')",
        ),
        (["--mqtt", "mqtt://localhost:99999"], "the port in url must be between 1 and 65535"),
        (["--mqtt", "mqtt://localhost", "--password-file", "/x"], "needs --username"),
        (["--mqtt", "mqtt://localhost", "--gateway", "a/#"], "--gateway must be"),
        ([], "name the broker"),
    ],
)
def test_a_bad_command_line_is_one_line(args: list[str], message: str) -> None:
    result = subprocess.run(
        [*CROSSPATCH, "tail", *args], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
    assert result.stderr.startswith("crosspatch tail: ")


def test_a_refused_login_is_one_line(tmp_path: Path, tails: list[Tail]) -> None:
    password = tmp_path / "password"
    password.write_text("wrong\n")
    with Broker(users={"alice": "a-secret"}) as secured:
        tail = start(
            tails, "--mqtt", secured.url, "--username", "alice", "--password-file", str(password)
        )
        assert tail.proc.wait(60) == 1
    tail._reader.join(5)
    assert len(tail.lines) == 1 and "refused the login" in tail.lines[0], tail.text()


# --- the lines themselves -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"[1, 2]",
        b'"online"',
        b"\xff\xfe",
        b'{"type": "alarm", "gateway": "peace-arch", "time": "2026-11-28T05:11:00.000Z"}',
        b'{"type": "call_end", "gateway": "gw", "time": "not a time"}',
        b'{"type": "ptt", "gateway": "gw", "time": "2026-11-28T05:11:00Z", "port": "p", '
        b'"on": "yes", "reason": "call"}',
        b'{"type": "call_start", "gateway": "gw", "time": "2026-11-28T05:11:00Z", "patch": "p", '
        b'"source": "rcmp-1", "destinations": []}',
    ],
)
def test_what_is_not_an_event_is_one_question_line(payload: bytes) -> None:
    line = EventLines({}, show_all=True).line("crosspatch/gw/events", payload)
    assert line is not None and "\n" not in line
    assert line.startswith("? crosspatch/gw/events: ") and line.endswith(
        " (not a crosspatch event)"
    )


def test_an_event_type_unknown_to_tail_is_still_shown() -> None:
    payload = event("recording", 5, "2026-11-28T05:11:00.000Z", call_id="c1", path="/r.opus")
    assert EventLines({}).line(EVENTS, payload.encode()) == (
        '2026-11-28 05:11:00Z peace-arch recording {"call_id":"c1","path":"/r.opus"}'
    )


def test_every_event_a_simulation_emits_reads_as_a_line(tmp_path: Path) -> None:
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(
        "duration_s: 8\n"
        "events:\n"
        "  - {at: 0, command: enable, patch: border-tac, as: alice}\n"
        "  - {at: 0, command: approve, patch: border-tac, as: bob}\n"
        "  - {at: 0, command: enable, patch: county-command, as: alice}\n"
        "  - {at: 1, port: rcmp-1, receive: {tone_hz: 1000, seconds: 2}}\n"
        "  - {at: 6, port: usbp-1, receive: {tone_hz: 1000, seconds: 5}}\n"
    )
    assert run(["simulate", str(EXAMPLE), str(scenario), "--out", str(tmp_path / "out")]) == 0
    lines = EventLines({}, show_all=True)
    shown = [
        lines.line("crosspatch/peace-arch/x", raw.encode())
        for raw in (tmp_path / "out" / "events.jsonl").read_text().splitlines()
    ]
    assert all(line is not None and not line.startswith("?") for line in shown), shown
    text = "\n".join(line for line in shown if line)
    assert text.count("  CALL  ") == 2 and text.count("  END   ") == 2
    assert "END   usbp-1 2.0 s shutdown peak -12.0 dBFS" in text
    # The audit events go to their own topic, which tail does not read; shown if sent anyway.
    assert "peace-arch audit " in text
