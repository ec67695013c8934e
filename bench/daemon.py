"""Daemon benchmark: how well the running daemon keeps time while its control socket is busy.

    .venv/bin/python -m bench.daemon [--seconds 600] [--quiet-seconds 120] [--load N]

Runs `crosspatch run` as a real process on a generated site of 64 simulated radios (16 patches of
four, all enabled, generated traffic on every radio), first with an idle control socket, then while
client threads hammer it with `status` requests; prints tick lateness (median, p99, max) and
overruns per hour for both, side by side.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.machine import cpu_burners, describe
from gateway.control.control_socket import ControlUnavailable, request

PORTS = 64
CLIENTS = 4


def site_config(state_dir: Path) -> str:
    lines = [
        f"gateway: {{id: bench, frame_ms: 20, state_dir: {state_dir}}}",
        "agencies:",
    ]
    for a in range(PORTS // 4):
        lines += [
            f"  ag{a}:",
            f"    name: Agency {a}",
            f"    country: {'CA' if a % 2 else 'US'}",
            "    talkgroups:",
        ]
        lines += [f"      tg{k}: {{rx_mhz: {150 + a * 0.1 + k * 0.0125:.4f}}}" for k in range(4)]
    lines.append("radios:")
    for a in range(PORTS // 4):
        for k in range(4):
            lines.append(
                f"  r{a}-{k}: {{talkgroup: ag{a}/tg{k}, simulated: {{traffic: "
                f"{{every_s: {6 + (a + k) % 5}, talk_s: 2, seed: {a * 4 + k}}}}}}}"
            )
    lines.append("patches:")
    for a in range(PORTS // 4):
        members = ", ".join(f"ag{a}/tg{k}" for k in range(4))
        floor = ("first", "priority", "mix")[a % 3]
        lines.append(f"  p{a}: {{members: [{members}], floor: {floor}, enabled: true}}")
    return "\n".join(lines) + "\n"


def measure(seconds: float, hammer: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        state_dir = Path(tmp) / "state"
        config = Path(tmp) / "bench.yaml"
        config.write_text(site_config(state_dir))
        sock = state_dir / "control.sock"
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "run", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    request(sock, "status", timeout=2)
                    break
                except ControlUnavailable:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise SystemExit("the daemon did not start") from None
                    time.sleep(0.1)
            stop = threading.Event()
            counts = [0] * CLIENTS

            def client(k: int) -> None:
                while not stop.is_set():
                    request(sock, "status", timeout=5)
                    counts[k] += 1

            threads = [threading.Thread(target=client, args=(k,)) for k in range(CLIENTS)]
            if hammer:
                for t in threads:
                    t.start()
            time.sleep(seconds)
            stop.set()
            for t in threads:
                if t.is_alive():
                    t.join()
            ticks: dict[str, Any] = request(sock, "status")["result"]["ticks"]
            ticks["requests_per_s"] = sum(counts) / seconds
            return ticks
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=600, help="length of the hammered run")
    parser.add_argument("--quiet-seconds", type=float, default=120, help="length of the idle run")
    parser.add_argument(
        "--load", type=int, default=0, metavar="N", help="N CPU-burning processes beside it"
    )
    args = parser.parse_args()
    with cpu_burners(args.load):
        run(args.seconds, args.quiet_seconds, args.load)
    return 0


def run(hammered_s: float, quiet_s: float, load: int) -> None:
    print(describe(load))
    print(f"daemon tick timing, {PORTS} simulated ports, 20 ms frames")
    header = ("control socket", "seconds", "status/s", "median ms", "p99 ms", "max ms")
    header += ("overruns", "per hour")
    print(" ".join(f"{h:>14}" for h in header))
    for label, seconds, hammer in (
        ("idle", quiet_s, False),
        (f"{CLIENTS} clients", hammered_s, True),
    ):
        t = measure(seconds, hammer)
        late = t["lateness_ms"]
        row = (label, f"{seconds:.0f}", f"{t['requests_per_s']:.0f}", late["median"], late["p99"])
        row += (late["max"], t["overruns"], f"{t['overruns'] * 3600 / seconds:.1f}")
        print(" ".join(f"{v:>14}" for v in row), flush=True)


if __name__ == "__main__":
    sys.exit(main())
