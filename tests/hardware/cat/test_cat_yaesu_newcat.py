"""The yaesu (newcat ASCII) driver against its FT-991 emulator over a real pty."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import ClassVar, TypeVar

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
from gateway.hardware.cat.yaesu_newcat import YaesuNewcatDriver
from tests.support.emulators.drive import drive, until
from tests.support.emulators.yaesu_newcat import MODELS, YaesuNewcatRadio

T = TypeVar("T")


class FastDriver(YaesuNewcatDriver):
    timeout_s: ClassVar[float] = 0.15
    retries: ClassVar[int] = 2
    reject_pause_s: ClassVar[float] = 0.02


class PatientDriver(FastDriver):
    """For unplugging mid-request: the unplug, never the reply timeout, must end the wait."""

    timeout_s: ClassVar[float] = 10.0


@pytest.fixture
def radio() -> Iterator[YaesuNewcatRadio]:
    with YaesuNewcatRadio() as emulator:
        yield emulator


def run(
    radio: YaesuNewcatRadio, body: Callable[[FastDriver], Awaitable[T]], fa_digits: int = 9
) -> T:
    return drive(lambda: FastDriver(radio.path, fa_digits=fa_digits), body)


def wait_until(check: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.01)
    return check()


# ---------------------------------------------------------------------- golden frames
@pytest.mark.parametrize(
    ("buffer", "expected"),
    [
        (b"FA014250000;", (12, b"FA014250000;")),
        (b"ID0570;", (7, b"ID0570;")),
        (b"MD0B;", (5, b"MD0B;")),
        (b"?;", (2, b"?;")),
        (b"FA0142", (0, None)),  # wait for more
        (b"\xff\x00FA014250000;", (14, b"FA014250000;")),  # garbage ahead
        (b"FA0142\xff50000;", (13, None)),  # garbage inside: noise
        (b"FA0142FA014250000;", (18, b"FA014250000;")),  # truncated then whole
        (b"\x13\x37?;", (4, b"?;")),
        (b"\xff" * 80, (80, None)),  # a long run without ; is noise
        (b"FA014250000;FA;", (12, b"FA014250000;")),  # one frame at a time
    ],
)
def test_framer_golden(buffer: bytes, expected: tuple[int, bytes | None]) -> None:
    assert YaesuNewcatDriver.framer(buffer) == expected


# ---------------------------------------------------------------------- the rig API
@pytest.mark.parametrize(
    ("model", "rig_id"),
    [
        ("FT-991", "0570"),
        ("FT-991A", "0670"),
        ("FTDX10", "0761"),
        ("FT-710", "0800"),
        ("FTDX101D", "0681"),
        ("FTDX101MP", "0682"),
        ("FT-891", "0650"),
    ],
)
def test_probe(model: str, rig_id: str) -> None:
    with YaesuNewcatRadio(model) as radio:
        identity = run(radio, lambda d: d.probe())
    assert (identity.model, identity.detail) == (model, f"newcat ID{rig_id}")


def test_probe_unknown_radio_in_one_line(radio: YaesuNewcatRadio) -> None:
    radio.rig_id = "0241"
    with pytest.raises(CatProtocolError) as caught:
        run(radio, lambda d: d.probe())
    message = str(caught.value)
    assert message.startswith(
        "yaesu: the radio answers ID 0241, a model this driver does not know "
        "(known: 0570 FT-991, 0670 FT-991A, "
    )
    assert "0650 FT-891" in message and "\n" not in message


def test_unknown_radio_is_never_tuned(radio: YaesuNewcatRadio) -> None:
    radio.rig_id = "0241"
    tuning = Tuning(146_520_000, 146_520_000, "fm", ctcss_hz=100.0)
    with pytest.raises(CatProtocolError, match="answers ID 0241"):
        run(radio, lambda d: d.set_tuning(tuning))
    assert radio.commands == ["ID;"]


# (tone in Hz, CN00's number for it), worked out by hand from the 50-tone chart.
TONE_NUMBERS = [(67.0, "000"), (100.0, "012"), (159.8, "026"), (250.3, "048"), (254.1, "049")]


@pytest.mark.parametrize("model", list(MODELS))
@pytest.mark.parametrize(("hz", "number"), TONE_NUMBERS)
def test_each_model_gets_its_tone_number(model: str, hz: float, number: str) -> None:
    tuning = Tuning(146_520_000, 146_520_000, "fm", ctcss_hz=hz)
    with YaesuNewcatRadio(model) as radio:
        assert run(radio, lambda d: d.tune_and_verify(tuning)) == tuning  # read back in Hz
        assert f"CN00{number};" in radio.commands
        assert radio.tone_hz(radio.ctcss_index) == hz and radio.tone_mode == "1"


@pytest.mark.parametrize("model", list(MODELS))
def test_read_back_of_another_tone_is_a_mismatch(model: str) -> None:
    with YaesuNewcatRadio(model) as radio:
        radio.answers["CN00;"] = "CN00013;"  # the radio reads 103.5 Hz
        tuning = Tuning(146_520_000, 146_520_000, "fm", ctcss_hz=100.0)
        with pytest.raises(CatVerifyError) as caught:
            run(radio, lambda d: d.tune_and_verify(tuning))
    assert str(caught.value) == (
        "yaesu: CTCSS tone (CN00) did not take: asked 100 Hz, the radio reads 103.5 Hz"
    )


@pytest.mark.parametrize("model", list(MODELS))
def test_read_tuning_reports_the_tone_in_hz(model: str) -> None:
    with YaesuNewcatRadio(model) as radio:
        radio.tone_mode, radio.ctcss_index = "2", 33  # encode only, 179.9 Hz
        assert run(radio, lambda d: d.read_tuning()).ctcss_hz == 179.9


def test_a_number_outside_the_table_is_reported(radio: YaesuNewcatRadio) -> None:
    radio.tone_mode, radio.ctcss_index = "1", 50
    with pytest.raises(CatProtocolError, match="CTCSS number 050, not a tone of the FT-991's"):
        run(radio, lambda d: d.read_tuning())


def test_simplex_fm_ctcss(radio: YaesuNewcatRadio) -> None:
    tuning = Tuning(146_520_000, 146_520_000, "fm", ctcss_hz=100.0)
    assert run(radio, lambda d: d.tune_and_verify(tuning)) == tuning
    assert radio.fa == 146_520_000 and not radio.tx_on_b and radio.mode == "4"
    assert radio.tone_mode == "1" and radio.ctcss_index == 12
    assert "CN00012;" in radio.commands and "FA146520000;" in radio.commands


def test_repeater_split_narrow_dcs(radio: YaesuNewcatRadio) -> None:
    tuning = Tuning(442_100_000, 447_100_000, "nfm", dcs="023")
    read = run(radio, lambda d: d.tune_and_verify(tuning))
    assert read == Tuning(442_100_000, 447_100_000, "nfm", dcs="023N")
    assert radio.fa == 442_100_000 and radio.fb == 447_100_000 and radio.tx_on_b
    assert radio.mode == "B" and radio.tone_mode == "3" and radio.dcs_index == 0


def test_back_to_simplex_no_tone(radio: YaesuNewcatRadio) -> None:
    radio.tx_on_b, radio.tone_mode = True, "1"
    tuning = Tuning(145_500_000, 145_500_000, "am")
    assert run(radio, lambda d: d.tune_and_verify(tuning)) == tuning
    assert not radio.tx_on_b and radio.tone_mode == "0" and radio.mode == "5"


def test_eight_digit_fa() -> None:
    with YaesuNewcatRadio(fa_digits=8) as radio:
        tuning = Tuning(14_250_000, 14_250_000, "fm")
        assert run(radio, lambda d: d.tune_and_verify(tuning), fa_digits=8) == tuning
        assert "FA14250000;" in radio.commands


def test_read_tuning_in_usb_is_a_clear_error(radio: YaesuNewcatRadio) -> None:
    radio.mode = "2"
    with pytest.raises(CatProtocolError, match="mode USB"):
        run(radio, lambda d: d.read_tuning())


def test_key_and_unkey(radio: YaesuNewcatRadio) -> None:
    async def body(driver: FastDriver) -> list[str]:
        await driver.set_ptt(True)
        keyed = radio.ptt
        await driver.set_ptt(False)
        return [keyed, radio.ptt]

    assert run(radio, body) == ["1", "0"]


def test_busy_follows_squelch(radio: YaesuNewcatRadio) -> None:
    async def body(driver: FastDriver) -> list[bool]:
        idle = await driver.read_busy()
        radio.squelch_open = True
        return [idle, await driver.read_busy()]

    assert run(radio, body) == [False, True]


# ---------------------------------------------------------------------- bad replies
def test_garbage_before_reply(radio: YaesuNewcatRadio) -> None:
    radio.garbage_before = b"\xff\x00\x7f"
    assert run(radio, lambda d: d.read_tuning()).rx_hz == 145_500_000


def test_garbage_inside_reply_is_retried(radio: YaesuNewcatRadio) -> None:
    radio.corrupt_next = True
    assert run(radio, lambda d: d.probe()).model == "FT-991"
    assert radio.commands.count("ID;") == 2


def test_truncated_reply_is_retried(radio: YaesuNewcatRadio) -> None:
    radio.truncate_replies = 1
    assert run(radio, lambda d: d.read_tuning()).rx_hz == 145_500_000


def test_busy_reject_is_retried(radio: YaesuNewcatRadio) -> None:
    tuning = Tuning(146_520_000, 146_520_000, "fm")

    async def body(driver: FastDriver) -> Tuning:
        await driver.probe()
        radio.reject_next = 1  # the FA set is refused once, its read answered
        return await driver.tune_and_verify(tuning)

    assert run(radio, body) == tuning
    assert radio.commands.count("FA146520000;") == 2


def test_reject_names_the_command(radio: YaesuNewcatRadio) -> None:
    radio.reject_names = {"CN"}
    with pytest.raises(CatRejected, match=r"refused CTCSS tone \(CN00\) \(CN00008;CN00;\)"):
        run(radio, lambda d: d.set_tuning(Tuning(145_500_000, 145_500_000, "fm", ctcss_hz=88.5)))


def test_out_of_range_frequency_is_rejected(radio: YaesuNewcatRadio) -> None:
    with pytest.raises(CatRejected, match=r"set rx frequency \(FA\)"):
        run(radio, lambda d: d.set_tuning(Tuning(900_000_000, 900_000_000, "fm")))


def test_silence_times_out_bounded(radio: YaesuNewcatRadio) -> None:
    radio.silent = True
    started = time.monotonic()
    with pytest.raises(CatTimeout, match=r"no answer to probe \(ID\) after 3 tries"):
        run(radio, lambda d: d.probe())
    assert time.monotonic() - started < 2.0


def test_unplug_mid_command(radio: YaesuNewcatRadio) -> None:
    radio.silent = True

    async def body(driver: FastDriver) -> Tuning:
        task = asyncio.create_task(driver.read_tuning())
        await until(lambda: radio.commands, what="the request at the radio")
        await asyncio.to_thread(radio.unplug)
        return await task

    with pytest.raises(CatLinkLost, match=r"went away during probe \(ID\)"):
        drive(lambda: PatientDriver(radio.path), body)


def test_wrong_frequency_read_back(radio: YaesuNewcatRadio) -> None:
    radio.freq_error_hz = 5_000
    with pytest.raises(
        CatVerifyError, match=r"asked 146\.520000 MHz, the radio reads 146\.525000 MHz$"
    ):
        run(radio, lambda d: d.tune_and_verify(Tuning(146_520_000, 146_520_000, "fm")))


def test_radio_that_does_not_key_is_rejected_and_unkeyed(radio: YaesuNewcatRadio) -> None:
    radio.ignore_ptt = True
    with pytest.raises(CatRejected, match=r"did not key on PTT on \(TX1\)"):
        run(radio, lambda d: d.set_ptt(True))
    assert wait_until(lambda: radio.commands[-1:] == ["TX0;"])


def test_failed_key_confirmation_unkeys(radio: YaesuNewcatRadio) -> None:
    radio.truncate_replies = 99  # keys, but the TX answer never arrives whole
    with pytest.raises(CatTimeout, match=r"PTT on \(TX1\)"):
        run(radio, lambda d: d.set_ptt(True))
    assert wait_until(lambda: radio.commands[-1:] == ["TX0;"])
    assert wait_until(lambda: radio.ptt == "0")


def test_unplug_while_keying(radio: YaesuNewcatRadio) -> None:
    radio.silent = True

    async def body(driver: FastDriver) -> None:
        task = asyncio.create_task(driver.set_ptt(True))
        await until(lambda: "TX1;" in radio.commands, what="the key-up at the radio")
        await asyncio.to_thread(radio.unplug)
        await task

    with pytest.raises(CatLinkLost):
        drive(lambda: PatientDriver(radio.path), body)


def test_unkey_still_keyed_is_reported(radio: YaesuNewcatRadio) -> None:
    radio.ptt, radio.ignore_unkey = "2", True  # keyed from the radio's microphone
    with pytest.raises(CatRejected, match=r"still transmitting after PTT off \(TX0\), TX2"):
        run(radio, lambda d: d.set_ptt(False))


# ---------------------------------------------------------------------- refused before sending
@pytest.mark.parametrize(
    ("tuning", "message"),
    [
        (Tuning(1_000_000_000, 1_000_000_000, "fm"), "9 digits"),
        (Tuning(145_500_000, 145_500_000, "fm", ctcss_hz=88.4), "CTCSS 88.4 Hz"),
        (Tuning(145_500_000, 145_500_000, "fm", dcs="024N"), "DCS code '024N'"),
        (Tuning(145_500_000, 145_500_000, "fm", dcs="023I"), "inverted"),
        (Tuning(145_500_000, 0, "fm"), "transmit frequency 0 Hz"),
    ],
)
def test_unrepresentable_is_refused_before_sending(
    radio: YaesuNewcatRadio, tuning: Tuning, message: str
) -> None:
    with pytest.raises(CatError, match=message):
        run(radio, lambda d: d.set_tuning(tuning))
    assert radio.commands == ["ID;"]  # the identification only: nothing was set


def test_eight_digit_limit() -> None:
    with YaesuNewcatRadio(fa_digits=8) as radio, pytest.raises(CatError, match="8 digits"):
        run(radio, lambda d: d.set_tuning(Tuning(145_500_000, 145_500_000, "fm")), fa_digits=8)
