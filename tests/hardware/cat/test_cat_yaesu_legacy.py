"""The yaesu-legacy driver (FT-817/857/897 5-byte CAT) against its emulator over a real pty."""

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
)
from gateway.hardware.cat.yaesu_legacy import YaesuLegacyDriver, from_bcd, to_bcd
from tests.support.emulators.drive import drive, until
from tests.support.emulators.yaesu_legacy import YaesuLegacyRadio

T = TypeVar("T")


class FastDriver(YaesuLegacyDriver):
    timeout_s: ClassVar[float] = 0.15
    retries: ClassVar[int] = 2


class PatientDriver(FastDriver):
    """For unplugging mid-request: the unplug, never the reply timeout, must end the wait."""

    timeout_s: ClassVar[float] = 10.0


@pytest.fixture
def radio() -> Iterator[YaesuLegacyRadio]:
    with YaesuLegacyRadio() as emulator:
        yield emulator


def run(
    radio: YaesuLegacyRadio,
    body: Callable[[FastDriver], Awaitable[T]],
    **options: bool | str,
) -> T:
    return drive(lambda: FastDriver(radio.path, **options), body)  # type: ignore[arg-type]


def wait_until(check: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.01)
    return check()


# ---------------------------------------------------------------------- golden frames
FREQ_MODE = bytes.fromhex("14 55 00 00 08")  # 145.500 MHz FM


@pytest.mark.parametrize(
    ("buffer", "expected"),
    [
        (FREQ_MODE, (5, FREQ_MODE)),
        (bytes.fromhex("01 40 70 00 01"), (5, bytes.fromhex("01 40 70 00 01"))),  # 14.070 USB
        (bytes.fromhex("43 95 00 00 88"), (5, bytes.fromhex("43 95 00 00 88"))),  # FM-N
        (FREQ_MODE[:4], (0, None)),  # wait for more
        (b"\xff" + FREQ_MODE, (1, None)),  # not BCD: skip a byte
        (bytes.fromhex("14 55 00 00 7e"), (1, None)),  # unknown mode byte
        (bytes.fromhex("14 5a 00 00 08"), (1, None)),  # bad BCD nibble
    ],
)
def test_framer_golden(buffer: bytes, expected: tuple[int, bytes | None]) -> None:
    assert YaesuLegacyDriver.framer(buffer) == expected


def test_framer_resyncs_past_garbage() -> None:
    buffer = b"\xff\xaa\xfe" + FREQ_MODE
    frames = []
    while buffer:
        consumed, frame = YaesuLegacyDriver.framer(buffer)
        if consumed == 0:
            break
        buffer = buffer[consumed:]
        if frame is not None:
            frames.append(frame)
    assert frames == [FREQ_MODE]


def test_bcd_round_trip() -> None:
    assert to_bcd(1_407_000, 8) == bytes.fromhex("01 40 70 00")  # 14.070 MHz, 10 Hz units
    assert to_bcd(885, 4) == bytes.fromhex("08 85")
    assert from_bcd(bytes.fromhex("14 55 00 00")) == 14_550_000
    assert from_bcd(b"\x1a") is None


# ---------------------------------------------------------------------- the rig API
def test_probe(radio: YaesuLegacyRadio) -> None:
    identity = run(radio, lambda d: d.probe())
    assert identity.model == "FT-817/857/897 family"
    assert "145.50000 MHz FM" in identity.detail
    assert radio.commands == [bytes.fromhex("00 00 00 00 03")]


def test_simplex_fm_with_ctcss(radio: YaesuLegacyRadio) -> None:
    tuning = Tuning(146_520_000, 146_520_000, "fm", ctcss_hz=88.5)
    read = run(radio, lambda d: d.tune_and_verify(tuning))
    assert read == tuning
    assert radio.freq_hz == 146_520_000 and radio.mode == 0x08
    assert radio.shift == 0x89
    assert radio.tone_mode == 0x2A and radio.ctcss_tx == radio.ctcss_rx == 885
    assert bytes.fromhex("14 65 20 00 01") in radio.commands
    assert bytes.fromhex("08 85 08 85 0b") in radio.commands


def test_repeater_minus_offset_narrow_dcs(radio: YaesuLegacyRadio) -> None:
    tuning = Tuning(442_100_000, 437_100_000, "nfm", dcs="023N")
    read = run(radio, lambda d: d.tune_and_verify(tuning))
    assert read == tuning
    assert radio.mode == 0x88 and radio.shift == 0x09 and radio.offset_hz == 5_000_000
    assert radio.tone_mode == 0x0A and radio.dcs_tx == radio.dcs_rx == 23
    assert bytes.fromhex("00 50 00 00 f9") in radio.commands


