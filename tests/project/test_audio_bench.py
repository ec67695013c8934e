"""bench/audio.py: its CPU table runs, and its latency analysis finds every burst at the delay it
was given (the full latency run needs PulseAudio and a daemon, ~20 s: run the bench for that)."""

from __future__ import annotations

import importlib
from types import ModuleType

import numpy as np
import pytest
from scipy import signal


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return importlib.import_module("bench.audio")


def test_cpu_measure_runs(bench: ModuleType) -> None:
    assert 0 < bench.measure(2, 48000, 0.2) < 1


def test_bursts_are_found_at_their_delay_through_a_voice_channel(bench: ModuleType) -> None:
    program = bench.make_program([bench.BARE, bench.GATEWAY], 3, np.random.default_rng(0))
    delay = 2345  # samples
    # A gateway-like channel: 300 Hz high-pass and a 3.4 kHz low-pass, then the delay and noise.
    highpass = signal.butter(4, 300, "highpass", fs=bench.RATE, output="sos")
    lowpass = signal.butter(8, 3400, "lowpass", fs=bench.RATE, output="sos")
    channel = signal.sosfilt(lowpass, signal.sosfilt(highpass, program.samples))
    noise = np.random.default_rng(1).normal(0, 1e-3, program.samples.size)
    recorded = np.concatenate((np.zeros(delay), channel))[: program.samples.size] + noise
    found = bench.find_bursts(program, recorded.astype(np.float32))
    assert set(found) == {bench.BARE, bench.GATEWAY}
    for latencies in found.values():
        assert len(latencies) == 3
        # Within a millisecond: the filters' group delay is all that is added.
        assert all(v is not None and 0 <= v - delay / 48 < 1.0 for v in latencies)
    silent = bench.find_bursts(program, np.zeros(program.samples.size, np.float32))
    assert all(v is None for values in silent.values() for v in values)
