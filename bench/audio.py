"""Audio benchmark: CPU per sound-card radio with every DSP block on, at the cards' rates.

    .venv/bin/python bench/audio.py [--radios 8] [--seconds 30]

It drives `SoundCardAudio` as the engine thread does (receive then send, once per 20 ms frame)
with its card FIFOs fed and drained as 48 kHz (or 44.1 kHz) cards would, without devices: the
cost measured is the gateway's own (resampling both ways, drift control, CTCSS decoding, high-pass,
VOX, auto level, limiter), not the sound system's. Target: 8 radios under 15 % of one core.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from gateway.config.models import Radio
from gateway.hardware.sound_ports import ENGINE_RATE, SoundCardAudio
from gateway.signals import speech_like

FRAME = 160


def radios(count: int, rate: int) -> dict[str, Radio]:
    return {
        f"r{i}": Radio.model_validate(
            {
                "talkgroup": "ag/tg",
                "audio": {"input": "card", "output": "card", "rate": rate},
                "ptt": {"method": "none"},
                "squelch": {"method": "vox", "ctcss_hz": 100.0},
            }
        )
        for i in range(count)
    }


def measure(count: int, rate: int, seconds: float) -> float:
    """Fraction of one core that `count` radios at `rate` take."""
    audio = SoundCardAudio(radios(count, rate), FRAME)
    # What `open` sets up from the devices, here without devices.
    for r in audio.radios:
        r.in_rate = r.out_rate = rate
    audio.prepare_without_devices()
    frames = round(seconds * ENGINE_RATE / FRAME)
    per_frame = rate * FRAME // ENGINE_RATE
    voice = speech_like(seconds + 1, -12, np.random.default_rng(1))
    card = np.repeat(voice, rate // ENGINE_RATE + 1)[: frames * per_frame + per_frame]
    tx = np.zeros((count, FRAME), dtype=np.float32)
    busy = 0.0
    for f in range(frames):
        block = card[f * per_frame : (f + 1) * per_frame].astype(np.float32)
        for r in audio.radios:
            r.in_fifo.write(block)  # what the input callback would have written
            r.out_fifo.read(per_frame)  # what the output callback would have taken
        start = time.perf_counter()
        rx = audio.receive()
        tx[:] = rx[::-1]
        audio.send(tx)
        busy += time.perf_counter() - start
    return busy / (frames * FRAME / ENGINE_RATE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--radios", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    print(f"CPU for sound-card radios, all DSP on, {args.seconds:g} s of audio each")
    print(f"{'radios':>6} {'rate':>7} {'% of one core':>14} {'per radio %':>12}")
    for rate in (48000, 44100):
        for count in (1, args.radios):
            load = measure(count, rate, args.seconds) * 100
            print(f"{count:>6} {rate:>7} {load:>14.2f} {load / count:>12.2f}")


if __name__ == "__main__":
    main()
