"""Signal processing blocks for the audio path: sound-card rate conversion, CTCSS removal and
decoding, VOX, automatic level control and clock-drift control.

Each block keeps its own state and, where it serves several ports, works on the engine's
(ports x n) float32 frames in one vectorised call. None of them owns a thread, a device or a clock.
"""

from __future__ import annotations

from gateway.dsp.ctcss import CtcssDetector
from gateway.dsp.drift import DriftCorrector, SampleFifo
from gateway.dsp.filters import HighPass
from gateway.dsp.level import AutoLevel, peak_dbfs, rms_dbfs
from gateway.dsp.resample import StreamingResampler
from gateway.dsp.vox import Vox

__all__ = [
    "AutoLevel",
    "CtcssDetector",
    "DriftCorrector",
    "HighPass",
    "SampleFifo",
    "StreamingResampler",
    "Vox",
    "peak_dbfs",
    "rms_dbfs",
]
