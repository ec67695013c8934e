"""Codec benchmark: G.711 against Python's audioop side by side, and DVI4 and Opus per frame.

    .venv/bin/python -m bench.codec_speed [--repeat 7]

G.711: gateway.codecs.g711 and audioop (C) timed in the same run, alternately, best of
`--repeat` runs each. Sizes: one 20 ms frame per call as a link makes them, both as the bare
functions (each side in its own types: ndarray for ours, bytes for audioop) and as a link's
whole path (int16 frame to payload bytes and back to an int16 array, so audioop pays for
tobytes/frombuffer); then 64 frames in one call (every link of a tick at once), 1 s and 60 s.
`speed-up` is audioop's time over ours: above 1 we are faster.

DVI4 and Opus (and G.711 for scale): cost of each call on a 10 s speech-like stream through one
stateful encoder and decoder, as a link runs them: median and 99th percentile per 20 ms frame.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import timeit
import warnings
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import numpy.typing as npt

from gateway.codecs import g711, registry
from gateway.dsp.signals import speech_like

with warnings.catch_warnings():
    # Deprecated since 3.11 and gone in 3.13: here only as the yardstick.
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

FRAME = 160
SAMPLE_RATE = 8000


def _best_pair(
    ours: Callable[[], object], theirs: Callable[[], object], samples: int, repeat: int
) -> tuple[float, float]:
    """Best seconds per call of each, measured alternately so both see the same machine."""
    number = max(1, 400_000 // samples)
    best_ours = best_theirs = float("inf")
    for _ in range(repeat):
        best_ours = min(best_ours, timeit.timeit(ours, number=number) / number)
        best_theirs = min(best_theirs, timeit.timeit(theirs, number=number) / number)
    return best_ours, best_theirs


Encode = Callable[[npt.NDArray[Any]], npt.NDArray[Any]]
Lin2Law = Callable[[bytes, int], bytes]
Case = tuple[str, str, int, Callable[[], object], Callable[[], object]]


def _law_cases(
    law: str, encode: Encode, decode: Encode, a_encode: Lin2Law, a_decode: Lin2Law
) -> list[Case]:
    """(op, size label, samples, ours, audioop's) for one law, on 60 s of speech-like audio."""
    speech = np.rint(speech_like(60.0, -12.0, np.random.default_rng(1)) * 32767).astype(np.int16)
    codec = registry.get(law)
    encoder, decoder = codec.encoder(), codec.decoder()
    frame = speech[8000 : 8000 + FRAME].copy()
    frame_bytes = frame.tobytes()
    codes = encode(frame)
    payload = codes.tobytes()
    cases: list[Case] = [
        ("encode", "1 frame, function", FRAME, lambda: encode(frame),
         lambda: a_encode(frame_bytes, 2)),
        ("decode", "1 frame, function", FRAME, lambda: decode(codes),
         lambda: a_decode(payload, 2)),
        ("encode", "1 frame, link path", FRAME, lambda: encoder.encode(frame),
         lambda: a_encode(frame.tobytes(), 2)),
        ("decode", "1 frame, link path", FRAME, lambda: decoder.decode(payload),
         lambda: np.frombuffer(a_decode(payload, 2), np.int16)),
    ]  # fmt: skip
    for label, samples in (
        ("64 frames, one call", 64 * FRAME),
        ("1 s buffer", SAMPLE_RATE),
        ("60 s buffer", 60 * SAMPLE_RATE),
    ):
        block = speech[:samples]
        block = block.reshape(64, FRAME) if samples == 64 * FRAME else block
        block_bytes = block.tobytes()
        block_codes = encode(block)
        block_payload = block_codes.tobytes()
        ours_encode, ours_decode = partial(encode, block), partial(decode, block_codes)
        their_encode, their_decode = (
            partial(a_encode, block_bytes, 2),
            partial(a_decode, block_payload, 2),
        )
        cases.append(("encode", label, samples, ours_encode, their_encode))
        cases.append(("decode", label, samples, ours_decode, their_decode))
    return cases


def g711_rows(repeat: int) -> list[tuple[str, str, str, int, float, float]]:
    rows = []
    for law, functions in (
        ("pcmu", (g711.ulaw_encode, g711.ulaw_decode, audioop.lin2ulaw, audioop.ulaw2lin)),
        ("pcma", (g711.alaw_encode, g711.alaw_decode, audioop.lin2alaw, audioop.alaw2lin)),
    ):
        for op, label, samples, ours, theirs in _law_cases(law, *functions):
            t_ours, t_theirs = _best_pair(ours, theirs, samples, repeat)
            rows.append((law, op, label, samples, t_ours, t_theirs))
    return rows


def call_floor(repeat: int) -> tuple[float, float]:
    """Seconds per call on a single sample, ours and audioop's: the fixed cost of a call."""
    one = np.zeros(1, dtype=np.int16)
    one_bytes = one.tobytes()
    return _best_pair(
        lambda: g711.ulaw_encode(one), lambda: audioop.lin2ulaw(one_bytes, 2), 1, repeat
    )


def per_frame_costs(
    name: str, speech: npt.NDArray[np.int16]
) -> tuple[list[float], list[float], list[float]]:
    codec = registry.get(name)
    encoder, decoder = codec.encoder(), codec.decoder()
    enc_t, dec_t, plc_t = [], [], []
    for frame in speech.reshape(-1, FRAME):
        started = time.perf_counter()
        payload = encoder.encode(frame)
        encoded = time.perf_counter()
        decoder.decode(payload)
        decoded = time.perf_counter()
        decoder.conceal()
        concealed = time.perf_counter()
        enc_t.append(encoded - started)
        dec_t.append(decoded - encoded)
        plc_t.append(concealed - decoded)
    return enc_t, dec_t, plc_t


def _median_p99(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return statistics.median(ordered) * 1e6, ordered[int(0.99 * (len(ordered) - 1))] * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="timed runs per case (best kept)")
    args = parser.parse_args()

    print(
        f"G.711 against audioop, best of {args.repeat} alternate runs "
        f"(python {sys.version.split()[0]}, numpy {np.__version__})"
    )
    header = ("codec", "op", "size", "samples", "ours us", "audioop us", "ours Msa/s", "speed-up")
    widths = (5, 6, 19, 7, 9, 10, 10, 8)
    print(" ".join(f"{h:>{w}}" for h, w in zip(header, widths, strict=True)))
    for law, op, label, samples, t_ours, t_theirs in g711_rows(args.repeat):
        print(
            f"{law:>5} {op:>6} {label:>19} {samples:>7} {t_ours * 1e6:>9.2f} "
            f"{t_theirs * 1e6:>10.2f} {samples / t_ours / 1e6:>10.0f} {t_theirs / t_ours:>7.2f}x"
        )
    ours_floor, theirs_floor = call_floor(args.repeat)
    print(
        f"fixed cost of a call (1 sample): ours {ours_floor * 1e6:.2f} us (numpy), audioop "
        f"{theirs_floor * 1e6:.2f} us: a 160-sample frame costs little more than that"
    )
    print()
    print("per 20 ms frame on a 10 s speech-like stream (one stateful encoder and decoder)")
    header2 = ("codec", "encode us", "p99", "decode us", "p99", "conceal us", "% of 20 ms")
    widths2 = (5, 10, 7, 10, 7, 10, 10)
    print(" ".join(f"{h:>{w}}" for h, w in zip(header2, widths2, strict=True)))
    speech = np.rint(speech_like(10.0, -12.0, np.random.default_rng(2)) * 32767).astype(np.int16)
    for name in registry.names():
        ok, reason = registry.available(name)
        if not ok:
            print(f"{name:>5} not measured: {reason}")
            continue
        enc_t, dec_t, plc_t = per_frame_costs(name, speech)
        (enc_med, enc_p99), (dec_med, dec_p99) = _median_p99(enc_t), _median_p99(dec_t)
        plc_med = _median_p99(plc_t)[0]
        print(
            f"{name:>5} {enc_med:>10.1f} {enc_p99:>7.1f} {dec_med:>10.1f} {dec_p99:>7.1f} "
            f"{plc_med:>10.1f} {(enc_med + dec_med) / 20000 * 100:>9.2f}%"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
