"""The DSP benchmark runs and reports every block (its numbers are for people, not asserted)."""

from __future__ import annotations

from gateway.dsp.bench import run_benchmarks


def test_benchmark_reports_every_block() -> None:
    results = dict(run_benchmarks(ports=2, frames=5))
    assert len(results) == 9
    assert all(micros > 0 for micros in results.values())
    assert "StreamingResampler 48000 -> 8000" in results
