"""The gateway's clock facts in one place: the engine's sample rate, the arithmetic between
milliseconds, samples and ticks, and the default timing rules of a port.

This module imports nothing of the gateway, so every room (config, dsp, hardware, tools) takes
these facts from here without drawing in the engine. `gateway.codecs` keeps its own copy of the
rate, as it imports nothing of the gateway; a test holds the two equal.
"""

from __future__ import annotations

from typing import Final

# The engine runs at one fixed rate; devices and codecs at other rates are resampled at the edge.
SAMPLE_RATE = 8000

# The tick length when the config names none.
DEFAULT_FRAME_MS: Final = 20

# A port's timing rules when its config says nothing: the engine's `PortTiming` and the config's
# `Timing` both take their defaults from here.
DEFAULT_TX_DELAY_MS = 150
DEFAULT_HANG_MS = 800
DEFAULT_TIMEOUT_S = 180.0
DEFAULT_RX_INHIBIT_MS = 100

# VOX opens after this much audio and closes this long after it falls below its threshold, when
# the config says nothing: the config's squelch settings and `gateway.dsp.vox.Vox` share them.
DEFAULT_VOX_ATTACK_MS = 40
DEFAULT_VOX_HANG_MS = 500


def frame_samples(frame_ms: int) -> int:
    """Samples in one tick of `frame_ms` milliseconds (160 for 20 ms)."""
    return SAMPLE_RATE * frame_ms // 1000


def ms_to_samples(ms: float) -> int:
    """`ms` milliseconds as a whole number of samples, rounded to the nearest."""
    return round(ms * SAMPLE_RATE / 1000)


def seconds_to_samples(seconds: float) -> int:
    """`seconds` as a whole number of samples, rounded to the nearest."""
    return round(seconds * SAMPLE_RATE)


def seconds_to_ticks(seconds: float, frame_ms: int) -> int:
    """`seconds` as a whole number of ticks of `frame_ms`, rounded to the nearest (may be 0)."""
    return round(seconds * 1000 / frame_ms)
