"""The Kenwood TS-family driver against the Kenwood emulator over a real pty: a TS-2000 unless a
test makes it another model."""

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
from gateway.hardware.cat.kenwood import KenwoodDriver
from tests.support.emulators.drive import drive, until
from tests.support.emulators.kenwood import MODELS, KenwoodRadio

T = TypeVar("T")


class FastKenwood(KenwoodDriver):
    timeout_s = 0.15
    retries = 1


class PatientKenwood(FastKenwood):
    """For unplugging or cancelling mid-request: that, never the reply timeout, must end the
    wait."""

    timeout_s = 10.0


@pytest.fixture
def radio() -> Iterator[KenwoodRadio]:
    with KenwoodRadio() as r:
        yield r
        assert not r.ptt, "a test left the emulated radio keyed"


def run(radio: KenwoodRadio, body: Callable[[FastKenwood], Awaitable[T]]) -> T:
    return drive(lambda: FastKenwood(radio.path), body)


def unkeyed(radio: KenwoodRadio) -> bool:
    """Waits (briefly) for the emulator thread to have read the driver's last command, then
    tells whether that was the unkey and the radio is unkeyed."""
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        if radio.commands and radio.commands[-1] == "RX" and not radio.ptt:
            return True
        time.sleep(0.01)
    return False


# ---------------------------------------------------------------------- framer goldens
FRAMER_CASES = [
    (b"FA00145500000;", [b"FA00145500000;"]),
    (b"ID019;BY10;", [b"ID019;", b"BY10;"]),
    (b"?;E;O;", [b"?;", b"E;", b"O;"]),
    (b"\x00\xff\x13FA00145500000;", [b"FA00145500000;"]),  # noise before
    (b"fa12FA00145500000;;", [b"FA00145500000;"]),  # lowercase and stray ; are noise
    (b"FA0014\xff5500000;MD4;", [b"MD4;"]),  # broken frame dropped, next one kept
    (b"FA0014", []),  # truncated: waits
    (b"F" + b"0" * 80 + b"MD4;", [b"MD4;"]),  # a frame that never ends is dropped
]


def _frames(data: bytes) -> tuple[list[bytes], bytes]:
    frames: list[bytes] = []
    while data:
        consumed, frame = KenwoodDriver.framer(data)
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


# ---------------------------------------------------------------------- happy paths
def test_probe_ts2000(radio: KenwoodRadio) -> None:
    async def body(d: FastKenwood) -> RigIdentity:
        return await d.probe()

    assert run(radio, body) == RigIdentity("TS-2000", detail="ID019")


@pytest.mark.parametrize(
    ("model", "rig_id"),
    [
        ("TS-2000", "019"),
        ("TS-480", "020"),
        ("TS-590S", "021"),
        ("TS-590SG", "023"),
        ("TS-890S", "024"),
        ("TS-990S", "022"),
    ],
)
def test_probe_names_each_model(model: str, rig_id: str) -> None:
    with KenwoodRadio(model) as radio:

        async def body(d: FastKenwood) -> RigIdentity:
            return await d.probe()

        assert run(radio, body) == RigIdentity(model, detail=f"ID{rig_id}")


def test_unknown_id_is_refused_in_one_line() -> None:
    with KenwoodRadio(rig_id="027") as radio:

        async def body(d: FastKenwood) -> RigIdentity:
            return await d.probe()

        with pytest.raises(CatProtocolError) as caught:
            run(radio, body)
    message = str(caught.value)
    assert message.startswith(
        "kenwood: the radio answers ID 027, a model this driver does not know (known: 019 TS-2000, "
    )
    assert "023 TS-590SG" in message and "\n" not in message


def test_unknown_radio_is_never_tuned() -> None:
    with KenwoodRadio(rig_id="027") as radio:

        async def body(d: FastKenwood) -> None:
            await d.set_tuning(Tuning(145_500_000, 145_500_000, "fm", ctcss_hz=100.0))

        with pytest.raises(CatProtocolError, match="answers ID 027"):
            run(radio, body)
        assert radio.commands == ["ID"]


# Each model's tone numbers, worked out by hand from its PC command reference (not from either
# table in the code): (model, tone in Hz, what TN and CN carry).
TONE_NUMBERS = [
    ("TS-2000", 67.0, "01"),
    ("TS-2000", 100.0, "12"),
    ("TS-2000", 250.3, "38"),
    ("TS-480", 67.0, "00"),
    ("TS-480", 100.0, "12"),
    ("TS-480", 250.3, "40"),
    ("TS-590S", 67.0, "00"),
    ("TS-590S", 69.3, "01"),
    ("TS-590S", 100.0, "12"),
    ("TS-590S", 250.3, "40"),
    ("TS-590SG", 67.0, "00"),
    ("TS-590SG", 100.0, "12"),
    ("TS-590SG", 254.1, "41"),
    ("TS-890S", 67.0, "00"),
    ("TS-890S", 100.0, "12"),
    ("TS-890S", 159.8, "26"),
    ("TS-890S", 250.3, "48"),
    ("TS-990S", 67.0, "00"),
    ("TS-990S", 100.0, "12"),
    ("TS-990S", 250.3, "48"),
]


