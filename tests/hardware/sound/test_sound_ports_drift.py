"""An hour of sound cards whose clocks are 200 ppm apart, through `SoundCardAudio` itself (its
FIFOs, resamplers, drift control and DSP): the receive card runs 100 ppm fast and the transmit
card 100 ppm slow against the engine's clock, and every FIFO stays within bounds, with no
underrun once primed and the corrections adding up to the drift."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from gateway.config.models import Radio
from gateway.hardware.sound.ports import SoundCardAudio
from tests.support.speech import talk_with_pauses

CARD_RATE = 48000
FRAME = 160
DEVICE_FRAME = 960
HOUR_FRAMES = 180_000
BLOCK = 480  # the cards' 10 ms blocks
JITTER_BLOCKS = 0.4  # callbacks come up to 4 ms early or late


def card_positions(ppm: float, rng: np.random.Generator) -> npt.NDArray[np.int64]:
    """Samples a card has moved by the end of each engine frame: its clock `ppm` off ours, in
    whole blocks, each callback jittered."""
    ratio = 1.0 + ppm * 1e-6
    when = np.arange(HOUR_FRAMES + 1) + rng.uniform(
        -JITTER_BLOCKS / 2, JITTER_BLOCKS / 2, HOUR_FRAMES + 1
    )
    when[0] = 0.0
    blocks = np.floor(DEVICE_FRAME * ratio * when / BLOCK).astype(np.int64)
    return np.maximum.accumulate(blocks) * BLOCK


@pytest.fixture(scope="module")
def card_audio() -> npt.NDArray[np.float32]:
    talk = talk_with_pauses(120.0, np.random.default_rng(5))
    return np.repeat(talk, CARD_RATE // 8000)  # what the receiver plays, at the card's rate


def test_an_hour_of_cards_200_ppm_apart_stays_bounded(card_audio: npt.NDArray[np.float32]) -> None:
    radio = Radio.model_validate(
        {
            "talkgroup": "ag/tg",
            "audio": {"input": "card", "output": "card", "rate": CARD_RATE},
            "ptt": {"method": "none"},
            "squelch": {"method": "vox"},
        }
    )
    audio = SoundCardAudio({"r": radio}, FRAME)
    r = audio.radios[0]
    r.in_rate = r.out_rate = CARD_RATE
    audio.prepare_without_devices()
    rng = np.random.default_rng(9)
    heard = card_positions(+100.0, rng)  # the input card's clock: 100 ppm fast
    played = card_positions(-100.0, rng)  # the output card's: 100 ppm slow
    rx_levels = np.empty(HOUR_FRAMES, dtype=np.int64)  # 8 kHz samples in hand before a frame
    tx_levels = np.empty(HOUR_FRAMES, dtype=np.int64)  # card samples queued after a frame
    tx_missing = 0
    started_tx = False
    for i in range(HOUR_FRAMES):
        a, b = heard[i] % card_audio.size, heard[i + 1] % card_audio.size
        fresh = card_audio[a:b] if a <= b else np.concatenate((card_audio[a:], card_audio[:b]))
        r.in_fifo.write(fresh)  # the input callbacks of this frame
        rx = audio.receive()
        rx_levels[i] = r.rx8.level + FRAME
        audio.send(rx)  # the frame goes straight back out (a patch to a radio on this card)
        tx_levels[i] = r.out_fifo.level
        _, missing = r.out_fifo.read(int(played[i + 1] - played[i]))  # output callbacks
        started_tx = started_tx or r.tx_drift.started
        if started_tx and i > 50:
            tx_missing += missing

    settled = slice(500, None)  # after priming and the first trims
    rx_target, tx_target = r.rx_drift.target, r.tx_drift.target * CARD_RATE // 8000
    # The receive FIFO: within its target +- two tolerances and a block of callback jitter.
    rx_bound = 2 * r.rx_drift.tolerance + BLOCK * 8000 // CARD_RATE * (1 + JITTER_BLOCKS)
    rx_running = rx_levels[settled]
    assert np.all(np.abs(rx_running - rx_target) <= rx_bound), (rx_running.min(), rx_running.max())
    # The transmit FIFO: the same, at the card's rate, after a frame was added.
    tx_bound = (2 * r.tx_drift.tolerance) * CARD_RATE // 8000 + 2 * BLOCK
    tx_running = tx_levels[settled] - DEVICE_FRAME
    assert np.all(np.abs(tx_running - tx_target) <= tx_bound), (tx_running.min(), tx_running.max())
    # Nothing ran dry and nothing overflowed once going.
    assert tx_missing == 0
    stats = audio.stats()["r"]
    assert stats["overruns"] == 0
    assert audio.underruns[0] == 0
    # The corrections add up to the drift, each way: 100 ppm of an hour at 8 kHz is 2880.
    expected = 100e-6 * 8000 * 3600
    assert abs(r.rx_drift.drops - r.rx_drift.inserts - expected) < 0.05 * expected
    assert abs(r.tx_drift.drops - r.tx_drift.inserts - expected) < 0.05 * expected
    # In the pauses: speech waits for the next quiet frame.
    assert r.rx_drift.loud_corrections < 0.05 * r.rx_drift.drops
    assert r.tx_drift.loud_corrections < 0.05 * r.tx_drift.drops
