"""Opus through opuslib: round-trip quality, FEC and PLC, bad input, and the gateway running
without libopus or the binding (simulated in a subprocess, so this process keeps its Opus)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import numpy.typing as npt
import pytest

from gateway.codecs import opus, registry
from gateway.codecs.base import CodecError
from gateway.dsp.signals import speech_like, tone


def _pcm(samples: npt.NDArray[np.float32]) -> npt.NDArray[np.int16]:
    return np.rint(samples * 32767).astype(np.int16)


def _aligned(
    reference: npt.NDArray[np.int16], decoded: npt.NDArray[np.int16]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Both signals with the codec's delay (its look-ahead, a few ms) taken out."""
    x, y = reference.astype(np.float64), decoded.astype(np.float64)
    lag = max(range(160), key=lambda k: float(np.dot(x[: x.size - k], y[k:])))
    return x[: x.size - lag], y[lag:]


def _encode_all(pcm: npt.NDArray[np.int16]) -> list[bytes]:
    encoder = opus.OpusEncoder()
    return [encoder.encode(frame) for frame in pcm.reshape(-1, 160)]


def test_opus_is_available_in_development() -> None:
    # The dev extra installs opuslib and scripts/setup libopus0: these tests must run, not skip.
    ok, reason = registry.available("opus")
    assert ok, reason
    assert reason.startswith("opus: libopus ")


@pytest.mark.parametrize(
    ("signal", "min_correlation", "min_snr_db"),
    [("speech", 0.88, 6.0), ("tone", 0.97, 12.0)],
)
def test_round_trip_quality(signal: str, min_correlation: float, min_snr_db: float) -> None:
    # A perceptual codec keeps the sound, not the waveform: at 20 kbit/s narrowband with FEC
    # the decoded speech correlates at about 0.915 (SNR about 8 dB), a tone at 0.987 (16 dB).
    samples = (
        speech_like(3.0, -12.0, np.random.default_rng(0)) if signal == "speech" else tone(800, 3.0)
    )
    pcm = _pcm(samples)
    payloads = _encode_all(pcm)
    decoder = opus.OpusDecoder()
    decoded = np.concatenate([decoder.decode(p) for p in payloads])
    assert decoded.dtype == np.int16 and decoded.size == pcm.size
    x, y = _aligned(pcm, decoded)
    assert np.corrcoef(x, y)[0, 1] > min_correlation
    assert 10 * np.log10(np.sum(x**2) / np.sum((x - y) ** 2)) > min_snr_db
    kbits_per_s = sum(map(len, payloads)) * 8 / 3.0 / 1000
    assert 8 < kbits_per_s < 22


def test_conceal_gives_a_frame_of_plc() -> None:
    pcm = _pcm(tone(600, 1.0))
    decoder = opus.OpusDecoder()
    for payload in _encode_all(pcm)[:20]:
        decoder.decode(payload)
    concealed = decoder.conceal()
    assert concealed.dtype == np.int16 and concealed.size == 160
    # PLC continues the tone rather than going silent at once.
    assert np.sqrt(np.mean(concealed.astype(np.float64) ** 2)) > 1000


def test_conceal_with_the_next_packet_uses_fec() -> None:
    pcm = _pcm(speech_like(4.0, -12.0, np.random.default_rng(0)))
    payloads = _encode_all(pcm)
    losses = fec_better = 0
    for lost in range(20, 190, 7):
        clean, with_fec, with_plc = opus.OpusDecoder(), opus.OpusDecoder(), opus.OpusDecoder()
        for payload in payloads[:lost]:
            clean.decode(payload), with_fec.decode(payload), with_plc.decode(payload)
        truth = clean.decode(payloads[lost]).astype(np.float64)
        fec = with_fec.conceal(payloads[lost + 1]).astype(np.float64)
        plc = with_plc.conceal().astype(np.float64)
        assert fec.size == plc.size == 160
        if np.sqrt(np.mean(truth**2)) < 300:
            continue  # a pause between syllables: nothing to rebuild
        losses += 1
        fec_better += np.sum((truth - fec) ** 2) < np.sum((truth - plc) ** 2)
    # FEC is really in the packets (libopus leaves it out, silently, below a rate threshold)
    # and rebuilds a lost frame better than PLC's guess nearly every time.
    assert losses >= 15
    assert fec_better >= 0.8 * losses


def test_conceal_falls_back_to_plc_on_a_damaged_next_packet() -> None:
    decoder = opus.OpusDecoder()
    decoder.decode(_encode_all(_pcm(tone(600, 0.02)))[0])
    assert decoder.conceal(b"\xff\xff\xff").size == 160


def test_encoder_refuses_bad_frames() -> None:
    encoder = opus.OpusEncoder()
    with pytest.raises(CodecError, match="opus: a frame must be 20, 40, 80, 160, 320, 480"):
        encoder.encode(np.zeros(100, dtype=np.int16))
    with pytest.raises(CodecError, match="int16"):
        encoder.encode(np.zeros(160, dtype=np.float32))  # type: ignore[arg-type]


def test_other_frame_durations() -> None:
    encoder, decoder = opus.OpusEncoder(), opus.OpusDecoder()
    for samples in (80, 320, 480):
        assert decoder.decode(encoder.encode(np.zeros(samples, dtype=np.int16))).size == samples
    assert decoder.conceal().size == 480  # as long as the last packet


def test_bad_payloads_raise_codec_error_never_crash() -> None:
    decoder = opus.OpusDecoder()
    with pytest.raises(CodecError, match="opus: empty payload"):
        decoder.decode(b"")
    with pytest.raises(CodecError, match="opus: cannot decode payload"):
        decoder.decode(b"\xff")  # code 3 (a frame count follows) with nothing after it
    rng = np.random.default_rng(5)
    for _ in range(300):
        payload = rng.integers(0, 256, int(rng.integers(1, 120)), dtype=np.uint8).tobytes()
        try:
            pcm = decoder.decode(payload)
        except CodecError:
            continue
        assert pcm.dtype == np.int16 and pcm.size <= opus.MAX_PACKET_SAMPLES


def _run_without(setup: str) -> list[str]:
    code = textwrap.dedent(
        f"""\
        import sys
        {setup}
        import numpy as np
        from gateway.codecs import registry
        print(registry.available("opus"))
        try:
            registry.get("opus").decoder()
        except registry.CodecError as exc:
            print("refused:", exc)
        payload = registry.get("pcmu").encoder().encode(np.zeros(160, dtype=np.int16))
        print("pcmu", len(payload), registry.available("pcmu")[0])
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


@pytest.mark.parametrize(
    "setup",
    [
        # The binding is not installed.
        "sys.modules['opuslib'] = None",
        # The binding is, libopus is not: opuslib raises a bare Exception at import.
        "import ctypes.util; ctypes.util.find_library = lambda name: None",
    ],
    ids=["no-opuslib", "no-libopus"],
)
def test_runs_without_opus(setup: str) -> None:
    message = "opus: libopus is not installed (apt install libopus0; pip install opuslib)"
    assert _run_without(setup) == [
        f"(False, {message!r})",
        f"refused: {message}",
        "pcmu 160 True",
    ]


def test_registry_does_not_load_opus_until_asked() -> None:
    code = (
        "import sys, numpy as np\n"
        "from gateway.codecs import registry\n"
        "registry.get('opus')\n"
        "registry.get('pcma').decoder().decode(b'\\xd5' * 160)\n"
        "print('opuslib' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.stdout.strip() == "False", result.stderr