def _tone_commands(model: str) -> tuple[str, str]:
    """TN and CN as `model` takes them: the TS-990S puts its main receiver (0) first."""
    return ("TN0", "CN0") if model == "TS-990S" else ("TN", "CN")


@pytest.mark.parametrize(("model", "hz", "number"), TONE_NUMBERS)
def test_each_model_gets_its_own_tone_number(model: str, hz: float, number: str) -> None:
    want = Tuning(145_500_000, 145_500_000, "fm", ctcss_hz=hz)
    with KenwoodRadio(model) as radio:

        async def body(d: FastKenwood) -> Tuning:
            return await d.tune_and_verify(want)

        assert run(radio, body) == want  # read back, in Hz
        tn, cn = _tone_commands(model)
        assert f"{tn}{number}" in radio.commands and f"{cn}{number}" in radio.commands
        a = radio.vfo_a
        assert radio.tone_hz(a.tn) == radio.tone_hz(a.cn) == hz  # what goes on the air
        assert a.ct and not a.to and a.mode == "4"


@pytest.mark.parametrize("model", list(MODELS))
def test_read_back_of_another_tone_is_a_mismatch(model: str) -> None:
    with KenwoodRadio(model) as radio:
        _, cn = _tone_commands(model)
        # The set is taken, but the radio's own reading is one tone up (103.5 Hz).
        wrong = f"{cn}{radio.tone_number(103.5):02d}"
        radio.fault(cn, wrong.encode() + b";")

        async def body(d: FastKenwood) -> Tuning:
            return await d.tune_and_verify(Tuning(145_500_000, 145_500_000, ctcss_hz=100.0))

        with pytest.raises(CatVerifyError) as caught:
            run(radio, body)
    assert str(caught.value) == (
        f"kenwood: after {cn} (decode tone 100 Hz) the radio reports 103.5 Hz ({wrong}), not 100 Hz"
    )


@pytest.mark.parametrize("model", list(MODELS))
def test_read_tuning_reports_the_tone_in_hz(model: str) -> None:
    with KenwoodRadio(model) as radio:
        radio.vfo_a.mode = "4"
        radio.vfo_a.to, radio.vfo_a.tn = True, radio.tone_number(88.5)

        async def body(d: FastKenwood) -> Tuning:
            return await d.read_tuning()

        assert run(radio, body) == Tuning(14_074_000, 14_074_000, "fm", ctcss_hz=88.5)


def test_verify_catches_a_radio_reading_another_tone() -> None:
    with KenwoodRadio("TS-590S") as radio:
        radio.fault("CN", b"CN13;", after=1)  # the set's own read-back is fine; read_tuning's not

        async def body(d: FastKenwood) -> Tuning:
            return await d.tune_and_verify(Tuning(145_500_000, 145_500_000, ctcss_hz=100.0))

        with pytest.raises(CatVerifyError, match=r"CTCSS 103.5 Hz \(wanted 100 Hz\)$"):
            run(radio, body)


def test_a_tone_burst_number_is_no_ctcss_tone() -> None:
    with KenwoodRadio("TS-590S") as radio:
        radio.vfo_a.mode, radio.vfo_a.to, radio.vfo_a.tn = "4", True, 42  # 1750 Hz

        async def body(d: FastKenwood) -> Tuning:
            return await d.read_tuning()

        with pytest.raises(CatProtocolError, match="reports TN42, not a CTCSS tone of the TS-590S"):
            run(radio, body)


@pytest.mark.parametrize(("model", "hz"), [("TS-2000", 69.3), ("TS-590S", 159.8)])
def test_a_tone_the_model_lacks_is_refused_before_tuning(model: str, hz: float) -> None:
    with KenwoodRadio(model) as radio:

        async def body(d: FastKenwood) -> None:
            await d.set_tuning(Tuning(145_500_000, 145_500_000, ctcss_hz=hz))

        with pytest.raises(CatError, match=f"{hz:g} Hz is not in the {model}'s tone table"):
            run(radio, body)
        assert radio.commands == ["ID"]


