"""Hostile-input benchmark: how many generated inputs each parser took, and what broke.

    .venv/bin/python -m bench.hostile_input [--examples 5000]

Runs the property-based tests of `tests/project/test_fuzz_inputs.py` (configs, scenarios,
control-socket and MQTT commands, RTP/ED-137 and USRP packets, SRTP key files) with `--examples`
inputs each instead of the suite's 150, and the check-against-run test of
`tests/config/test_check_is_run.py` (generated sites checked, then started as real daemons) with a
fiftieth of them, and prints one row per property: inputs tried, failures (a traceback, an error
of more than one line, an input whose audit could not be encoded, a site `check` and `run` judge
differently), and the time taken.

The first line says the machine (CPU model, cores, Python, load average).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from bench.machine import describe

ROOT = Path(__file__).resolve().parent.parent
# Hypothesis's statistics: the test's name, then "- during generate phase (T seconds):" and
# "- N passing, M failing, and K invalid test cases".
_TEST = re.compile(r"^tests/\S+::(\w+):?$")
_COUNTS = re.compile(
    r"(\d+) passing(?: examples?)?, (\d+) failing(?: examples?)?,(?: and)? (\d+) invalid"
)
_PHASE = re.compile(r"during (\w+) phase \(([\d.]+) seconds\)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--examples", type=int, default=5000, help="inputs per property")
    args = parser.parse_args()
    print(describe(0))
    rows: list[tuple[str, int, int, float]] = []
    failed = False
    for name in ("test_fuzz_inputs.py", "test_check_is_run.py"):
        tests = str(next(ROOT.glob(f"tests/**/{name}")).relative_to(ROOT))
        env = {**os.environ, "HYPOTHESIS_MAX_EXAMPLES": str(args.examples)}
        started = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", tests,
             "--hypothesis-show-statistics"],
            cwd=ROOT, env=env, capture_output=True, text=True, check=False,
        )  # fmt: skip
        failed |= result.returncode != 0
        rows += _rows(result.stdout)
        print(f"{tests}: {time.monotonic() - started:.0f} s, pytest exit {result.returncode}")
    print()
    print(f"{'property':<72} {'inputs':>8} {'failing':>8} {'seconds':>8}")
    for name, passed, failing, seconds in rows:
        print(f"{name:<72} {passed + failing:>8} {failing:>8} {seconds:>8.1f}")
    total = sum(passed + failing for _, passed, failing, _ in rows)
    print(f"{'total':<72} {total:>8} {sum(r[2] for r in rows):>8}")
    return 1 if failed else 0


def _rows(output: str) -> list[tuple[str, int, int, float]]:
    rows: list[tuple[str, int, int, float]] = []
    name = ""
    passed = failing = 0
    seconds = 0.0
    for line in output.splitlines():
        line = line.strip()
        test = _TEST.match(line)
        if test:
            if name:
                rows.append((name, passed, failing, seconds))
            name, passed, failing, seconds = test.group(1), 0, 0, 0.0
            continue
        phase = _PHASE.search(line)
        if phase:
            seconds += float(phase.group(2))
        counts = _COUNTS.search(line)
        if counts and name:
            passed += int(counts.group(1))
            failing += int(counts.group(2))
    if name:
        rows.append((name, passed, failing, seconds))
    return rows


if __name__ == "__main__":
    sys.exit(main())
