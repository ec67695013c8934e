"""`crosspatch simulate`: an offline dry run of a patch table in simulated time.

Every port of the config is replaced by a simulated radio; the scenario feeds them audio and
carrier and issues commands as named principals; the engine runs frame by frame as fast as the
machine allows, each frame through the daemon's own tick (`gateway.run.tick.TickStep`), so a
dry run takes its order of operations. Outputs, byte-identical for the same inputs:
- `OUT/events.jsonl`: every event, one JSON object per line, as the daemon would publish them;
- `OUT/tx/<port>.wav`: what each port transmitted, 8 kHz mono 16-bit, the whole duration, with
  silence where the port was not keyed;
- `OUT/recordings/YYYY-MM-DD/CALL_ID.EXT`, when the config has `recording:`: each call as the
  daemon would record it (its `format`; `dir` and `keep_days` do not apply to a dry run).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gateway.config import Config
from gateway.control.patch_control import Command, PatchControl
from gateway.core.errors import UserError
from gateway.core.events import Event, EventStamper, TickClock, to_json_line
from gateway.core.timing import seconds_to_samples, seconds_to_ticks
from gateway.dsp.signals import WavWriter, read_wav
from gateway.ports.simulated import SimulatedRadios
from gateway.run.announcer import Announcer
from gateway.run.recorder import RECORDING_SUFFIXES, CallRecorder
from gateway.run.site import Site, build_site, traffic_patterns
from gateway.run.tick import TickStep
from gateway.sim.scenario import CarrierEvent, CommandEvent, ReceiveEvent, Scenario

_COMMANDS = {
    "enable": Command.ENABLE,
    "disable": Command.DISABLE,
    "approve": Command.APPROVE,
    "deny": Command.DENY,
}
_FLUSH_TICKS = 250  # WAV output is written in blocks of this many frames
RECORDINGS_DIR = "recordings"


class SimulationError(UserError):
    """A problem found while running (not while loading) a scenario."""


@dataclass(frozen=True)
class SimulationSummary:
    simulated_s: float
    wall_s: float  # the run itself
    encode_s: float  # recordings encoded after it
    recordings: int
    events: int
    calls: int
    refused_commands: int
    out_dir: Path

    @property
    def speed(self) -> float:
        return self.simulated_s / self.wall_s if self.wall_s > 0 else float("inf")

    def describe(self) -> str:
        refused = f", {self.refused_commands} commands refused" if self.refused_commands else ""
        recorded = (
            f"; {self.recordings} recordings written in {self.encode_s:.2f} s more"
            if self.recordings
            else ""
        )
        return (
            f"simulated {self.simulated_s:g} s in {self.wall_s:.2f} s ({self.speed:.0f}x real "
            f"time): {self.calls} calls, {self.events} events{refused} -> "
            f"{self.out_dir / 'events.jsonl'}, {self.out_dir / 'tx'}/*.wav{recorded}"
        )


def add_configured_traffic(cfg: Config, radios: SimulatedRadios) -> None:
    """Generated traffic for every port whose config asks for it (`simulated: {traffic: ...}`)."""
    for port, pattern in traffic_patterns(cfg).items():
        if pattern is not None:
            radios.add_traffic(port, pattern)


def _schedule_signals(scenario: Scenario, radios: SimulatedRadios) -> None:
    for item in scenario.events:
        if isinstance(item, ReceiveEvent):
            if item.wav is not None:
                radios.receive(item.port, read_wav(item.wav, item.level_dbfs), item.at)
            elif item.tone_hz is not None:
                assert item.seconds is not None
                level = -12.0 if item.level_dbfs is None else item.level_dbfs
                radios.receive_tone(item.port, item.tone_hz, item.seconds, level, item.at)
            else:
                assert item.seconds is not None
                radios.receive(
                    item.port, np.zeros(seconds_to_samples(item.seconds), np.float32), item.at
                )
        elif isinstance(item, CarrierEvent):
            radios.carrier(item.port, item.seconds, item.at)


class _Outputs:
    """events.jsonl and one WAV per port, written as the simulation goes."""

    def __init__(self, out_dir: Path, ports: list[str], frame_samples: int) -> None:
        tx_dir = out_dir / "tx"
        tx_dir.mkdir(parents=True, exist_ok=True)
        for stale in tx_dir.glob("*.wav"):  # a port removed since the last run must not linger
            stale.unlink()
        self.events_file = (out_dir / "events.jsonl").open("w", encoding="utf-8")
        self.writers = [WavWriter(tx_dir / f"{port}.wav") for port in ports]
        self.frame = frame_samples
        self.block = np.zeros((len(ports), _FLUSH_TICKS * frame_samples), dtype=np.float32)
        self.filled = 0
        self.count = 0
        self.calls = 0

    def events(self, events: list[Event]) -> None:
        """A sink of the tick step: the events come stamped."""
        for event in events:
            self.events_file.write(to_json_line(event) + "\n")
            self.count += 1
            self.calls += event["type"] == "call_start"

    def tx(self, frame: np.ndarray) -> None:
        self.block[:, self.filled : self.filled + self.frame] = frame
        self.filled += self.frame
        if self.filled == self.block.shape[1]:
            self.flush()

    def flush(self) -> None:
        for row, writer in enumerate(self.writers):
            writer.write(self.block[row, : self.filled])
        self.filled = 0

    def close(self) -> None:
        self.flush()
        for writer in self.writers:
            writer.close()
        self.events_file.close()


class _Commands:
    """What is due before each tick: the scenario's commands at their tick, and the expiry of
    pending requests once a second, as the daemon does."""

    def __init__(
        self, scenario: Scenario, control: PatchControl, step: TickStep, frame_ms: int
    ) -> None:
        self.items = [
            (seconds_to_ticks(item.at, frame_ms), item)
            for item in scenario.events
            if isinstance(item, CommandEvent)
        ]
        self.control = control
        self.step = step
        self.expiry_check_ticks = max(1, 1000 // frame_ms)
        self.tick = 0  # the tick about to run
        self.next = 0
        self.refused = 0

    def due(self) -> None:
        items = self.items
        while self.next < len(items) and items[self.next][0] <= self.tick:
            self.refused += not _apply(self.control, items[self.next][1], self.step.emit)
            self.next += 1
        if self.tick % self.expiry_check_ticks == 0:
            self.step.emit(self.control.expire_pending())
        self.tick += 1


def run_simulation(
    cfg: Config, scenario: Scenario, out_dir: Path, announcer: Announcer | None = None
) -> SimulationSummary:
    started = time.perf_counter()
    site: Site = build_site(cfg)
    clock = TickClock(scenario.start, site.frame_ms)
    engine, control = site.build(clock)
    names = [p.name for p in site.ports]
    radios = SimulatedRadios(names, engine.frame_samples)
    add_configured_traffic(cfg, radios)
    _schedule_signals(scenario, radios)
    total_ticks = seconds_to_ticks(scenario.duration_s, site.frame_ms)

    out = _Outputs(out_dir, names, engine.frame_samples)
    recorder = _recorder(cfg, out_dir)
    step = TickStep(
        engine, EventStamper(site.gateway_id), [out.events], announcer=announcer, recorder=recorder
    )
    commands = _Commands(scenario, control, step, site.frame_ms)
    try:
        step.emit(control.enable_from_config(site.patches_enabled_in_config()))
        for _ in range(total_ticks):
            out.tx(step.run(radios, commands.due).tx)
        step.release_all()
        ran_s = time.perf_counter() - started
        if recorder is not None:
            # Encoded after the run, in parallel: ffmpeg must not set the dry run's pace.
            recorder.close()
            step.emit(recorder.take_alarms(engine))  # at the end time, in call order
    finally:
        if recorder is not None:
            recorder.close()
        out.close()
    return SimulationSummary(
        simulated_s=total_ticks * site.frame_ms / 1000,
        wall_s=ran_s,
        encode_s=time.perf_counter() - started - ran_s,
        recordings=recorder.stats.calls if recorder is not None else 0,
        events=out.count,
        calls=out.calls,
        refused_commands=commands.refused,
        out_dir=out_dir,
    )


def _recorder(cfg: Config, out_dir: Path) -> CallRecorder | None:
    """Recordings of a dry run go into OUT, written inline: no thread, so the same inputs give
    the same events (a failure's alarm at the same tick) on every run. Formats other than WAV
    are encoded after the run, in parallel; their failures are alarms at the end."""
    if cfg.recording is None:
        return None
    directory = out_dir / RECORDINGS_DIR
    for stale in directory.glob("*/*"):  # a previous run's calls must not linger
        if stale.suffix in RECORDING_SUFFIXES and stale.is_file():
            stale.unlink()
    for day in directory.glob("*"):
        if day.is_dir() and not any(day.iterdir()):
            day.rmdir()
    recorder = CallRecorder(
        directory, cfg.recording.format, threaded=False, encode_workers=os.cpu_count() or 1
    )
    recorder.start()
    return recorder


def _apply(control: PatchControl, item: CommandEvent, emit: Callable[[list[Event]], None]) -> bool:
    who = control.principal(item.principal)
    if who is None:  # the scenario loader checks principals; a config change can still race it
        raise SimulationError(f"at {item.at:g} s: unknown principal '{item.principal}'")
    result = control.execute(who, _COMMANDS[item.command], item.patch)
    emit(result.events)
    return result.ok
