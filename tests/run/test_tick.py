"""One tick for the daemon and `crosspatch simulate`: the same scenario gives the same events and
the same transmitted audio whether the daemon's engine thread runs it or the dry run does, and
the step runs its parts in one fixed order."""

from __future__ import annotations

import threading
import time
import wave
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt

from gateway.config import load_config
from gateway.control.patch_control import Command
from gateway.core.engine import PatchEngine
from gateway.core.events import Event, EventStamper, TickClock, to_json_line
from gateway.dsp.signals import to_pcm16
from gateway.hardware.sound.frame_pacer import Tick
from gateway.ports.simulated import SimulatedRadios
from gateway.run.announcements import AnnouncementPlan
from gateway.run.announcer import Announcer
from gateway.run.loop import EngineRuntime
from gateway.run.site import build_site
from gateway.run.tick import EventSink, TickStep
from gateway.sim.scenario import CommandEvent, load_scenario
from gateway.sim.simulate import _schedule_signals, add_configured_traffic, run_simulation
from tests.support.sites import SIMULATED_SITE

# simulate's site with the county patch on from the start, request expiry and announcements.
COUNTY = "    members: [usbp/ch4, sheriff/ops]\n"
SITE = SIMULATED_SITE.replace(COUNTY, COUNTY + "    enabled: true\n") + (
    "  pending_expiry_s: 30\n"
    "announcements:\n"
    "  on_enable: {tones: [[1000, 200]]}\n"
    "  on_disable: {tones: [[500, 200]]}\n"
    "  patch_id: {every_s: 60}\n"
)

# Commands at the same tick and on later ones, consent, a call, announcements on enable,
# disable and the periodic ID (at 60 s), and a pending request that expires (at 38 s).
SCENARIO = """\
start: "2026-01-01T00:00:00Z"
duration_s: 62
events:
  - {at: 0.0, command: disable, patch: county, as: tech1}
  - {at: 0.0, command: enable, patch: border-tac, as: alice}
  - {at: 0.5, command: approve, patch: border-tac, as: bob}
  - {at: 1.0, port: rcmp-1, receive: {tone_hz: 1000, level_dbfs: -12, seconds: 2}}
  - {at: 1.5, port: usbp-1, carrier: {seconds: 0.5}}
  - {at: 7.0, command: disable, patch: border-tac, as: alice}
  - {at: 8.0, command: enable, patch: border-tac, as: bob}
  - {at: 9.0, command: enable, patch: county, as: tech1}
"""

_COMMANDS = {"enable": Command.ENABLE, "disable": Command.DISABLE, "approve": Command.APPROVE}


class _HandClock:
    """A frame clock the test turns: the engine thread ticks once per `advance`."""

    def __init__(self) -> None:
        self._go = threading.Semaphore(0)
        self._idle = threading.Event()  # the engine thread waits for the next tick
        self._woken = False

    def wait(self) -> Tick | None:
        self._idle.set()
        self._go.acquire()
        return None if self._woken else Tick(due=time.monotonic(), by_card=True)

    def wake(self) -> None:
        self._woken = True
        self._go.release()

    def wait_idle(self) -> None:
        assert self._idle.wait(10), "the engine thread did not come back for its next tick"

    def advance(self) -> None:
        """Lets one tick run (with the jobs queued before it) and waits until it is over."""
        self._idle.clear()
        self._go.release()
        self.wait_idle()


class _PacedRadios:
    """Simulated radios ticked by a hand clock, keeping what each port transmitted."""

    def __init__(self, radios: SimulatedRadios, pacer: _HandClock) -> None:
        self.radios = radios
        self.pacer = pacer
        self.sent: list[npt.NDArray[np.float32]] = []

    def frame(self) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_]]:
        return self.radios.frame()

    def transmit(self, tx: npt.NDArray[np.float32], ptt: npt.NDArray[np.bool_]) -> None:
        self.radios.transmit(tx, ptt)
        self.sent.append(tx.copy())


def _run_as_daemon(config: Path, scenario_file: Path) -> tuple[list[str], dict[str, bytes]]:
    """The scenario on the daemon's engine thread (`EngineRuntime`), with commands and the
    requests' expiry submitted between two ticks as the daemon's control plane does."""
    cfg = load_config(config)
    scenario = load_scenario(scenario_file, cfg)
    site = build_site(cfg)
    engine, control = site.build(TickClock(scenario.start, site.frame_ms))
    names = [p.name for p in site.ports]
    radios = SimulatedRadios(names, engine.frame_samples)
    add_configured_traffic(cfg, radios)
    _schedule_signals(scenario, radios)
    clock = _HandClock()
    bank = _PacedRadios(radios, clock)
    published: list[Event] = []
    runtime = EngineRuntime(engine, control, bank, EventStamper(site.gateway_id), published.extend)
    runtime.announcer = Announcer(AnnouncementPlan.from_config(cfg, config.parent))
    runtime.emit(control.enable_from_config(site.patches_enabled_in_config()))

    commands = [
        (round(item.at * 1000 / site.frame_ms), item)
        for item in scenario.events
        if isinstance(item, CommandEvent)
    ]

    def command(item: CommandEvent) -> None:
        def execute(rt: EngineRuntime) -> None:
            who = rt.control.principal(item.principal)
            assert who is not None
            rt.emit(rt.control.execute(who, _COMMANDS[item.command], item.patch).events)

        runtime.submit(execute)

    def expire(rt: EngineRuntime) -> None:
        rt.emit(rt.control.expire_pending())

    runtime.start()
    try:
        clock.wait_idle()
        ticks_per_s = 1000 // site.frame_ms
        for tick in range(round(scenario.duration_s * ticks_per_s)):
            for _, item in [c for c in commands if c[0] == tick]:
                command(item)
            if tick % ticks_per_s == 0:
                runtime.submit(expire)
            clock.advance()
    finally:
        assert runtime.stop()
    audio = np.concatenate(bank.sent[: round(scenario.duration_s * ticks_per_s)], axis=1)
    pcm = {name: to_pcm16(audio[row]).tobytes() for row, name in enumerate(names)}
    return [to_json_line(event) for event in published], pcm


