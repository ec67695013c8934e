"""Serial benchmark: CAT round trips per driver, and COS to PTT across serial lines.

    .venv/bin/python -m bench.serial_ports [--only cat|lines] [--rounds 200] [--load N]

cat: each CAT driver tuning a channel (frequency, mode and tone, with whatever read-back the
protocol needs) and polling squelch, against its protocol's emulator over a real pty (the
emulators of tests/support/emulators) and against a real `rigctld -m 1` (Debian
libhamlib-utils). A pty has no baud-rate delay, so these are the gateway's own costs (framing,
matching, asyncio, the emulator's thread) as a lower bound: on a real 9600 baud line add about
1 ms per 10 bytes.

lines: squelch opens on one radio's serial line, how long until the other radio's PTT line is
asserted, through the running engine. Two pyserial loop:// ports stand in for the USB-serial
cables (loop:// wires RTS to CTS, so the bench raises radio A's COS by setting RTS on A's port);
the path measured is the real one: the 2.5 ms COS poll thread with its debounce (5 ms by default;
10 and 0 for comparison), the engine thread's 20 ms tick, the PTT writer thread. Target: p95 at
most 30 ms (one 10 ms poll plus one 20 ms tick).

Exit status 1 when rigctld is not installed (its row is then not measured).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import serial

from bench.machine import cpu_burners, describe
from gateway.control.patch_control import PatchControl
from gateway.core.engine import MemberSpec, PatchEngine, PatchSpec, PortSpec, PortTiming
from gateway.core.events import EventStamper, TickClock
from gateway.hardware.cat.base import CatDriver, Tuning
from gateway.hardware.cat.registry import DriverSettings, make_driver
from gateway.hardware.serial.line_ports import LinePortBank
from gateway.hardware.serial.lines import DEFAULT_POLL_S, CosLine, PttLine, SerialLines
from gateway.run.loop import EngineRuntime
from tests.support.emulators.icom import IcomRadio
from tests.support.emulators.kenwood import KenwoodRadio
from tests.support.emulators.kenwood_tm import KenwoodTmRadio
from tests.support.emulators.pty_radio import PtyRadio
from tests.support.emulators.yaesu_legacy import YaesuLegacyRadio
from tests.support.emulators.yaesu_newcat import YaesuNewcatRadio


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0 to 100) by lower nearest rank."""
    return sorted(values)[int(q / 100 * (len(values) - 1))]


# ------------------------------------------------------------------------------------------- CAT

# A VHF simplex channel with a tone, and one step away, so every round really retunes.
CHANNELS = (
    Tuning(146_520_000, 146_520_000, "fm", 100.0, None),
    Tuning(146_550_000, 146_550_000, "fm", 100.0, None),
)

# Driver name, its emulator, and the Icom CI-V address (None for the others).
EMULATED: list[tuple[str, Callable[[], PtyRadio], int | None]] = [
    ("kenwood", KenwoodRadio, None),
    ("kenwood-tm", KenwoodTmRadio, None),
    ("yaesu-legacy", YaesuLegacyRadio, None),
    ("yaesu", YaesuNewcatRadio, None),
    # An ID-5100-like VHF radio (the emulator's default IC-7300 stops at 74.8 MHz).
    ("icom", lambda: IcomRadio(0x8C, bands=((144_000_000, 148_000_000),)), 0x8C),
]


async def measure_cat(driver: CatDriver, rounds: int) -> tuple[list[float], list[float]]:
    tune_ms: list[float] = []
    poll_ms: list[float] = []
    async with driver:
        for k in range(rounds):
            started = time.perf_counter()
            await driver.set_tuning(CHANNELS[k % 2])
            tune_ms.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            await driver.read_busy()
            poll_ms.append((time.perf_counter() - started) * 1000)
    return tune_ms, poll_ms


def cat_row(name: str, tune_ms: list[float], poll_ms: list[float]) -> str:
    return (
        f"{name:<14} {statistics.median(tune_ms):>10.2f} {percentile(tune_ms, 99):>8.2f} "
        f"{statistics.median(poll_ms):>10.2f} {percentile(poll_ms, 99):>8.2f}"
    )


def start_rigctld() -> tuple[subprocess.Popen[bytes], int] | None:
    """A `rigctld -m 1` (the dummy rig) on a free local port, or None if it is not installed."""
    exe = shutil.which("rigctld")
    if exe is None:
        return None
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    proc = subprocess.Popen(
        [exe, "-m", "1", "-T", "127.0.0.1", "-t", str(port), "-P", "RIG"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    proc.wait()
    return None


def run_cat(rounds: int) -> bool:
    """Prints the CAT table; False when rigctld could not be measured."""
    print(f"CAT round trips, {rounds} rounds each (set_tuning: frequency, mode and tone)")
    print(f"{'driver':<14} {'tune med ms':>10} {'p99':>8} {'poll med ms':>10} {'p99':>8}")
    for name, emulator, address in EMULATED:
        with emulator() as radio:
            settings = DriverSettings(name, radio.path, address=address)
            tune_ms, poll_ms = asyncio.run(measure_cat(make_driver(settings), rounds))
        print(cat_row(name, tune_ms, poll_ms), flush=True)
    started = start_rigctld()
    if started is None:
        print(f"{'rigctld':<14} not measured: rigctld (Debian libhamlib-utils) is not installed")
        return False
    proc, port = started
    try:
        settings = DriverSettings("rigctld", host="127.0.0.1", tcp_port=port)
        tune_ms, poll_ms = asyncio.run(measure_cat(make_driver(settings), rounds))
        print(cat_row("rigctld -m 1", tune_ms, poll_ms), flush=True)
    finally:
        proc.kill()
        proc.wait()
    return True


# ------------------------------------------------------------------------------------ serial lines

TIMING = PortTiming(tx_delay_ms=0, hang_ms=0, timeout_s=600, rx_inhibit_ms=0)
DEBOUNCES_MS = (5, 10, 0)


def measure_lines(rounds: int, debounce_s: float) -> list[float]:
    """COS-to-PTT latencies in ms, sorted."""
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
    latencies: list[float] = []
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


def run_lines(rounds: int) -> None:
    print(f"COS on one serial line to PTT on another, through the engine ({rounds} rounds)")
    print(f"{'debounce ms':>11} {'median ms':>10} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for debounce_ms in DEBOUNCES_MS:
        latencies = measure_lines(rounds, debounce_ms / 1000)
        print(
            f"{debounce_ms:>11} {statistics.median(latencies):>10.1f} "
            f"{percentile(latencies, 95):>8.1f} {percentile(latencies, 99):>8.1f} "
            f"{max(latencies):>8.1f}",
            flush=True,
        )
    print(f"(COS poll {DEFAULT_POLL_S * 1000:g} ms, engine tick 20 ms, tx_delay 0)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only", choices=("cat", "lines"), help="run one table (default: both, CAT first)"
    )
    parser.add_argument("--rounds", type=int, default=200, help="rounds per row (default: 200)")
    parser.add_argument(
        "--load", type=int, default=0, metavar="N", help="N CPU-burning processes beside it"
    )
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    ok = True
    with cpu_burners(args.load):
        print(describe(args.load))
        if args.only in (None, "cat"):
            ok = run_cat(args.rounds)
        if args.only is None:
            print()
        if args.only in (None, "lines"):
            run_lines(args.rounds)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
