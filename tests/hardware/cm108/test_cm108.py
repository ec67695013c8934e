"""CM108/CM119 GPIO: report bytes, PTT and COS against files standing in for /dev/hidrawN, and
finding a sound card's hidraw in a fake sysfs laid out like the real one."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.hardware.cm108.gpio import (
    Cm108,
    Cm108Error,
    Cm108Inputs,
    cm108_report,
    find_hidraw,
)
from gateway.hardware.keying import Cm108Carrier, Cm108Ptt, KeyingError, UnkeyFailed
from tests.support.sysfs import PCI, hidraw_node, sound_card, usb_device

# --- reports ------------------------------------------------------------------------------------


@pytest.mark.parametrize("gpio", range(1, 9))
def test_report_bytes_for_each_gpio(gpio: int) -> None:
    bit = 1 << (gpio - 1)
    off = Cm108("/dev/null", ptt_gpio=gpio).report(False)
    on = Cm108("/dev/null", ptt_gpio=gpio).report(True)
    assert off == bytes([0x00, 0x00, 0x00, bit, 0x00])  # output, low
    assert on == bytes([0x00, 0x00, bit, bit, 0x00])  # output, high
    inverted = Cm108("/dev/null", ptt_gpio=gpio, ptt_invert=True)
    assert inverted.report(False) == on
    assert inverted.report(True) == off


def test_report_layout_is_shared_with_unkey() -> None:
    from gateway.tools import unkey_all as unkey

    assert unkey.cm108_report is cm108_report
    assert cm108_report(mask=0b1100, data=0b1000) == bytes([0, 0, 0x08, 0x0C, 0])


def test_bad_gpio_numbers() -> None:
    with pytest.raises(
        Cm108Error, match=r"^CM108 GPIO 9 does not exist: GPIOs are numbered 1 to 8$"
    ):
        Cm108("/dev/hidraw0", ptt_gpio=9)
    with pytest.raises(Cm108Error, match="GPIO 3 cannot be both PTT and COS"):
        Cm108("/dev/hidraw0", ptt_gpio=3, cos_gpio=3)
    with pytest.raises(Cm108Error, match="COS comes from GPIO 1 or the voldn button, not both"):
        Cm108("/dev/hidraw0", cos_gpio=1, cos_button="voldn")


# --- PTT ----------------------------------------------------------------------------------------


@pytest.fixture
def hidraw(tmp_path: Path) -> Path:
    path = tmp_path / "hidraw0"
    path.write_bytes(b"")
    return path


def test_set_ptt_writes_exact_reports(hidraw: Path) -> None:
    with Cm108(hidraw) as cm:  # GPIO 3 by default
        cm.set_ptt(True)
        cm.set_ptt(False)
        cm.set_ptt(True)
    assert hidraw.read_bytes() == b"".join(
        [
            bytes([0, 0, 0x00, 0x04, 0]),  # open: unkeyed at once
            bytes([0, 0, 0x04, 0x04, 0]),
            bytes([0, 0, 0x00, 0x04, 0]),
            bytes([0, 0, 0x04, 0x04, 0]),
            bytes([0, 0, 0x00, 0x04, 0]),  # close: unkeyed first
        ]
    )


def test_inverted_ptt_idles_high(hidraw: Path) -> None:
    with Cm108(hidraw, ptt_gpio=4, ptt_invert=True):
        pass
    assert hidraw.read_bytes() == bytes([0, 0, 0x08, 0x08, 0]) * 2


def test_missing_device_is_not_created(tmp_path: Path) -> None:
    path = tmp_path / "hidraw9"
    with pytest.raises(Cm108Error, match=f"^cannot open {path}: No such file or directory$"):
        Cm108(path).open()
    assert not path.exists()


def test_set_ptt_before_open() -> None:
    with pytest.raises(Cm108Error, match=r"^/dev/hidraw0 is not open$"):
        Cm108("/dev/hidraw0").set_ptt(False)


# --- COS ----------------------------------------------------------------------------------------


def test_input_report_fields() -> None:
    inputs = Cm108Inputs.from_bytes(bytes([0b10, 0b101, 0, 0]))
    assert inputs.button_high("voldn") and not inputs.button_high("volup")
    assert [inputs.gpio_high(n) for n in (1, 2, 3)] == [True, False, True]


def test_read_cos_from_a_file_newest_report_wins(hidraw: Path) -> None:
    # GPIO 1 input, active low (pulled up; the radio's COS pulls it down): byte 1 bit 0.
    hidraw.write_bytes(bytes([0x03, 0x01, 0, 0]) + bytes([0x03, 0x00, 0, 0]))
    with Cm108(hidraw, ptt_gpio=None, cos_gpio=1) as cm:
        assert cm.read_cos() is True  # the newer report: GPIO 1 low
        assert cm.read_cos() is True  # nothing new: the last report stands
    assert hidraw.read_bytes()[-4:] == bytes([0x03, 0x00, 0, 0])  # COS-only: nothing written


@pytest.fixture
def fifo(tmp_path: Path) -> Iterator[tuple[Path, list[int]]]:
    path = tmp_path / "hidraw-fifo"
    os.mkfifo(path)
    writers: list[int] = []
    yield path, writers
    for fd in writers:
        os.close(fd)


def test_read_cos_from_a_pipe_reports_as_they_come(fifo: tuple[Path, list[int]]) -> None:
    path, writers = fifo
    with Cm108(path, ptt_gpio=None, cos_button="voldn") as cm:
        assert cm.read_cos() is False  # no report yet: not receiving
        writer = os.open(path, os.O_WRONLY)
        writers.append(writer)
        os.write(writer, bytes([0x01, 0xFF, 0, 0]))  # VOLDN bit low: COS active
        assert cm.read_cos() is True
        os.write(writer, bytes([0x03, 0xFF]))  # half a report: not yet
        assert cm.read_cos() is True
        os.write(writer, bytes([0, 0]))  # the rest: VOLDN high again
        assert cm.read_cos() is False


def test_active_high_cos(hidraw: Path) -> None:
    hidraw.write_bytes(bytes([0x00, 0x80, 0, 0]))
    with Cm108(hidraw, ptt_gpio=None, cos_gpio=8, cos_active_low=False) as cm:
        assert cm.read_cos() is True


def test_read_cos_without_a_source(hidraw: Path) -> None:
    with Cm108(hidraw) as cm, pytest.raises(Cm108Error, match="no COS input configured"):
        cm.read_cos()


# --- the keying seam: one radio's PTT and carrier, driven from the asyncio loop ------------------

UNKEYED_3 = bytes([0, 0, 0x00, 0x04, 0])
KEYED_3 = bytes([0, 0, 0x04, 0x04, 0])


def test_cm108_ptt_opens_unkeyed_and_leaves_it_unkeyed(hidraw: Path) -> None:
    ptt = Cm108Ptt(Cm108(hidraw, ptt_gpio=3))
    assert ptt.description == f"CM108 GPIO 3 of {hidraw}"

    async def session() -> bytes:
        await ptt.open()
        opened = hidraw.read_bytes()
        await ptt.key()
        await ptt.unkey()
        await ptt.close()
        return opened

    assert asyncio.run(session()) == UNKEYED_3
    assert hidraw.read_bytes() == UNKEYED_3 + KEYED_3 + UNKEYED_3 + UNKEYED_3  # close unkeys too


def test_cm108_ptt_failures_are_one_line(tmp_path: Path, hidraw: Path) -> None:
    missing = tmp_path / "hidraw9"
    with pytest.raises(KeyingError, match=f"^cannot open {missing}: No such file or directory$"):
        asyncio.run(Cm108Ptt(Cm108(missing)).open())
    cm = Cm108(hidraw)
    ptt = Cm108Ptt(cm)

    async def session() -> None:
        await ptt.open()
        cm.close()  # the device gone under the PTT
        with pytest.raises(
            UnkeyFailed,
            match=rf"^UNKEY FAILED, check the radio now \(or run crosspatch unkey-all\): "
            rf"{hidraw} is not open$",
        ):
            await ptt.unkey()
        await ptt.close()  # never raises

    asyncio.run(session())


def test_cm108_carrier_reads_cos_and_writes_nothing(hidraw: Path) -> None:
    hidraw.write_bytes(bytes([0x03, 0x00, 0, 0]))  # GPIO 1 low: the radio's COS active
    carrier = Cm108Carrier(Cm108(hidraw, ptt_gpio=None, cos_gpio=1))
    assert carrier.description == f"CM108 GPIO 1 of {hidraw}"

    async def session() -> None:
        await carrier.start()
        try:
            deadline = time.monotonic() + 5.0
            while carrier.state is None and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
        finally:
            await carrier.close()

    asyncio.run(session())
    assert carrier.state is True and carrier.problem is None
    assert hidraw.read_bytes() == bytes([0x03, 0x00, 0, 0])


# --- finding the hidraw of a sound card ---------------------------------------------------------


@pytest.fixture
def sysfs(tmp_path: Path) -> Path:
    """An onboard card 0, a CM108AH fob as card 1 (hidraw0), a C-Media card without HID as
    card 2, and a SignaLink-like card 3 whose HID is not CM108 GPIO."""
    sys = tmp_path / "sys"
    onboard = sys / "devices/pci0000:00/0000:00:1f.3"
    onboard.mkdir(parents=True)
    (onboard / "vendor").write_text("0x8086\n")
    sound_card(sys, onboard, 0, "PCH")
    fob = usb_device(sys, "1-1", 0x0D8C, 0x013C, "USB Audio Device")
    (fob / "1-1:1.0").mkdir()
    sound_card(sys, fob / "1-1:1.0", 1, "Device")
    hidraw_node(fob, "1-1:1.3", "0003:0D8C:013C.0001", "hidraw0")
    plain = usb_device(sys, "1-2", 0x0D8C, 0x0102, "USB Sound Device")
    sound_card(sys, plain / "1-2:1.0", 2, "Sound")
    signalink = usb_device(sys, "1-3", 0x08BB, 0x2904, "USB Audio CODEC")
    sound_card(sys, signalink / "1-3:1.0", 3, "CODEC")
    hidraw_node(signalink, "1-3:1.3", "0003:08BB:2904.0002", "hidraw2")
    (sys / PCI / "usb1" / "idVendor").write_text("1d6b\n")  # the root hub is a USB device too
    (sys / PCI / "usb1" / "idProduct").write_text("0002\n")
    return sys


@pytest.mark.parametrize(
    "name",
    [
        "Device",
        "1",
        "card1",
        "hw:1",
        "plughw:1,0",
        "hw:CARD=Device,DEV=0",
        "usb audio device",
        "Audio Device",
    ],
)
def test_find_hidraw(sysfs: Path, name: str) -> None:
    assert find_hidraw(name, sysfs) == Path("/dev/hidraw0")


def test_no_such_card(sysfs: Path) -> None:
    with pytest.raises(Cm108Error) as info:
        find_hidraw("Fob", sysfs)
    assert str(info.value) == (
        "no sound card matches 'Fob' (sound cards found: card0 'PCH' (not USB), "
        "card1 'Device' (USB Audio Device), card2 'Sound' (USB Sound Device), "
        "card3 'CODEC' (USB Audio CODEC))"
    )


def test_card_without_hid_gpio(sysfs: Path) -> None:
    with pytest.raises(Cm108Error) as info:
        find_hidraw("Sound", sysfs)
    assert str(info.value) == (
        "sound card card2 'Sound' (USB Sound Device), USB 0d8c:0102, has no HID GPIO: "
        "no hidraw device on that USB device"
    )


def test_onboard_card_has_no_gpio(sysfs: Path) -> None:
    with pytest.raises(
        Cm108Error, match=r"^sound card card0 'PCH' \(not USB\) is not a USB device"
    ):
        find_hidraw("PCH", sysfs)


def test_hid_of_another_chip_is_refused(sysfs: Path) -> None:
    with pytest.raises(Cm108Error) as info:
        find_hidraw("CODEC", sysfs)
    message = str(info.value)
    assert message.startswith(
        "sound card card3 'CODEC' (USB Audio CODEC) is USB 08bb:2904, "
        "not a known CM108-compatible chip (accepted: 0d8c:0008,"
    )
    assert message.endswith("; set ptt.port: /dev/hidraw2 to use its HID anyway")


def test_ambiguous_name(sysfs: Path) -> None:
    with pytest.raises(Cm108Error, match=r"^sound card 'USB' is ambiguous: it matches card1"):
        find_hidraw("USB", sysfs)


def test_no_sound_cards_at_all(tmp_path: Path) -> None:
    with pytest.raises(
        Cm108Error, match=r"^no sound card matches 'Device' \(sound cards found: none\)$"
    ):
        find_hidraw("Device", tmp_path)
