"""Engine benchmark: tick time against port count, and `simulate` speed against real time.

    .venv/bin/python -m bench.engine [--seconds 60] [--load N]

Per port count: half the ports in patches of four (floors first, priority and mix in turn), a
quarter of all ports talking at any moment (talk spurts rotate, so floors, calls and PTT change
all the time), every timing rule active (tx delay, hang, time-out timer, rx inhibit, half duplex).
Then `simulate` on config/example.yaml with a scenario that keeps its patches busy.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from bench.machine import cpu_burners, describe
from gateway.config import load_config
from gateway.core.engine import (
    Floor,
    MemberMode,
    MemberSpec,
    PatchEngine,
    PatchSpec,
    PortSpec,
    PortTiming,
)
from gateway.core.events import TickClock
from gateway.sim.scenario import load_scenario
from gateway.sim.simulate import run_simulation

ROOT = Path(__file__).resolve().parent.parent
FRAME = 160
TIMING = PortTiming(tx_delay_ms=150, hang_ms=800, timeout_s=60, rx_inhibit_ms=100)


def build_engine(n_ports: int) -> PatchEngine:
    ports = [
        PortSpec(f"p{i}", f"a{i % 7}/tg{i}", f"a{i % 7}", TIMING, full_duplex=i % 5 == 0)
        for i in range(n_ports)
    ]
    floors = [Floor.FIRST, Floor.PRIORITY, Floor.MIX]
    patches = []
    for k in range(n_ports // 2 // 4):
        members = tuple(
            MemberSpec(f"p{4 * k + j}", MemberMode.LISTEN if j == 3 else MemberMode.TALK_LISTEN, j)
            for j in range(4)
        )
        patches.append(PatchSpec(f"patch{k}", members, floors[k % 3]))
    engine = PatchEngine(
        ports, patches, clock=TickClock(datetime(2026, 1, 1, tzinfo=UTC), 20), gateway_id="bench"
    )
    for patch in patches:
        engine.enable_patch(patch.name)
    return engine


def carrier_plan(n_ports: int, ticks: int, rng: np.random.Generator) -> np.ndarray:  # type: ignore[type-arg]
    """Each port talks 2 s in every 8 s (a quarter of the ports at once), at its own phase."""
    period, talk = 400, 100
    phase = rng.integers(0, period, n_ports)
    t = np.arange(ticks)[:, None]
    return ((t + phase[None, :]) % period) < talk


def time_ticks(n_ports: int, ticks: int) -> tuple[float, float, int]:
    rng = np.random.default_rng(n_ports)
    engine = build_engine(n_ports)
    plan = carrier_plan(n_ports, ticks, rng)
    audio = (rng.standard_normal((n_ports, FRAME * 50)) * 0.1).astype(np.float32)
    durations = []
    events = 0
    for t in range(ticks):
        rx = audio[:, (t % 50) * FRAME : (t % 50 + 1) * FRAME]
        started = time.perf_counter()
        result = engine.tick(rx, plan[t])
        durations.append(time.perf_counter() - started)
        events += len(result.events)
    durations.sort()
    return (
        statistics.median(durations) * 1e3,
        durations[int(0.99 * (len(durations) - 1))] * 1e3,
        events,
    )


SCENARIO = """\
start: "2026-06-01T08:00:00Z"
duration_s: {duration}
events:
{lines}
"""


def simulate_speed(duration_s: int) -> tuple[float, float, float, int]:
    cfg = load_config(ROOT / "config" / "example.yaml")
    lines = []
    technician = cfg.access.technicians[0] if cfg.access.technicians else None
    who = f", as: {technician}" if technician else ""
    enabled_ports: set[str] = set()
    for name, patch in cfg.patches.items():
        ports = {
            p for m in patch.members for p in cfg.ports() if cfg.port_talkgroup(p) == m.talkgroup
        }
        if ports & enabled_ports:
            continue
        enabled_ports |= ports
        lines.append(f"  - {{at: 0.0, command: enable, patch: {name}{who}}}")
    ports = cfg.ports()
    for k, at in enumerate(range(1, duration_s - 5, 3)):
        port = ports[k % len(ports)]
        lines.append(
            f"  - {{at: {at}.0, port: {port}, receive: {{tone_hz: {400 + 37 * (k % 20)}, "
            f"level_dbfs: -12, seconds: 2}}}}"
        )
    with tempfile.TemporaryDirectory() as tmp:
        scenario_path = Path(tmp) / "busy.yaml"
        scenario_path.write_text(SCENARIO.format(duration=duration_s, lines="\n".join(lines)))
        scenario = load_scenario(scenario_path, cfg)
        summary = run_simulation(cfg, scenario, Path(tmp) / "out")
    return summary.simulated_s, summary.wall_s, summary.encode_s, summary.calls


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=60, help="simulated seconds per size")
    parser.add_argument(
        "--load", type=int, default=0, metavar="N", help="N CPU-burning processes beside it"
    )
    args = parser.parse_args()
    with cpu_burners(args.load):
        print(describe(args.load))
        run(args.seconds)
    return 0


def run(seconds: int) -> None:
    ticks = seconds * 50
    print(f"engine tick time, {ticks} ticks of 20 ms per size (python {sys.version.split()[0]})")
    header = ("ports", "median ms", "p99 ms", "% of 20 ms", "us/port", "events")
    print(" ".join(f"{h:>{w}}" for h, w in zip(header, (6, 10, 8, 10, 8, 7), strict=True)))
    rows = []
    for n in (16, 64, 256, 512):
        median, p99, events = time_ticks(n, ticks)
        rows.append((n, median))
        print(
            f"{n:>6} {median:>10.3f} {p99:>8.3f} {median / 20 * 100:>9.1f}% "
            f"{median / n * 1e3:>8.2f} {events:>7}"
        )
    (n_small, t_small), (n_big, t_big) = rows[1], rows[-1]
    print(
        f"growth {n_small}->{n_big} ports: time x{t_big / t_small:.2f} for ports "
        f"x{n_big / n_small:.0f} (linear would be x{n_big / n_small:.0f})"
    )
    simulated, wall, encode, calls = simulate_speed(max(60, seconds * 5))
    print(
        f"simulate config/example.yaml: {simulated:.0f} s simulated in {wall:.2f} s = "
        f"{simulated / wall:.0f}x real time ({calls} calls); their Opus recordings encoded "
        f"after the run in {encode:.2f} s more"
    )


if __name__ == "__main__":
    sys.exit(main())
