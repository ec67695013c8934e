"""The Icom CI-V driver against an emulated IC-7300 on a pty: framing, echo, shared bus,
collisions, tuning, PTT, squelch and every failure as one clear CatError."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

import pytest

from gateway.hardware.cat.base import Tuning
from gateway.hardware.cat.errors import (
    CatError,
    CatLinkLost,
    CatProtocolError,
    CatRejected,
    CatTimeout,
    CatVerifyError,
)
from gateway.hardware.cat.icom import COLLISION_FRAME, IcomDriver, from_bcd_le, to_bcd_le
from tests.support.emulators.drive import drive, until
from tests.support.emulators.icom import IcomRadio

T = TypeVar("T")


class FastIcom(IcomDriver):
    timeout_s = 0.2
    retries = 1
    collision_backoff_s = 0.005


class PatientIcom(FastIcom):
    """For unplugging mid-request: the unplug, never the reply timeout, must end the wait."""

    timeout_s = 10.0


@pytest.fixture(params=[False, True], ids=["no-echo", "echo"])
def radio(request: pytest.FixtureRequest) -> Iterator[IcomRadio]:
    with IcomRadio(0x94, echo=request.param) as r:
        yield r


def run(radio: IcomRadio, body: Callable[[FastIcom], Awaitable[T]], **kw: object) -> T:
    return drive(lambda: FastIcom(radio.path, address=radio.address, **kw), body)  # type: ignore[arg-type]


# ---------------------------------------------------------------------- framer golden table
FB = bytes.fromhex("fefee094fbfd")
SET_14074 = bytes.fromhex("fefe94e0050040071400fd")


@pytest.mark.parametrize(
    ("data", "frames"),
    [
        (SET_14074, [SET_14074]),  # docs/protocols.md, "Icom CI-V": 14.074 MHz
        (FB, [FB]),
        (b"\x00\x13" + FB + b"\x55", [FB]),  # noise around
        (b"\xfe\xfe\xfe\xfe" + FB[2:], [FB]),  # wake-up preamble collapsed
        (b"\xfe\xfe\xe0\x94\x03\x00" + FB, [FB]),  # truncated frame, resync on the next preamble
        (b"\xfe\xfe\xe0\xfd" + FB, [FB]),  # too short to be a frame
        (b"\xfe\xfe\xe0\x94\xfc\xfc" + FB, [COLLISION_FRAME, FB]),  # collision
        (b"\xfc\xfc\xfc", [COLLISION_FRAME]),
        (b"\xfe\x00" + FB, [FB]),  # a lone FE
    ],
)
def test_framer_golden(data: bytes, frames: list[bytes]) -> None:
    for chunk in (len(data), 1, 3):  # whole, byte at a time, split
        got: list[bytes] = []
        buffer = b""
        for i in range(0, len(data), chunk):
            buffer += data[i : i + chunk]
            while buffer:
                consumed, frame = IcomDriver.framer(buffer)
                if consumed == 0:
                    break
                buffer = buffer[consumed:]
                # a jam split across reads may come out as several collisions: one is enough
                if frame is not None and not (frame == COLLISION_FRAME and got[-1:] == [frame]):
                    got.append(frame)
        assert got == frames, chunk


def test_framer_waits_for_more() -> None:
    assert IcomDriver.framer(b"\xfe") == (0, None)
    assert IcomDriver.framer(b"\xfe\xfe\xe0\x94\x03") == (0, None)


def test_bcd() -> None:
    assert to_bcd_le(14_074_000, 5) == bytes.fromhex("0040071400")
    assert from_bcd_le(bytes.fromhex("0000501401")) == 114_500_000


# ---------------------------------------------------------------------- rig API
def test_probe(radio: IcomRadio) -> None:
    ident = run(radio, lambda d: d.probe())
    assert ident.model == "IC-7300 (CI-V 0x94)"


# Transceiver IDs, the models' factory CI-V addresses (Hamlib's rig definitions).
ICOM_IDS = [
    (0x94, "IC-7300"),
    (0xB6, "IC-7300MK2"),
    (0xA2, "IC-9700"),
    (0xA4, "IC-705"),
    (0xAC, "IC-905"),
    (0x88, "IC-7100"),
    (0x70, "IC-7000"),
    (0x80, "IC-7410"),
    (0x7A, "IC-7600"),
    (0x98, "IC-7610"),
    (0x74, "IC-7700"),
    (0xB2, "IC-7760"),
    (0x6A, "IC-7800"),
    (0x8E, "IC-7850/7851"),
    (0x60, "IC-910"),
    (0x7C, "IC-9100"),
    (0x9A, "ID-4100"),
    (0x8C, "ID-5100"),
    (0x90, "IC-2730"),
]


@pytest.mark.parametrize(("address", "model"), ICOM_IDS)
def test_probe_names_each_model(address: int, model: str) -> None:
    with IcomRadio(address, echo=True) as r:
        assert run(r, lambda d: d.probe()).model == f"{model} (CI-V {address:#04x})"


def test_a_renumbered_radio_is_named_by_its_transceiver_id() -> None:
    # Two IC-7300s share a bus: one was moved to 0x70 (the IC-7000's factory address).
    with IcomRadio(0x70, transceiver_id=0x94) as r:
        ident = run(r, lambda d: d.probe())
    assert ident.model == "IC-7300 (CI-V 0x70)" and "transceiver ID 0x94" in ident.detail


def test_an_unknown_transceiver_id_is_refused_in_one_line() -> None:
    with IcomRadio(0x5E) as r, pytest.raises(CatProtocolError) as caught:
        run(r, lambda d: d.probe())
    message = str(caught.value)
    assert message.startswith(
        "icom: the radio at CI-V address 0x5e answers transceiver ID 0x5e, a model this driver "
        "does not know (known: 0x94 IC-7300, 0xb6 IC-7300MK2, "
    )
    assert "0x90 IC-2730" in message and "\n" not in message


# (transceiver ID, model, a channel in its bands)
TONE_MODELS = [
    (0x94, "IC-7300", 51_500_000),
    (0xB6, "IC-7300MK2", 51_500_000),
    (0xA2, "IC-9700", 146_520_000),
    (0xA4, "IC-705", 146_520_000),
    (0x88, "IC-7100", 446_006_250),
    (0x8C, "ID-5100", 146_520_000),
    (0x90, "IC-2730", 446_006_250),
    (0x7C, "IC-9100", 146_520_000),
]
ALL_BANDS = ((30_000, 1_300_000_000),)


@pytest.mark.parametrize(("address", "model", "rx_hz"), TONE_MODELS)
@pytest.mark.parametrize(
    ("hz", "wire"), [(67.0, "000670"), (100.0, "001000"), (159.8, "001598"), (250.3, "002503")]
)
def test_each_model_gets_the_tone_in_tenths_of_hz(
    address: int, model: str, rx_hz: int, hz: float, wire: str
) -> None:
    tuning = Tuning(rx_hz, rx_hz, "fm", ctcss_hz=hz)
    with IcomRadio(address, bands=ALL_BANDS) as r:

        async def body(d: FastIcom) -> Tuning:
            assert (await d.probe()).model.startswith(model)
            return await d.tune_and_verify(tuning)

        assert run(r, body) == tuning  # read back in Hz
        for sub in ("00", "01"):  # repeater tone and TSQL tone
            frame = bytes.fromhex(f"fefe{address:02x}e01b{sub}{wire}fd")
            assert frame in r.received
        assert r.tsql_on and r.tsql_tenths == r.tone_tenths == round(hz * 10)


@pytest.mark.parametrize(("address", "model", "rx_hz"), TONE_MODELS)
def test_a_radio_reading_another_tone_is_a_mismatch(address: int, model: str, rx_hz: int) -> None:
    with IcomRadio(address, bands=ALL_BANDS) as r:
        r.wrong_tone_tenths = 1035
        with pytest.raises(CatVerifyError) as caught:
            run(r, lambda d: d.tune_and_verify(Tuning(rx_hz, rx_hz, ctcss_hz=100.0)))
    assert (
        str(caught.value) == "icom: after tuning the radio reports CTCSS 103.5 Hz (wanted 100 Hz)"
    )


@pytest.mark.parametrize(
    "tuning",
    [
        Tuning(51_500_000, 51_500_000, "fm"),
        Tuning(29_620_000, 29_520_000, "nfm", ctcss_hz=88.5),
        Tuning(52_525_000, 53_525_000, "fm", dcs="023N"),
        Tuning(29_000_000, 29_000_000, "am", dcs="754I"),
    ],
)
def test_tune_and_read_back(radio: IcomRadio, tuning: Tuning) -> None:
    async def body(d: FastIcom) -> Tuning:
        await d.set_tuning(tuning)
        return await d.read_tuning()

    assert run(radio, body) == tuning
    assert radio.freq == tuning.rx_hz
    assert radio.mode == (0x02 if tuning.mode == "am" else 0x05)
    assert radio.filter == (0x02 if tuning.mode == "nfm" else 0x01)
    offset = tuning.tx_hz - tuning.rx_hz
    assert radio.duplex == {0: 0x10, 1: 0x12, -1: 0x11}[(offset > 0) - (offset < 0)]
    if offset:
        assert radio.offset_hz == abs(offset)
    assert radio.tsql_on == (tuning.ctcss_hz is not None)
    assert not radio.tone_on
    assert radio.dtcs_on == (tuning.dcs is not None)
    if tuning.ctcss_hz:
        assert radio.tsql_tenths == radio.tone_tenths == round(tuning.ctcss_hz * 10)
    if tuning.dcs:
        assert radio.dtcs_code == int(tuning.dcs[:3])


def test_retune_clears_tones(radio: IcomRadio) -> None:
    async def body(d: FastIcom) -> Tuning:
        await d.set_tuning(Tuning(51_000_000, 51_000_000, "fm", ctcss_hz=100.0))
        await d.set_tuning(Tuning(51_000_000, 51_000_000, "fm"))
        return await d.read_tuning()

    assert run(radio, body).ctcss_hz is None
    assert not (radio.tsql_on or radio.tone_on or radio.dtcs_on)


def test_ptt_and_squelch(radio: IcomRadio) -> None:
    async def body(d: FastIcom) -> list[bool]:
        seen = []
        await d.set_ptt(True)
        seen.append(radio.ptt)
        await d.set_ptt(False)
        seen.append(radio.ptt)
        seen.append(await d.read_busy())
        radio.squelch_open = True
        seen.append(await d.read_busy())
        return seen

    assert run(radio, body) == [True, False, False, True]


def test_shared_bus_and_garbage(radio: IcomRadio) -> None:
    radio.foreign = True
    radio.garbage = b"\x00\x13\xfe\x42"
    ident = run(radio, lambda d: d.probe())
    assert "0x94" in ident.model


def test_truncated_reply_is_retried(radio: IcomRadio) -> None:
    radio.truncate_next = True
    assert run(radio, lambda d: d.read_busy()) is False


def test_collision_retried(radio: IcomRadio) -> None:
    radio.collide = 2
    run(radio, lambda d: d.set_ptt(False))
    assert radio.ptt_history == [False]


def test_collision_bus_busy(radio: IcomRadio) -> None:
    radio.collide = 100
    with pytest.raises(CatError, match=r"^icom: bus busy: PTT off \(1C 00\) collided 6 times"):
        run(radio, lambda d: d.set_ptt(False))


# ---------------------------------------------------------------------- failures
def test_ng_names_command(radio: IcomRadio) -> None:
    with pytest.raises(CatRejected, match=r"refused set frequency 145500000 Hz \(05\) \(NG\)"):
        run(radio, lambda d: d.set_tuning(Tuning(145_500_000, 145_500_000)))


def test_silence_times_out(radio: IcomRadio) -> None:
    radio.silent = True
    started = time.monotonic()
    with pytest.raises(CatTimeout, match=r"no answer to read squelch \(15 01\) after 2 tries"):
        run(radio, lambda d: d.read_busy())
    assert time.monotonic() - started < 2


def test_silence_with_echo_expected() -> None:
    with IcomRadio(0x94) as r:
        r.silent = True
        with pytest.raises(CatTimeout, match="not even the echo of our own frame"):
            run(r, lambda d: d.read_busy(), echo=True)


def test_unplug_mid_command(radio: IcomRadio) -> None:
    async def body(d: FastIcom) -> None:
        radio.silent = True
        task = asyncio.create_task(d.read_busy())
        await until(lambda: radio.received, what="the request at the radio")
        await asyncio.to_thread(radio.unplug)
        await task

    with pytest.raises(CatLinkLost, match="went away during read squelch"):
        drive(lambda: PatientIcom(radio.path, address=radio.address), body)


def test_wrong_frequency_detected(radio: IcomRadio) -> None:
    radio.wrong_freq = 51_600_000

    async def body(d: FastIcom) -> Tuning:
        await d.set_tuning(Tuning(51_500_000, 51_500_000, "fm"))
        return await d.read_tuning()

    assert run(radio, body).rx_hz == 51_600_000


def test_ng_on_read(radio: IcomRadio) -> None:
    radio.ng_commands.add(0x03)
    with pytest.raises(CatRejected, match=r"refused read frequency \(03\)"):
        run(radio, lambda d: d.read_tuning())


def test_non_bcd_reply() -> None:
    class BadBcd(IcomRadio):
        def _answer(self, cmd: int, rest: bytes) -> bytes:
            return b"\x03\x0a\x00\x00\x00\x00" if cmd == 0x03 else super()._answer(cmd, rest)

    with BadBcd() as r, pytest.raises(CatProtocolError, match="bad number"):
        run(r, lambda d: d.read_tuning())


def test_ptt_failure_unkeys(radio: IcomRadio) -> None:
    radio.ng_commands.add(0x1C)

    async def body(d: FastIcom) -> None:
        with pytest.raises(CatRejected, match=r"PTT on"):
            await d.set_ptt(True)
        ptt_off = bytes.fromhex("fefe94e01c0000fd")
        await until(lambda: radio.received.endswith(ptt_off), what="PTT off at the radio")

    run(radio, body)


def test_ptt_silence_unkeys(radio: IcomRadio) -> None:
    # The radio keys but its answers are lost: the driver must send PTT off anyway.
    radio.silent = True

    async def body(d: FastIcom) -> None:
        with pytest.raises(CatTimeout):
            await d.set_ptt(True)
        await until(lambda: radio.ptt_history[-1:] == [False], what="PTT off at the radio")

    run(radio, body)
    assert radio.ptt is False
    assert radio.ptt_history[-1] is False


@pytest.mark.parametrize(
    ("tuning", "message"),
    [
        (Tuning(10_000_000_000, 10_000_000_000), "cannot be sent as a CI-V frequency"),
        (Tuning(0, 0), "cannot be sent as a CI-V frequency"),
        (Tuning(51_000_000, 51_000_050), "cannot be set as a CI-V duplex offset"),
        (Tuning(51_000_000, 51_000_000, ctcss_hz=88.6), "not a CTCSS tone"),
        (Tuning(51_000_000, 51_000_000, dcs="999N"), "not a DCS code"),
        (Tuning(51_000_000, 51_000_000, dcs="023X"), "not a DCS code"),
        (Tuning(51_000_000, 51_000_000, ctcss_hz=88.5, dcs="023N"), "not both"),
    ],
)
def test_unrepresentable_rejected_before_sending(
    radio: IcomRadio, tuning: Tuning, message: str
) -> None:
    with pytest.raises(CatError, match=message):
        run(radio, lambda d: d.set_tuning(tuning))
    # A probe after it, answered: had anything been sent before, the radio would have read it
    # first.
    run(radio, lambda d: d.probe())
    assert radio.received == bytes.fromhex("fefe94e01900fd")


def test_bad_address() -> None:
    with pytest.raises(CatError, match="outside 0x01-0xEF"):
        IcomDriver("/dev/null", address=0xFE)
