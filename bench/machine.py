"""What a benchmark ran on and under: the CPU model, cores, Python, the load average, and
CPU-burning processes to run beside it (`--load N`), so that every table says whether it is the
quiet figure or the busy one. Gateways run on busy, cheap boxes: measure both."""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def describe(load: int) -> str:
    """One line: machine, Python, and the load the figures were taken under."""
    one, five, _ = os.getloadavg()
    beside = f"{load} CPU-burning process(es) beside it" if load else "nothing else started"
    return (
        f"{cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"{beside}; load average {one:.1f} (5 min {five:.1f})"
    )


@contextlib.contextmanager
def cpu_burners(count: int) -> Iterator[None]:
    """`count` processes spinning at normal priority for the duration."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        yield
    finally:
        for proc in procs:
            proc.kill()
        for proc in procs:
            proc.wait()
