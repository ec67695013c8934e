"""CAT round trips per driver: tuning a channel and polling squelch, against each protocol's
emulator over a real pty (the emulators of tests/emulators) and against a real `rigctld -m 1`.

    .venv/bin/python bench/cat.py [--rounds 200]

A pty has no baud-rate delay, so these are the gateway's own costs (framing, matching, asyncio,
the emulator's thread) as a lower bound: on a real 9600 baud line add about 1 ms per 10 bytes.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from emulators.icom import IcomRadio
from emulators.kenwood import KenwoodRadio
from emulators.kenwood_tm import KenwoodTmRadio
from emulators.pty_radio import PtyRadio
from emulators.yaesu_legacy import YaesuLegacyRadio
from emulators.yaesu_newcat import YaesuNewcatRadio

from gateway.hardware.cat.base import CatDriver, Tuning
from gateway.hardware.cat.registry import DriverSettings, make_driver

# A VHF simplex channel with a tone, and one step away, so every round really retunes.
CHANNELS = (
    Tuning(146_520_000, 146_520_000, "fm", 100.0, None),
    Tuning(146_550_000, 146_550_000, "fm", 100.0, None),
)

EMULATED: list[tuple[str, Callable[[], PtyRadio], dict[str, object]]] = [
    ("kenwood", KenwoodRadio, {}),
    ("kenwood-tm", KenwoodTmRadio, {}),
    ("yaesu-legacy", YaesuLegacyRadio, {}),
    ("yaesu", YaesuNewcatRadio, {}),
    # An ID-5100-like VHF radio (the emulator's default IC-7300 stops at 74.8 MHz).
    ("icom", lambda: IcomRadio(0x8C, bands=((144_000_000, 148_000_000),)), {"address": 0x8C}),
]


async def measure(driver: CatDriver, rounds: int) -> tuple[list[float], list[float]]:
    tune_ms, poll_ms = [], []
    async with driver:
        for k in range(rounds):
            started = time.perf_counter()
            await driver.set_tuning(CHANNELS[k % 2])
            tune_ms.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            await driver.read_busy()
            poll_ms.append((time.perf_counter() - started) * 1000)
    return tune_ms, poll_ms


def row(name: str, tune_ms: list[float], poll_ms: list[float]) -> str:
    def p99(values: list[float]) -> float:
        return sorted(values)[int(0.99 * (len(values) - 1))]

    return (
        f"{name:<14} {statistics.median(tune_ms):>10.2f} {p99(tune_ms):>8.2f} "
        f"{statistics.median(poll_ms):>10.2f} {p99(poll_ms):>8.2f}"
    )


def rigctld_port() -> tuple[subprocess.Popen[bytes], int] | None:
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
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    print(f"CAT round trips, {args.rounds} rounds each (set_tuning: frequency, mode and tone)")
    print(f"{'driver':<14} {'tune med ms':>10} {'p99':>8} {'poll med ms':>10} {'p99':>8}")
    for name, emulator, options in EMULATED:
        with emulator() as radio:
            settings = DriverSettings(
                name,
                radio.path,
                address=options.get("address"),  # type: ignore[arg-type]
            )
            tune_ms, poll_ms = asyncio.run(measure(make_driver(settings), args.rounds))
        print(row(name, tune_ms, poll_ms), flush=True)
    started = rigctld_port()
    if started is None:
        print(f"{'rigctld':<14} not measured: rigctld (Debian libhamlib-utils) is not installed")
        return 1
    proc, port = started
    try:
        settings = DriverSettings("rigctld", host="127.0.0.1", tcp_port=port)
        tune_ms, poll_ms = asyncio.run(measure(make_driver(settings), args.rounds))
        print(row("rigctld -m 1", tune_ms, poll_ms))
    finally:
        proc.kill()
        proc.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
