"""Cost of the DSP blocks: time per port per 20 ms frame, measured with time.perf_counter.

    .venv/bin/python -m gateway.dsp.bench [--ports 8] [--frames 2000]

Multi-port blocks run on all ports in one call and the cost is divided by the port count; the
resamplers and the drift corrector are per port. A "% core" column is the share of one core
that cost takes in real time (a frame every 20 ms).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

from gateway.core.tones import CTCSS_TONES_HZ
from gateway.dsp._common import FRAME_MS, FRAME_SAMPLES, Float32Array
from gateway.dsp.ctcss import CtcssDetector
from gateway.dsp.drift import DriftCorrector, SampleFifo
from gateway.dsp.filters import HighPass
from gateway.dsp.level import AutoLevel
from gateway.dsp.resample import StreamingResampler
from gateway.dsp.vox import Vox


def _time_per_call(step: Callable[[int], object], calls: int, repeats: int = 3) -> float:
    """Best of `repeats` runs of `calls` calls (seconds per call): the least disturbed by the
    other processes of the machine."""
    for i in range(min(20, calls)):
        step(i)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(calls):
            step(i)
        best = min(best, (time.perf_counter() - start) / calls)
    return best


def _resample_step(resampler: StreamingResampler, block: Float32Array) -> Callable[[int], object]:
    def step(_i: int) -> object:
        return resampler.process(block)

    return step


def run_benchmarks(ports: int = 8, frames: int = 2000) -> list[tuple[str, float]]:
    """(block, microseconds per port per 20 ms frame) for every block."""
    rng = np.random.default_rng(0)
    audio: Float32Array = (rng.standard_normal((ports, FRAME_SAMPLES * 50)) * 0.1).astype(
        np.float32
    )

    def frame(i: int) -> Float32Array:
        j = i % 50
        return audio[:, j * FRAME_SAMPLES : (j + 1) * FRAME_SAMPLES]

    results: list[tuple[str, float]] = []
    multi: list[tuple[str, Callable[[int], object]]] = []
    highpass = HighPass(ports)
    multi.append(("HighPass", lambda i: highpass.process(frame(i))))
    tones = np.resize(np.asarray(CTCSS_TONES_HZ), ports)
    detector = CtcssDetector(ports, tones)
    multi.append(("CtcssDetector.process", lambda i: detector.process(frame(i))))
    vox = Vox(ports, np.full(ports, -40.0))
    multi.append(("Vox", lambda i: vox.process(frame(i))))
    level = AutoLevel(ports)
    multi.append(("AutoLevel", lambda i: level.process(frame(i))))
    for name, step in multi:
        results.append(
            (f"{name} ({ports} ports in one call)", _time_per_call(step, frames) / ports)
        )

    fifo = SampleFifo(4000)
    corrector = DriftCorrector(640, 48)
    mono = audio[0]

    def drift_step(i: int) -> object:
        j = i % 49
        fifo.write(mono[j * FRAME_SAMPLES : (j + 1) * FRAME_SAMPLES + (i % 31 == 0)])
        return corrector.pull(fifo, FRAME_SAMPLES)

    results.append(("SampleFifo.write + DriftCorrector.pull", _time_per_call(drift_step, frames)))

    for rate_in, rate_out in ((48000, 8000), (8000, 48000), (44100, 8000), (8000, 44100)):
        resampler = StreamingResampler(rate_in, rate_out)
        block_len = round(rate_in * FRAME_MS / 1000)
        block = (rng.standard_normal(block_len) * 0.1).astype(np.float32)
        cost = _time_per_call(_resample_step(resampler, block), frames)
        results.append((f"StreamingResampler {rate_in} -> {rate_out}", cost))
    return [(name, seconds * 1e6) for name, seconds in results]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--ports", type=int, default=8)
    parser.add_argument("--frames", type=int, default=2000)
    args = parser.parse_args()
    results = run_benchmarks(args.ports, args.frames)
    width = max(len(name) for name, _ in results)
    print(f"{'block':<{width}}  us/port/frame  % core per port")
    for name, micros in results:
        print(f"{name:<{width}}  {micros:13.1f}  {micros / (FRAME_MS * 1000) * 100:15.2f}")
    cost = dict(results)
    radios = args.ports
    for rate in (48000, 44100):
        both = (
            cost[f"StreamingResampler {rate} -> 8000"] + cost[f"StreamingResampler 8000 -> {rate}"]
        )
        print(
            f"{radios} radios x 2 directions at {rate} Hz: "
            f"{radios * both / (FRAME_MS * 1000) * 100:.1f} % of one core"
        )


if __name__ == "__main__":
    main()
