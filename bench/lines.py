"""COS to PTT through the running engine: squelch opens on one radio's serial line, how long until
the other radio's PTT line is asserted.

    .venv/bin/python bench/lines.py [--rounds 200]

Two pyserial loop:// ports stand in for the USB-serial cables (loop:// wires RTS to CTS, so the
bench raises radio A's COS by setting RTS on A's port); the path measured is the real one: the
5 ms COS poll thread with its debounce (5 ms by default; 10 and 0 for comparison), the engine
thread's 20 ms tick, the PTT writer thread. Target: p95 at most 30 ms (one 10 ms poll plus one
20 ms tick).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import threading
import time
from datetime import UTC, datetime
from typing import Any

import serial

from gateway.commands import PatchControl
from gateway.engine import MemberSpec, PatchEngine, PatchSpec, PortSpec, PortTiming
from gateway.events import EventStamper, TickClock
from gateway.hardware.line_ports import LinePortBank
from gateway.hardware.serial_lines import CosLine, PttLine, SerialLines
from gateway.runtime import EngineRuntime

TIMING = PortTiming(tx_delay_ms=0, hang_ms=0, timeout_s=600, rx_inhibit_ms=0)


def measure(rounds: int, debounce_s: float) -> list[float]:
    ports: dict[str, Any] = {}

    def factory(url: str, baudrate: int, *, rts: bool = False, dtr: bool = False) -> Any:
        port = serial.serial_for_url("loop://", do_not_open=True, baudrate=baudrate, timeout=0)
        port.rts, port.dtr = rts, dtr
        ports[url] = port
        return port

    keyed = threading.Event()
    released = threading.Event()
    applied_at: list[float] = []

    def on_ptt(radio: str, on: bool, at: float) -> None:
        if on:
            applied_at.append(at)
            keyed.set()
        else:
            released.set()

    cos = SerialLines("loop://a", cos=[CosLine("a", "cts")], factory=factory)
    ptt = SerialLines("loop://b", ptt=[PttLine("b", "rts")], factory=factory)
    bank = LinePortBank(["a", "b"], 160, [cos, ptt], on_ptt_applied=on_ptt, debounce_s=debounce_s)
    specs = [PortSpec("a", "x/a", "x", TIMING), PortSpec("b", "y/b", "y", TIMING)]
    engine = PatchEngine(
        specs,
        [PatchSpec("p", (MemberSpec("a"), MemberSpec("b")))],
        clock=TickClock(datetime.now(UTC), 20),
        gateway_id="bench",
    )
    engine.enable_patch("p")
    runtime = EngineRuntime(
        engine, PatchControl(engine, {}, {}), bank, EventStamper("bench"), lambda e: None
    )
    bank.start()
    runtime.start()
    latencies = []
    try:
        rng = random.Random(1)
        for _ in range(rounds):
            time.sleep(rng.uniform(0.02, 0.06))  # a random phase against poll and tick
            keyed.clear()
            released.clear()
            raised = time.monotonic()
            ports["loop://a"].rts = True
            if not keyed.wait(2):
                raise SystemExit("PTT never came")
            latencies.append((applied_at[-1] - raised) * 1000)
            ports["loop://a"].rts = False
            if not released.wait(2):
                raise SystemExit("PTT never dropped")
    finally:
        runtime.stop()
        bank.close()
    return sorted(latencies)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    print(f"COS on one serial line to PTT on another, through the engine ({args.rounds} rounds)")
    print(f"{'debounce ms':>11} {'median ms':>10} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for debounce_ms in (5, 10, 0):
        latencies = measure(args.rounds, debounce_ms / 1000)

        def pct(q: float, values: list[float] = latencies) -> float:
            return values[int(q / 100 * (len(values) - 1))]

        print(
            f"{debounce_ms:>11} {statistics.median(latencies):>10.1f} {pct(95):>8.1f} "
            f"{pct(99):>8.1f} {pct(100):>8.1f}",
            flush=True,
        )
    print("(COS poll 5 ms, engine tick 20 ms, tx_delay 0)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
