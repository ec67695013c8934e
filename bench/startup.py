"""Start-up benchmark: what a dispatcher's command and the daemon cost before they do anything.

    .venv/bin/python -m bench.startup [--rounds 5] [--load N]

- CPU time (user + system, of the child) of `crosspatch --version`, and of `crosspatch status`
  and `crosspatch patch list` against a running daemon (targets: status at most 0.3 s);
- `crosspatch run config/demo.yaml` (state in a temporary directory): wall time until systemd
  would see READY=1 (sd_notify), and until `status` answers (target: at most 3 s, quiet);
- the ten modules that cost `crosspatch status` the most to import (python -X importtime).

`--load N` runs N CPU-burning processes beside it; the header says the machine and the load.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.machine import cpu_burners, describe

ROOT = Path(__file__).resolve().parent.parent
CROSSPATCH = [sys.executable, "-m", "gateway.cli"]


def child_cpu(cmd: list[str]) -> tuple[float, float, subprocess.CompletedProcess[str]]:
    """(CPU seconds, wall seconds, result) of one child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.monotonic()
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    wall = time.monotonic() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall, result


def demo_config(tmp: Path) -> Path:
    text = (ROOT / "config" / "demo.yaml").read_text()
    text = re.sub(r"(?m)^gateway:\n", f"gateway:\n  state_dir: {tmp / 'state'}\n", text, count=1)
    path = tmp / "demo.yaml"
    path.write_text(text)
    return path


class RunningDaemon:
    """`crosspatch run` on the demo site, timed from the start to READY=1 and to a status."""

    def __init__(self, tmp: Path) -> None:
        self.config = demo_config(tmp)
        self.socket = tmp / "state" / "control.sock"
        notify_path = tmp / "notify.sock"
        notify_path.unlink(missing_ok=True)
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(str(notify_path))
        self.notify.settimeout(0.05)
        env = {**os.environ, "NOTIFY_SOCKET": str(notify_path)}
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [*CROSSPATCH, "run", str(self.config)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.ready_s = self._until_ready()
        self.status_s = self._until_status()

    def _until_ready(self) -> float:
        deadline = self.started + 60
        while time.monotonic() < deadline:
            try:
                message = self.notify.recv(4096).decode()
            except TimeoutError:
                if self.proc.poll() is not None:
                    raise SystemExit("the daemon exited before READY=1") from None
                continue
            if "READY=1" in message.splitlines():
                return time.monotonic() - self.started
        raise SystemExit("no READY=1 within 60 s")

    def _until_status(self) -> float:
        while True:
            result = subprocess.run(
                [*CROSSPATCH, "status", "--json", "--socket", str(self.socket)],
                capture_output=True,
                timeout=30,
                check=False,
            )
            if result.returncode == 0:
                return time.monotonic() - self.started
            if time.monotonic() - self.started > 60:
                raise SystemExit("status never answered")

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        self.notify.close()


def import_top_ten(socket_path: Path) -> list[tuple[float, str]]:
    """The modules with the largest self import time in `crosspatch status` (ms, name)."""
    result = subprocess.run(
        [
            sys.executable,
            "-X",
            "importtime",
            "-m",
            "gateway.cli",
            "status",
            "--socket",
            str(socket_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    rows: list[tuple[float, str]] = []
    for line in result.stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+\d+ \|\s*(\S+)", line)
        if match:
            rows.append((int(match[1]) / 1000, match[2]))
    return sorted(rows, reverse=True)[:10]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--load", type=int, default=0, metavar="N")
    args = parser.parse_args()
    with cpu_burners(args.load), tempfile.TemporaryDirectory() as tmp_name:
        print(f"start-up, median of {args.rounds} rounds; {describe(args.load)}")
        tmp = Path(tmp_name)
        readies, statuses = [], []
        daemon = None
        for _ in range(args.rounds):
            daemon = RunningDaemon(tmp)
            readies.append(daemon.ready_s)
            statuses.append(daemon.status_s)
            if len(readies) < args.rounds:
                daemon.close()
        assert daemon is not None
        commands = {
            "crosspatch --version": [*CROSSPATCH, "--version"],
            "crosspatch status": [*CROSSPATCH, "status", "--socket", str(daemon.socket)],
            "crosspatch patch list": [*CROSSPATCH, "patch", "list", "--socket", str(daemon.socket)],
        }
        print(f"{'command':<26} {'cpu s':>7} {'wall s':>7}")
        for name, cmd in commands.items():
            runs = [child_cpu(cmd) for _ in range(args.rounds)]
            failed = [r for _, _, r in runs if r.returncode != 0]
            if failed:
                raise SystemExit(f"{name} failed: {failed[0].stderr.strip()}")
            cpu = statistics.median(c for c, _, _ in runs)
            wall = statistics.median(w for _, w, _ in runs)
            print(f"{name:<26} {cpu:>7.3f} {wall:>7.3f}")
        print(f"{'run demo: READY=1':<26} {'':>7} {statistics.median(readies):>7.3f}")
        print(f"{'run demo: status answers':<26} {'':>7} {statistics.median(statuses):>7.3f}")
        print("\nimport time of `crosspatch status`, top ten (self, ms)")
        for ms, module in import_top_ten(daemon.socket):
            print(f"  {ms:>7.1f}  {module}")
        daemon.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