def test_the_daemons_engine_thread_and_simulate_give_the_same_events_and_audio(
    tmp_path: Path,
) -> None:
    config = tmp_path / "site.yaml"
    config.write_text(SITE)
    scenario_file = tmp_path / "scenario.yaml"
    scenario_file.write_text(SCENARIO)
    cfg = load_config(config)
    plan = AnnouncementPlan.from_config(cfg, tmp_path)
    out = tmp_path / "out"
    run_simulation(cfg, load_scenario(scenario_file, cfg), out, Announcer(plan))
    simulated = (out / "events.jsonl").read_text().splitlines()

    events, pcm = _run_as_daemon(config, scenario_file)

    kinds = {line.split('"', 4)[3] for line in simulated}
    assert {"call_start", "call_end", "patch", "audit", "ptt", "carrier"} <= kinds
    assert sum('"principal":"expiry"' in line for line in simulated) == 1
    assert sum('"reason":"announcement"' in line for line in simulated) >= 6  # ID at 60 s too
    assert events == simulated
    for port, samples in pcm.items():
        with wave.open(str(out / "tx" / f"{port}.wav"), "rb") as wav:
            assert wav.readframes(wav.getnframes()) == samples, port


class _Announcer:
    def __init__(self, calls: list[str]) -> None:
        self.calls = calls

    def on_events(self, engine: PatchEngine, events: list[Event]) -> None:
        self.calls.append("announcer.on_events")

    def on_tick(self, engine: PatchEngine) -> None:
        self.calls.append("announcer.on_tick")


class _Recorder:
    def __init__(self, calls: list[str]) -> None:
        self.calls = calls

    def on_events(self, events: list[Event]) -> None:
        self.calls.append("recorder.on_events")

    def on_tick(self, engine: PatchEngine, rx: npt.NDArray[np.float32]) -> None:
        self.calls.append("recorder.on_tick")

    def take_alarms(self, engine: PatchEngine) -> list[Event]:
        self.calls.append("recorder.take_alarms")
        return []


class _Ports:
    def __init__(self, calls: list[str], engine: PatchEngine) -> None:
        self.calls = calls
        n = len(engine.ports)
        self.rx = np.zeros((n, engine.frame_samples), np.float32)
        self.carrier = np.zeros(n, bool)

    def frame(self) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_]]:
        self.calls.append("ports.frame")
        return self.rx, self.carrier

    def transmit(self, tx: npt.NDArray[np.float32], ptt: npt.NDArray[np.bool_]) -> None:
        self.calls.append("ports.transmit")


def test_a_tick_runs_commands_announcements_engine_ports_events_then_recorder(
    tmp_path: Path,
) -> None:
    config = tmp_path / "site.yaml"
    config.write_text(SITE.replace("    enabled: true\n", ""))
    site = build_site(load_config(config))
    engine, control = site.build(TickClock(datetime(2026, 1, 1, tzinfo=UTC), site.frame_ms))
    calls: list[str] = []
    sinks: list[EventSink] = [
        lambda events: calls.append(f"sink1 {[e['type'] for e in events]}"),
        lambda events: calls.append(f"sink2 {[e['seq'] for e in events]}"),
    ]
    announcer, recorder = _Announcer(calls), _Recorder(calls)
    step = TickStep(
        engine,
        EventStamper("gw"),
        sinks,
        announcer=announcer,  # type: ignore[arg-type]
        recorder=recorder,  # type: ignore[arg-type]
    )

    def due() -> None:
        calls.append("due")
        tech = control.principal("tech1")
        assert tech is not None
        step.emit(control.execute(tech, Command.ENABLE, "county").events)

    step.run(_Ports(calls, engine), due)
    assert calls == [
        "due",
        "recorder.on_events",
        "announcer.on_events",
        "sink1 ['patch', 'audit']",
        "sink2 [1, 2]",
        "ports.frame",
        "announcer.on_tick",
        "ports.transmit",
        "recorder.on_tick",
        "recorder.take_alarms",
    ]
