"""The Kenwood TM-D710/TM-V71 driver against the TM-D710-like emulator over a real pty."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

import pytest

from gateway.hardware.cat.base import RigIdentity, Tuning
from gateway.hardware.cat.errors import (
    CatError,
    CatLinkLost,
    CatProtocolError,
    CatRejected,
    CatTimeout,
    CatVerifyError,
)
from gateway.hardware.cat.kenwood_tm import FoLine, KenwoodTmDriver
from tests.support.emulators.drive import drive, until
from tests.support.emulators.kenwood_tm import KenwoodTmRadio

T = TypeVar("T")


class FastTm(KenwoodTmDriver):
    timeout_s = 0.15
    retries = 1


class PatientTm(FastTm):
    """For unplugging or cancelling mid-request: that, never the reply timeout, must end the
    wait."""

    timeout_s = 10.0


@pytest.fixture
def radio() -> Iterator[KenwoodTmRadio]:
    with KenwoodTmRadio() as r:
        yield r
        assert not r.ptt, "a test left the emulated radio keyed"


def run(radio: KenwoodTmRadio, body: Callable[[FastTm], Awaitable[T]], **options: int) -> T:
    return drive(lambda: FastTm(radio.path, **options), body)


def unkeyed(radio: KenwoodTmRadio) -> bool:
    """Waits (briefly) for the emulator thread to have read the driver's last command, then
    tells whether that was the unkey and the radio is unkeyed."""
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        if radio.commands and radio.commands[-1] == "RX" and not radio.ptt:
            return True
        time.sleep(0.01)
    return False


# ---------------------------------------------------------------------- framer goldens
FO = b"FO 0,0145500000,0,0,0,0,1,0,08,08,000,00000000,1\r"
FRAMER_CASES = [
    (FO, [FO]),
    (b"ID TM-D710\rBY 0,1\r", [b"ID TM-D710\r", b"BY 0,1\r"]),
    (b"?\rN\r", [b"?\r", b"N\r"]),
    (b"\n\x00\xffabc" + FO, [FO]),  # noise, LF and lowercase before
    (b"FO 0,01\xff" + FO, [FO]),  # broken frame dropped, next kept
    (FO[:20], []),  # truncated: waits
    (b"F" + b"0" * 120 + b"\rN\r", [b"N\r"]),  # never-ending frame dropped
]


def _frames(data: bytes) -> tuple[list[bytes], bytes]:
    frames: list[bytes] = []
    while data:
        consumed, frame = KenwoodTmDriver.framer(data)
        if consumed == 0:
            break
        data = data[consumed:]
        if frame is not None:
            frames.append(frame)
    return frames, data


@pytest.mark.parametrize(("data", "expected"), FRAMER_CASES)
def test_framer_golden(data: bytes, expected: list[bytes]) -> None:
    assert _frames(data)[0] == expected


@pytest.mark.parametrize(("data", "expected"), FRAMER_CASES)
def test_framer_byte_at_a_time(data: bytes, expected: list[bytes]) -> None:
    frames: list[bytes] = []
    buffer = b""
    for i in range(len(data)):
        buffer += data[i : i + 1]
        got, buffer = _frames(buffer)
        frames += got
    assert frames == expected


def test_fo_line_round_trip() -> None:
    line = FoLine.from_frame(FO)
    assert line.hz == 145_500_000 and line.ctcss == 1 and line.mode == 1
    assert line.to_text().encode() + b"\r" == FO


# ---------------------------------------------------------------------- happy paths
MODELS = ["TM-D710", "TM-D710G", "TM-V71"]


@pytest.mark.parametrize("model", MODELS)
def test_probe(model: str) -> None:
    with KenwoodTmRadio(model=model) as radio:

        async def body(d: FastTm) -> RigIdentity:
            return await d.probe()

        assert run(radio, body) == RigIdentity(model, detail="Kenwood TM dialect")


def test_unknown_model_is_refused_in_one_line() -> None:
    with KenwoodTmRadio(model="TM-V71X") as radio:

        async def body(d: FastTm) -> None:
            await d.set_tuning(Tuning(145_500_000, 145_500_000, "fm", ctcss_hz=100.0))

        with pytest.raises(CatProtocolError) as caught:
            run(radio, body)
        assert radio.commands == ["ID"]  # never tuned
    assert str(caught.value) == (
        "kenwood-tm: the radio answers ID TM-V71X, a model this driver does not know "
        "(known: TM-D710, TM-D710G, TM-V71)"
    )


# (tone in Hz, the FO line's number for it), worked out by hand from the 42-tone chart.
TONE_NUMBERS = [(67.0, 0), (69.3, 1), (100.0, 12), (206.5, 33), (250.3, 40), (254.1, 41)]


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize(("hz", "number"), TONE_NUMBERS)
def test_each_model_gets_its_tone_number(model: str, hz: float, number: int) -> None:
    want = Tuning(145_500_000, 145_500_000, "nfm", ctcss_hz=hz)
    with KenwoodTmRadio(model=model) as radio:

        async def body(d: FastTm) -> Tuning:
            return await d.tune_and_verify(want)

        assert run(radio, body) == want  # read back in Hz
        a = radio.bands[0]
        assert (a.ctcss, a.tone, a.ctcss_index, a.tone_index) == (1, 0, number, number)
        assert radio.tone_hz(a.ctcss_index) == hz  # what goes on the air
        sent = [c for c in radio.commands if c.startswith("FO 0,")]
        assert sent and f",{number:02d},{number:02d}," in sent[-1]


@pytest.mark.parametrize("model", MODELS)
def test_an_echo_with_another_tone_is_a_mismatch(model: str) -> None:
    with KenwoodTmRadio(model=model) as radio:
        # The radio takes the line but holds CTCSS number 13 (103.5 Hz), not 12 (100 Hz).
        radio.fault(r"FO 0,.*", b"FO 0,0145500000,0,0,0,0,1,0,13,13,000,00000000,1\r")

        async def body(d: FastTm) -> Tuning:
            return await d.tune_and_verify(Tuning(145_500_000, 145_500_000, "nfm", 100.0))

        with pytest.raises(CatVerifyError) as caught:
            run(radio, body)
    assert str(caught.value) == (
        "kenwood-tm: after FO (band 0 to 145.500000 MHz) the radio reports CTCSS 103.5 Hz "
        "(wanted 100 Hz)"
    )


@pytest.mark.parametrize("model", MODELS)
def test_read_tuning_reports_the_tone_in_hz(model: str) -> None:
    with KenwoodTmRadio(model=model) as radio:
        a = radio.bands[0]
        a.tone, a.tone_index = 1, radio.tone_number(151.4)  # encode only

        async def body(d: FastTm) -> Tuning:
            return await d.read_tuning()

        assert run(radio, body).ctcss_hz == 151.4


def test_simplex_nfm_with_ctcss(radio: KenwoodTmRadio) -> None:
    want = Tuning(145_500_000, 145_500_000, "nfm", ctcss_hz=88.5)

    async def body(d: FastTm) -> Tuning:
        return await d.tune_and_verify(want)

    assert run(radio, body) == want
    a = radio.bands[0]
    assert (a.hz, a.shift, a.mode, a.ctcss, a.tone, a.dcs) == (145_500_000, 0, 1, 1, 0, 0)
    assert a.ctcss_index == 8  # 88.5 Hz, 0-based
    assert (radio.ctrl_band, radio.ptt_band) == (0, 0)


@pytest.mark.parametrize(
    ("rx", "tx", "shift"), [(145_600_000, 145_000_000, 2), (438_650_000, 431_050_000, 2)]
)
def test_repeater_offset(radio: KenwoodTmRadio, rx: int, tx: int, shift: int) -> None:
    want = Tuning(rx, tx, "fm", dcs="023N")

    async def body(d: FastTm) -> Tuning:
        return await d.tune_and_verify(want)

    assert run(radio, body) == want
    a = radio.bands[0]
    assert (a.shift, a.offset_hz, a.dcs, a.dcs_index, a.ctcss) == (shift, rx - tx, 1, 0, 0)


def test_plus_shift_on_band_b_and_6k25_step(radio: KenwoodTmRadio) -> None:
    want = Tuning(446_006_250, 451_006_250, "nfm", dcs="754")

    async def body(d: FastTm) -> Tuning:
        return await d.tune_and_verify(want)

    assert run(radio, body, band=1) == Tuning(446_006_250, 451_006_250, "nfm", None, "754N")
    b = radio.bands[1]
    assert (b.step, b.shift, b.dcs_index) == (1, 1, 103)
    assert (radio.ctrl_band, radio.ptt_band) == (1, 1)


def test_am_on_band_a(radio: KenwoodTmRadio) -> None:
    async def body(d: FastTm) -> Tuning:
        return await d.tune_and_verify(Tuning(127_500_000, 127_500_000, "am"))

    assert run(radio, body).mode == "am"


def test_read_tuning_reverse(radio: KenwoodTmRadio) -> None:
    radio.bands[0].reverse, radio.bands[0].shift = 1, 2  # listen on the input

    async def body(d: FastTm) -> Tuning:
        return await d.read_tuning()

    assert run(radio, body) == Tuning(144_400_000, 145_000_000, "fm", None, None)


def test_key_and_unkey_on_our_band(radio: KenwoodTmRadio) -> None:
    radio.ptt_band = 0
    seen: list[tuple[bool, int]] = []

    async def body(d: FastTm) -> None:
        await d.set_ptt(True)
        seen.append((radio.ptt, radio.ptt_band))
        await d.set_ptt(False)
        seen.append((radio.ptt, radio.ptt_band))

    run(radio, body, band=1)
    assert seen == [(True, 1), (False, 1)]


def test_busy_follows_squelch_of_our_band(radio: KenwoodTmRadio) -> None:
    async def body(d: FastTm) -> list[bool]:
        states = [await d.read_busy()]
        radio.squelch_open[0] = True  # the other band: not ours
        states.append(await d.read_busy())
        radio.squelch_open[1] = True
        states.append(await d.read_busy())
        radio.squelch_open[1] = False
        states.append(await d.read_busy())
        return states

    assert run(radio, body, band=1) == [False, False, True, False]


# ---------------------------------------------------------------------- bad replies
def test_garbage_before_reply_is_skipped(radio: KenwoodTmRadio) -> None:
    radio.fault("ID", b"\x00\xfe\n\x13ID TM-D710\r")

    async def body(d: FastTm) -> str:
        return (await d.probe()).model

    assert run(radio, body) == "TM-D710"
    assert radio.commands.count("ID") == 1


@pytest.mark.parametrize(
    "bad",
    [
        b"BY 0,\xff1\r",  # garbage inside
        b"BY 0\r",  # truncated
        b"XBY 0,1\r",  # garbage that looks like a start
    ],
)
def test_broken_reply_is_retried(radio: KenwoodTmRadio, bad: bytes) -> None:
    radio.squelch_open[0] = True
    radio.fault("BY 0", bad)

    async def body(d: FastTm) -> bool:
        return await d.read_busy()

    assert run(radio, body) is True
    assert radio.commands.count("BY 0") == 2


def test_question_mark_names_the_command(radio: KenwoodTmRadio) -> None:
    radio.fault(r"FO 0,.*", b"?\r")

    async def body(d: FastTm) -> None:
        await d.set_tuning(Tuning(145_500_000, 145_500_000))

    with pytest.raises(CatRejected, match=r"refused FO \(band 0 to 145.500000 MHz\)"):
        run(radio, body)
    assert radio.bands[0].hz == 145_000_000


def test_out_of_band_answers_n(radio: KenwoodTmRadio) -> None:
    async def body(d: FastTm) -> None:
        await d.set_tuning(Tuning(900_000_000, 900_000_000))

    with pytest.raises(CatRejected, match=r"cannot do FO .* answered N"):
        run(radio, body)


def test_silence_times_out_bounded(radio: KenwoodTmRadio) -> None:
    radio.silent = True

    async def body(d: FastTm) -> bool:
        return await d.read_busy()

    started = time.monotonic()
    with pytest.raises(CatTimeout, match=r"no answer to BY \(read busy, band 0\) after 2 tries"):
        run(radio, body)
    assert time.monotonic() - started < 1.5


def test_unplug_mid_command(radio: KenwoodTmRadio) -> None:
    radio.silent = True

    async def body(d: FastTm) -> RigIdentity:
        task = asyncio.create_task(d.probe())
        await until(lambda: radio.commands, what="the request at the radio")
        await asyncio.to_thread(radio.unplug)
        return await task

    with pytest.raises(CatLinkLost, match="went away during ID"):
        drive(lambda: PatientTm(radio.path), body)


def test_wrong_frequency_echo(radio: KenwoodTmRadio) -> None:
    radio.fault(r"FO 0,.*", b"FO 0,0145505000,0,0,0,0,0,0,00,00,000,00000000,0\r")

    async def body(d: FastTm) -> None:
        await d.set_tuning(Tuning(145_500_000, 145_500_000, "fm"))

    with pytest.raises(
        CatVerifyError, match=r"reports rx 145.505000 MHz \(wanted 145.500000 MHz\)"
    ):
        run(radio, body)


def test_verify_catches_a_drifted_radio(radio: KenwoodTmRadio) -> None:
    radio.fault("FO 0", b"FO 0,0145500000,0,2,0,0,0,0,00,00,000,00500000,0\r")

    async def body(d: FastTm) -> Tuning:
        return await d.tune_and_verify(Tuning(145_500_000, 144_900_000, "fm"))

    with pytest.raises(CatVerifyError, match=r"tx 145.000000 MHz \(wanted 144.900000 MHz\)$"):
        run(radio, body)


# ---------------------------------------------------------------------- never left keyed
@pytest.mark.parametrize("reply", [b"?\r", b"N\r"])
def test_refused_key_sends_unkey(radio: KenwoodTmRadio, reply: bytes) -> None:
    radio.fault("TX", reply)

    async def body(d: FastTm) -> None:
        await d.set_ptt(True)

    with pytest.raises(CatRejected, match=r"TX \(key\)"):
        run(radio, body)
    assert unkeyed(radio)


def test_silent_radio_while_keying_is_unkeyed(radio: KenwoodTmRadio) -> None:
    radio.muted.add("TX")  # it keys but never answers

    async def body(d: FastTm) -> None:
        await d.set_ptt(True)

    with pytest.raises(CatTimeout):
        run(radio, body)
    assert "TX" in radio.commands and unkeyed(radio)


def test_cancelled_keying_is_unkeyed(radio: KenwoodTmRadio) -> None:
    async def body(d: FastTm) -> None:
        radio.silent = True
        task = asyncio.create_task(d.set_ptt(True))
        await until(lambda: radio.commands, what="the keying under way at the radio")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # The unkey goes out unawaited: the radio reads it before the line closes.
        await until(lambda: radio.commands[-1:] == ["RX"], what="the unkey at the radio")

    drive(lambda: PatientTm(radio.path), body)
    assert unkeyed(radio)


# ---------------------------------------------------------------------- refused before sending
@pytest.mark.parametrize(
    ("tuning", "message"),
    [
        (Tuning(0, 0), "receive frequency 0 Hz does not fit"),
        (Tuning(10_000_000_000, 10_000_000_000), "does not fit the 10-digit"),
        (Tuning(145_501_000, 145_501_000), "neither the 5 kHz nor the 6.25 kHz"),
        (Tuning(145_500_000, 445_500_000), "8-digit repeater offset"),
        (Tuning(145_500_000, 145_500_000, ctcss_hz=88.0), "88 Hz is not in the TM-D710's"),
        (Tuning(145_500_000, 145_500_000, dcs="024N"), "DCS code 024N is not in"),
        (Tuning(145_500_000, 145_500_000, dcs="023I"), "inverted DCS cannot be set"),
        (Tuning(145_500_000, 145_500_000, ctcss_hz=88.5, dcs="023N"), "not both"),
    ],
)
def test_unrepresentable_refused_before_sending(
    radio: KenwoodTmRadio, tuning: Tuning, message: str
) -> None:
    async def body(d: FastTm) -> None:
        await d.set_tuning(tuning)

    with pytest.raises(CatError, match=message):
        run(radio, body)
    assert radio.commands == ["ID"]  # the identification only: nothing was set


def test_bad_options() -> None:
    with pytest.raises(CatError, match="band must be 0"):
        KenwoodTmDriver("/dev/null", band=2)