def test_simplex_with_ctcss(radio: KenwoodRadio) -> None:
    want = Tuning(145_500_000, 145_500_000, "nfm", ctcss_hz=88.5)

    async def body(d: FastKenwood) -> Tuning:
        return await d.tune_and_verify(want)

    got = run(radio, body)
    assert got == Tuning(145_500_000, 145_500_000, "fm", 88.5, None)
    a = radio.vfo_a
    assert (radio.rx_vfo, radio.tx_vfo) == (0, 0)
    assert a.hz == 145_500_000 and a.mode == "4"
    assert (a.tn, a.cn, a.to, a.ct) == (8, 8, False, True)  # 88.5 Hz is TS-2000 index 08
    assert "TN08" in radio.commands and "CN08" in radio.commands


def test_repeater_split_and_tone_off(radio: KenwoodRadio) -> None:
    want = Tuning(145_600_000, 145_000_000, "fm")

    async def body(d: FastKenwood) -> Tuning:
        await d.set_tuning(Tuning(433_000_000, 433_000_000, ctcss_hz=100.0))
        return await d.tune_and_verify(want)

    assert run(radio, body) == want
    assert (radio.rx_vfo, radio.tx_vfo) == (0, 1)
    assert radio.vfo_a.hz == 145_600_000 and radio.vfo_b.hz == 145_000_000
    for vfo in radio.vfos:  # mode and tones set on both VFOs
        assert vfo.mode == "4" and not vfo.ct and not vfo.to


def test_am_and_simplex_after_split(radio: KenwoodRadio) -> None:
    async def body(d: FastKenwood) -> Tuning:
        await d.set_tuning(Tuning(145_600_000, 145_000_000))
        return await d.tune_and_verify(Tuning(7_100_000, 7_100_000, "am"))

    assert run(radio, body) == Tuning(7_100_000, 7_100_000, "am")
    assert (radio.rx_vfo, radio.tx_vfo) == (0, 0) and radio.vfo_a.mode == "5"


def test_key_and_unkey(radio: KenwoodRadio) -> None:
    seen: list[bool] = []

    async def body(d: FastKenwood) -> None:
        await d.set_ptt(True)
        seen.append(radio.ptt)
        await d.set_ptt(False)
        seen.append(radio.ptt)

    run(radio, body)
    assert seen == [True, False]


def test_busy_follows_squelch(radio: KenwoodRadio) -> None:
    async def body(d: FastKenwood) -> list[bool]:
        states = [await d.read_busy()]
        radio.squelch_open = True
        states.append(await d.read_busy())
        radio.squelch_open = False
        states.append(await d.read_busy())
        return states

    assert run(radio, body) == [False, True, False]


# ---------------------------------------------------------------------- bad replies
def test_garbage_before_reply_is_skipped(radio: KenwoodRadio) -> None:
    radio.fault("ID", b"\x00\xfe\x13\nID019;")

    async def body(d: FastKenwood) -> str:
        return (await d.probe()).model

    assert run(radio, body) == "TS-2000"
    assert radio.commands.count("ID") == 1  # no retry was needed


@pytest.mark.parametrize(
    "bad",
    [
        b"FA0014\xff5500000;",  # garbage inside
        b"FA001455;",  # truncated
        b"XYFA00145500000;",  # garbage that looks like a start
    ],
)
def test_broken_reply_is_retried(radio: KenwoodRadio, bad: bytes) -> None:
    radio.vfo_a.hz, radio.vfo_a.mode = 145_500_000, "4"
    radio.fault("FA", bad)

    async def body(d: FastKenwood) -> Tuning:
        return await d.read_tuning()

    assert run(radio, body).rx_hz == 145_500_000
    assert radio.commands.count("FA") == 2


def test_reject_names_the_command(radio: KenwoodRadio) -> None:
    radio.fault(r"FA\d+", b"?;")

    async def body(d: FastKenwood) -> None:
        await d.set_tuning(Tuning(145_500_000, 145_500_000))

    with pytest.raises(CatRejected, match=r"refused FA \(VFO A to 145.500000 MHz\)"):
        run(radio, body)
    assert radio.vfo_a.hz == 14_074_000


def test_rig_refuses_out_of_band(radio: KenwoodRadio) -> None:
    async def body(d: FastKenwood) -> None:
        await d.set_tuning(Tuning(100_000_000, 100_000_000))

    with pytest.raises(CatRejected, match="FA"):
        run(radio, body)


def test_communication_error_is_retried(radio: KenwoodRadio) -> None:
    radio.fault("MD", b"E;")

    async def body(d: FastKenwood) -> Tuning:
        return await d.read_tuning()

    radio.vfo_a.mode = "4"
    assert run(radio, body).mode == "fm"