def test_repeater_plus_offset_no_tone(radio: YaesuLegacyRadio) -> None:
    tuning = Tuning(146_940_000, 147_540_000, "fm")
    assert run(radio, lambda d: d.tune_and_verify(tuning)) == tuning
    assert radio.shift == 0x49 and radio.offset_hz == 600_000 and radio.tone_mode == 0x8A


def test_read_tuning_after_front_panel_retune(radio: YaesuLegacyRadio) -> None:
    async def body(driver: FastDriver) -> Tuning:
        await driver.set_tuning(Tuning(146_940_000, 147_540_000, "fm", ctcss_hz=100.0))
        radio.freq_hz, radio.mode = 145_000_000, 0x88  # someone turned the knob
        return await driver.read_tuning()

    assert run(radio, body) == Tuning(145_000_000, 145_000_000, "nfm")


def test_read_tuning_in_ssb_is_a_clear_error(radio: YaesuLegacyRadio) -> None:
    radio.mode = 0x01
    with pytest.raises(CatProtocolError, match="mode USB"):
        run(radio, lambda d: d.read_tuning())


def test_key_and_unkey(radio: YaesuLegacyRadio) -> None:
    async def body(driver: FastDriver) -> list[bool]:
        await driver.set_ptt(True)
        keyed = radio.ptt
        await driver.set_ptt(False)
        return [keyed, radio.ptt]

    assert run(radio, body) == [True, False]


def test_f7_reading_option(radio: YaesuLegacyRadio) -> None:
    radio.f7_keyed = "bit7_set"

    async def body(driver: FastDriver) -> bool:
        await driver.set_ptt(True)
        await driver.set_ptt(False)
        return radio.ptt

    assert run(radio, body, f7_keyed_when="bit7_set") is False


@pytest.mark.parametrize("bit_set_means_closed", [True, False])
def test_busy_follows_squelch(radio: YaesuLegacyRadio, bit_set_means_closed: bool) -> None:
    radio.squelch_bit_set_means_closed = bit_set_means_closed

    async def body(driver: FastDriver) -> list[bool]:
        closed = await driver.read_busy()
        radio.squelch_open = True
        return [closed, await driver.read_busy()]

    options = {"squelch_bit_set_means_closed": bit_set_means_closed}
    assert run(radio, body, **options) == [False, True]


# ---------------------------------------------------------------------- bad replies
def test_garbage_before_reply_is_skipped(radio: YaesuLegacyRadio) -> None:
    radio.garbage_before = b"\xff\xfe\xaa"
    assert run(radio, lambda d: d.read_tuning()).rx_hz == 145_500_000


def test_garbage_while_idle_is_dropped(radio: YaesuLegacyRadio) -> None:
    async def body(driver: FastDriver) -> Tuning:
        radio.inject(b"\x14\x55\x00")  # a stray half frame before anything was asked
        # Blocking the loop while they arrive: the driver cannot read them before they are seen.
        assert radio.unread(wait_s=5.0), "the stray bytes never reached the driver's line"
        await until(lambda: not radio.unread(), what="the idle driver reading the stray bytes")
        return await driver.read_tuning()

    assert run(radio, body).rx_hz == 145_500_000


def test_garbage_inside_reply_is_retried(radio: YaesuLegacyRadio) -> None:
    radio.corrupt_next = True
    assert run(radio, lambda d: d.read_tuning()).rx_hz == 145_500_000
    assert radio.commands.count(bytes.fromhex("00 00 00 00 03")) == 2


def test_truncated_reply_is_retried(radio: YaesuLegacyRadio) -> None:
    radio.truncate_replies = 1
    assert run(radio, lambda d: d.read_tuning()).rx_hz == 145_500_000


def test_truncated_every_time_times_out(radio: YaesuLegacyRadio) -> None:
    radio.truncate_replies = 99
    with pytest.raises(CatTimeout, match=r"read frequency and mode \(03\) after 3 tries"):
        run(radio, lambda d: d.read_tuning())


def test_silence_times_out_bounded(radio: YaesuLegacyRadio) -> None:
    radio.silent = True
    started = time.monotonic()
    with pytest.raises(CatTimeout, match="no answer to probe"):
        run(radio, lambda d: d.probe())
    assert time.monotonic() - started < 2.0