def test_communication_errors_give_up(radio: KenwoodRadio) -> None:
    radio.fault("BY", b"O;", times=10)

    async def body(d: FastKenwood) -> bool:
        return await d.read_busy()

    with pytest.raises(CatRejected, match=r"communication error \(O;\) to BY .* 2 times"):
        run(radio, body)


def test_silence_times_out_bounded(radio: KenwoodRadio) -> None:
    radio.silent = True

    async def body(d: FastKenwood) -> bool:
        return await d.read_busy()

    started = time.monotonic()
    with pytest.raises(CatTimeout, match=r"no answer to BY \(read busy\) after 2 tries"):
        run(radio, body)
    assert time.monotonic() - started < 1.5


def test_unplug_mid_command(radio: KenwoodRadio) -> None:
    radio.silent = True

    async def body(d: FastKenwood) -> RigIdentity:
        task = asyncio.create_task(d.probe())
        await until(lambda: radio.commands, what="the request at the radio")
        await asyncio.to_thread(radio.unplug)
        return await task

    with pytest.raises(CatLinkLost, match="went away during ID"):
        drive(lambda: PatientKenwood(radio.path), body)


def test_wrong_frequency_echo(radio: KenwoodRadio) -> None:
    radio.fault("FA", b"FA00145505000;")

    async def body(d: FastKenwood) -> None:
        await d.set_tuning(Tuning(145_500_000, 145_500_000))

    with pytest.raises(
        CatVerifyError, match=r"reports 145.505000 MHz \(FA00145505000\), not 145.500000 MHz$"
    ):
        run(radio, body)


def test_verify_catches_a_drifted_radio(radio: KenwoodRadio) -> None:
    radio.fault("FB", b"FB00145005000;", after=1)  # the set's own echo is fine; read_tuning's not

    async def body(d: FastKenwood) -> Tuning:
        return await d.tune_and_verify(Tuning(145_600_000, 145_000_000))

    with pytest.raises(CatVerifyError, match=r"tx 145.005000 MHz \(wanted 145.000000 MHz\)$"):
        run(radio, body)


# ---------------------------------------------------------------------- never left keyed
def test_refused_key_sends_unkey(radio: KenwoodRadio) -> None:
    radio.fault("TX", b"?;")

    async def body(d: FastKenwood) -> None:
        await d.set_ptt(True)

    with pytest.raises(CatRejected, match=r"TX \(key\)"):
        run(radio, body)
    assert unkeyed(radio)


def test_silent_radio_while_keying_is_unkeyed(radio: KenwoodRadio) -> None:
    radio.silent = True  # it still obeys TX; but never answers IF;

    async def body(d: FastKenwood) -> None:
        await d.set_ptt(True)

    with pytest.raises(CatTimeout):
        run(radio, body)
    assert "TX" in radio.commands and unkeyed(radio)


def test_radio_that_does_not_key_is_unkeyed(radio: KenwoodRadio) -> None:
    radio.fault("TX", b"")  # TX swallowed: IF then says RX

    async def body(d: FastKenwood) -> None:
        await d.set_ptt(True)

    with pytest.raises(CatProtocolError, match="reports it is receiving"):
        run(radio, body)
    assert unkeyed(radio)


def test_cancelled_keying_is_unkeyed(radio: KenwoodRadio) -> None:
    radio.silent = True

    async def body(d: FastKenwood) -> None:
        task = asyncio.create_task(d.set_ptt(True))
        await until(lambda: "TX" in radio.commands, what="the key-up at the radio")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # The unkey goes out unawaited: the radio reads it before the line closes.
        await until(lambda: radio.commands[-1:] == ["RX"], what="the unkey at the radio")

    drive(lambda: PatientKenwood(radio.path), body)
    assert unkeyed(radio)


# ---------------------------------------------------------------------- refused before sending
@pytest.mark.parametrize(
    ("tuning", "message"),
    [
        (Tuning(0, 0), "receive frequency 0 Hz does not fit"),
        (Tuning(145_000_000, 100_000_000_000), "transmit frequency 100000000000 Hz"),
        (Tuning(145_000_000, 145_000_000, ctcss_hz=69.3), "69.3 Hz is not in the TS-2000's"),
        (Tuning(145_000_000, 145_000_000, ctcss_hz=1750.0), "1750 Hz is not in"),
        (Tuning(145_000_000, 145_000_000, dcs="023N"), "DCS 023N cannot be set"),
    ],
)
def test_unrepresentable_refused_before_sending(
    radio: KenwoodRadio, tuning: Tuning, message: str
) -> None:
    async def body(d: FastKenwood) -> None:
        await d.set_tuning(tuning)

    with pytest.raises(CatError, match=message):
        run(radio, body)
    assert radio.commands == ["ID"]  # the identification only: nothing was set