def test_ignored_set_is_rejected_naming_the_command(radio: YaesuLegacyRadio) -> None:
    radio.ignore_ops = {0x07}
    with pytest.raises(CatRejected, match=r"did not take set mode \(07\)"):
        run(radio, lambda d: d.set_tuning(Tuning(145_500_000, 145_500_000, "nfm")))


def test_out_of_band_frequency_is_rejected(radio: YaesuLegacyRadio) -> None:
    with pytest.raises(CatRejected, match=r"set frequency \(01\).*900\.00000 MHz"):
        run(radio, lambda d: d.set_tuning(Tuning(900_000_000, 900_000_000, "fm")))


def test_wrong_frequency_read_back(radio: YaesuLegacyRadio) -> None:
    radio.freq_error_hz = 5_000
    with pytest.raises(CatRejected, match=r"asked 146\.52000 MHz, it reads 146\.52500 MHz"):
        run(radio, lambda d: d.tune_and_verify(Tuning(146_520_000, 146_520_000, "fm")))


def test_unplug_mid_command(radio: YaesuLegacyRadio) -> None:
    radio.silent = True

    async def body(driver: FastDriver) -> Tuning:
        task = asyncio.create_task(driver.read_tuning())
        await until(lambda: radio.commands, what="the request at the radio")
        await asyncio.to_thread(radio.unplug)
        return await task

    with pytest.raises(CatLinkLost, match="went away during read frequency"):
        drive(lambda: PatientDriver(radio.path), body)


def test_failed_key_confirmation_unkeys(radio: YaesuLegacyRadio) -> None:
    radio.silent_ops = {0xF7}  # keys, but never confirms
    with pytest.raises(CatTimeout, match=r"TX status \(F7\) after PTT on"):
        run(radio, lambda d: d.set_ptt(True))
    assert wait_until(lambda: radio.ptt is False)
    on, off = bytes.fromhex("00 00 00 00 08"), bytes.fromhex("00 00 00 00 88")
    assert radio.commands.index(off) > radio.commands.index(on)


def test_radio_that_does_not_key_is_rejected_and_unkeyed(radio: YaesuLegacyRadio) -> None:
    radio.ignore_ops = {0x08}
    with pytest.raises(CatRejected, match=r"did not key on PTT on \(08\)"):
        run(radio, lambda d: d.set_ptt(True))
    assert wait_until(lambda: bytes.fromhex("00 00 00 00 88") in radio.commands)


def test_unplug_while_keying_is_one_clear_error(radio: YaesuLegacyRadio) -> None:
    radio.silent_ops = {0xF7}

    async def body(driver: FastDriver) -> None:
        task = asyncio.create_task(driver.set_ptt(True))
        tx_status = bytes.fromhex("00 00 00 00 f7")  # asked after the key-up, never answered
        await until(lambda: tx_status in radio.commands, what="the TX status request")
        await asyncio.to_thread(radio.unplug)
        await task

    with pytest.raises(CatLinkLost):
        drive(lambda: PatientDriver(radio.path), body)


def test_unkey_that_does_not_take_is_reported(radio: YaesuLegacyRadio) -> None:
    radio.ptt = True
    radio.ignore_ops = {0x88}
    with pytest.raises(CatRejected, match="still transmitting"):
        run(radio, lambda d: d.set_ptt(False))


# ---------------------------------------------------------------------- refused before sending
@pytest.mark.parametrize(
    ("tuning", "message"),
    [
        (Tuning(145_500_005, 145_500_005, "fm"), "10 Hz steps"),
        (Tuning(1_000_000_000, 1_000_000_000, "fm"), "10 Hz steps"),
        (Tuning(145_500_000, 145_500_000, "fm", ctcss_hz=88.4), "CTCSS 88.4 Hz"),
        (Tuning(145_500_000, 145_500_000, "fm", dcs="024N"), "DCS code '024N'"),
        (Tuning(145_500_000, 145_500_000, "fm", dcs="023I"), "inverted"),
        (Tuning(145_500_000, 145_600_005, "fm"), "transmit frequency"),
    ],
)
def test_unrepresentable_is_refused_before_sending(
    radio: YaesuLegacyRadio, tuning: Tuning, message: str
) -> None:
    with pytest.raises(CatError, match=message):
        run(radio, lambda d: d.set_tuning(tuning))
    # A probe after it, answered: had anything been sent before, the radio would have read it
    # first.
    run(radio, lambda d: d.probe())
    assert radio.commands == [bytes.fromhex("00 00 00 00 03")]
