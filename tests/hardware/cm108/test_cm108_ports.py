"""The CM108 bank: radios keyed and heard through sound-card GPIO, two of them on one CM119.

A pseudo-terminal stands in for /dev/hidrawN: the bank opens its slave (through a symlink, as
udev names devices), and the test plays the chip on the master side, reading the output reports
written and sending input reports. Closing the master is unplugging the card: the node goes and
writes fail with EIO, as a hidraw's fail with ENODEV. A regular file stands in where only the
bytes written matter, and a fake sysfs (tests/support/sysfs.py) where the hidraw is found from
the radio's sound card.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import yaml

from gateway.config import Config, parse_config_text
from gateway.hardware.cm108.gpio import (
    Cm108Device,
    Cm108Error,
    CosInput,
    PttGpio,
    find_hidraw,
    find_hidraw_of_sound_device,
)
from gateway.hardware.cm108.ports import Cm108PortBank, Cm108Wiring
from gateway.ports.wiring import cm108_wirings
from tests.support.cm108 import A_KEYED, B_KEYED, BOTH_KEYED, IDLE, FakeCm119, report
from tests.support.sysfs import hidraw_node, sound_card, usb_device

PORTAUDIO_NAME = "USB Audio Device: - (hw:1,0)"


def wait_for(what: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := what():
            return value
        time.sleep(0.005)
    raise AssertionError("timed out")


def ptt(*keyed: bool) -> npt.NDArray[np.bool_]:
    return np.array(keyed, dtype=bool)


def config(radios: dict[str, dict[str, Any]]) -> Config:
    """A valid config with these radios, each on the talkgroup of its name."""
    document: dict[str, Any] = {
        "gateway": {"id": "test"},
        "agencies": {
            "ca": {
                "name": "Canadian agency",
                "country": "CA",
                "talkgroups": {name: {"rx_mhz": 142.47} for name in radios},
            }
        },
        "radios": {name: {"talkgroup": f"ca/{name}", **r} for name, r in radios.items()},
    }
    return parse_config_text(yaml.safe_dump(document, sort_keys=False), filename="site.yaml")


def cm119_radios(
    port: str | None, *, a_invert: bool = False, b_invert: bool = True
) -> dict[str, dict[str, Any]]:
    """Radios a (left) and b (right) of one CM119: a keyed by GPIO 3 and heard on GPIO 1,
    b keyed by GPIO 4 and heard on the VOLDN button."""
    where = {"port": port} if port is not None else {}
    card = {"input": PORTAUDIO_NAME, "output": PORTAUDIO_NAME}
    return {
        "a": {
            "audio": {**card, "channel": "left"},
            "ptt": {"method": "cm108", "gpio": 3, **where},
            "squelch": {"method": "cm108", "gpio": 1, "invert": a_invert, **where},
        },
        "b": {
            "audio": {**card, "channel": "right"},
            "ptt": {"method": "cm108", "gpio": 4, **where},
            "squelch": {"method": "cm108", "button": "voldn", "invert": b_invert, **where},
        },
    }


class Site:
    """The bank over a config's CM108 wirings, recording what it reports."""

    def __init__(self, cfg: Config, **options: Any) -> None:
        self.lost: list[tuple[str, str]] = []
        self.applied: list[tuple[str, bool]] = []
        self.bank = Cm108PortBank(
            cfg.ports(),
            cm108_wirings(cfg),
            on_lost=lambda device, reason: self.lost.append((device, reason)),
            on_ptt_applied=lambda radio, on, at: self.applied.append((radio, on)),
            **options,
        )


@pytest.fixture
def chip(tmp_path: Path) -> Iterator[FakeCm119]:
    fake = FakeCm119(tmp_path / "hidraw0")
    yield fake
    fake.unplug()


@pytest.fixture
def site(chip: FakeCm119) -> Iterator[Site]:
    s = Site(config(cm119_radios(str(chip.link))))
    s.bank.start()
    yield s
    with contextlib.suppress(Cm108Error):
        s.bank.close()


# --- config to wirings --------------------------------------------------------------------------


def test_two_radios_on_a_sound_card_share_one_wiring() -> None:
    radios = cm119_radios(None)
    radios["c"] = {  # a CM108 given by its hidraw: keyed there, its COS on the default button
        "audio": {"input": "other card", "output": "other card"},
        "ptt": {"method": "cm108", "port": "/dev/hidraw7", "invert": True},
        "squelch": {"method": "vox"},
    }
    radios["d"] = {"simulated": {}}
    assert cm108_wirings(config(radios)) == [
        Cm108Wiring(
            PORTAUDIO_NAME,
            ptt=(PttGpio("a", 3), PttGpio("b", 4)),
            cos=(CosInput("a", gpio=1), CosInput("b", button="voldn", active_low=False)),
            sound_devices=(PORTAUDIO_NAME,),
        ),
        Cm108Wiring("/dev/hidraw7", ptt=(PttGpio("c", 3, invert=True),)),
    ]


def test_one_report_carries_every_ptt_gpio(tmp_path: Path) -> None:
    hidraw = tmp_path / "hidraw1"
    hidraw.write_bytes(b"")
    with Cm108Device(hidraw, ptt=[PttGpio("a", 1), PttGpio("b", 4, invert=True)]) as device:
        device.key("a", True)
        device.key("b", True)
        device.set_ptt(())
    assert hidraw.read_bytes() == b"".join(
        [
            report(0b1000, 0b1001),  # open: both unkeyed (b's inverted GPIO high)
            report(0b1001, 0b1001),
            report(0b0001, 0b1001),
            report(0b1000, 0b1001),
            report(0b1000, 0b1001),  # close
        ]
    )


def test_wiring_mistakes_are_refused() -> None:
    with pytest.raises(Cm108Error, match=r"^/dev/hidraw0: GPIO 3 keys both a and b$"):
        Cm108Device("/dev/hidraw0", ptt=[PttGpio("a", 3), PttGpio("b", 3)])
    with pytest.raises(
        Cm108Error, match=r"^x: GPIO 3 keys a; it cannot also be the COS input of b$"
    ):
        Cm108PortBank(["a", "b"], [Cm108Wiring("x", (PttGpio("a", 3),), (CosInput("b", 3),))])
    with pytest.raises(Cm108Error, match=r"^CM108 wiring names 'z', which is no port$"):
        Cm108PortBank(["a"], [Cm108Wiring("x", (PttGpio("z", 3),))])


# --- PTT ----------------------------------------------------------------------------------------


def test_keying_writes_every_ptt_gpio_of_the_shared_chip(chip: FakeCm119, site: Site) -> None:
    assert chip.report() == IDLE  # opening unkeys both at once
    site.bank.transmit(np.zeros((2, 160), dtype=np.float32), ptt(True, False))
    assert chip.report() == A_KEYED  # only a's GPIO high; both GPIOs outputs
    site.bank.set_ptt(ptt(True, False))
    assert chip.quiet()  # no change, no write
    site.bank.set_ptt(ptt(True, True))
    assert chip.report() == BOTH_KEYED
    site.bank.set_ptt(ptt(False, True))
    assert chip.report() == B_KEYED
    assert chip.quiet()


def test_ptt_applied_is_reported_per_radio(chip: FakeCm119, site: Site) -> None:
    chip.report()
    site.bank.set_ptt(ptt(True, True))
    assert chip.report() == BOTH_KEYED
    site.bank.set_ptt(ptt(False, True))
    assert chip.report() == B_KEYED
    wait_for(lambda: len(site.applied) == 3)
    assert site.applied == [("a", True), ("b", True), ("a", False)]


def test_close_unkeys_every_radio(chip: FakeCm119, site: Site) -> None:
    chip.report()
    site.bank.set_ptt(ptt(True, True))
    assert chip.report() == BOTH_KEYED
    site.bank.close()
    assert chip.report() == IDLE
    assert chip.quiet()


# --- COS ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a_invert", "b_invert"), [(False, True), (True, False)], ids=["gpio-low", "button-low"]
)
def test_each_radio_hears_its_own_input(chip: FakeCm119, a_invert: bool, b_invert: bool) -> None:
    s = Site(config(cm119_radios(str(chip.link), a_invert=a_invert, b_invert=b_invert)))
    s.bank.start()
    try:
        assert list(s.bank.carrier()) == [False, False]  # no report yet: not receiving

        def levels(gpio1_high: bool, voldn_high: bool) -> None:
            chip.send(0x02 if voldn_high else 0x00, 0xFF if gpio1_high else 0xFE)

        def heard(a: bool, b: bool) -> None:
            wait_for(lambda: list(s.bank.carrier()) == [a, b])

        # Active low (the default): receiving while the input is pulled low; inverted: high.
        levels(gpio1_high=not a_invert, voldn_high=not b_invert)
        heard(False, False)
        levels(gpio1_high=a_invert, voldn_high=not b_invert)
        heard(True, False)
        levels(gpio1_high=not a_invert, voldn_high=b_invert)
        heard(False, True)
        levels(gpio1_high=a_invert, voldn_high=b_invert)
        heard(True, True)
    finally:
        s.bank.close()


def test_a_short_cos_is_debounced_away(chip: FakeCm119) -> None:
    debounce_s = 0.5  # far longer than the 0.1 s COS below, however busy the machine
    wiring = Cm108Wiring(str(chip.link), cos=(CosInput("a", gpio=1),))
    bank = Cm108PortBank(["a"], [wiring], debounce_s=debounce_s)
    bank.start()
    try:
        chip.send(0, 0xFE)  # GPIO 1 low: receiving; the first read sets the state at once
        wait_for(lambda: bank.carrier()[0])
        chip.send(0, 0xFF)  # idle, held past the debounce
        wait_for(lambda: not bank.carrier()[0])
        chip.send(0, 0xFE)  # receiving...
        time.sleep(0.1)  # ...for a tenth of a second
        assert not bank.carrier()[0]  # not held long enough yet
        chip.send(0, 0xFF)
        # Not happening: counted from its start, that COS would have shown by now.
        time.sleep(debounce_s + 0.3)
        assert not bank.carrier()[0]  # it went away before counting
        raised = time.monotonic()
        chip.send(0, 0xFE)
        wait_for(lambda: bank.carrier()[0])
        assert time.monotonic() - raised >= debounce_s
    finally:
        bank.close()


# --- losing and reopening the device ------------------------------------------------------------


def test_an_unplugged_card_is_lost_once(chip: FakeCm119, site: Site) -> None:
    chip.report()
    site.bank.set_ptt(ptt(True, False))
    assert chip.report() == A_KEYED
    chip.send(0, 0xFE)
    wait_for(lambda: site.bank.carrier()[0])
    chip.unplug()
    wait_for(lambda: site.lost)
    time.sleep(0.2)  # not happening: a second report would come within a 10 ms poll
    [(device, reason)] = site.lost
    assert device == str(chip.link)
    assert "the USB sound card was unplugged or reset" in reason
    assert list(site.bank.carrier()) == [False, False]
    assert site.bank.lost == {device} and site.bank.hidraw(device) is None
    applied = len(site.applied)
    site.bank.set_ptt(ptt(True, True))  # dropped: nothing to write to
    time.sleep(0.2)  # not happening: a PTT change is applied at once (the bank is woken)
    assert len(site.applied) == applied


def test_a_deleted_device_stops_ptt_writes(tmp_path: Path) -> None:
    hidraw = tmp_path / "hidraw2"
    hidraw.write_bytes(b"")
    lost: list[str] = []
    bank = Cm108PortBank(
        ["a"],
        [Cm108Wiring(str(hidraw), ptt=(PttGpio("a", 3),))],
        on_lost=lambda device, reason: lost.append(reason),
    )
    bank.start()
    keep = os.open(hidraw, os.O_RDONLY)  # to read what was written after the name is gone
    try:
        bank.set_ptt(ptt(True))
        wait_for(lambda: os.pread(keep, 64, 0) == report(0, 4) + report(4, 4))
        hidraw.unlink()
        wait_for(lambda: lost, timeout=5.0)  # a PTT-only device is checked every 0.2 s
        assert lost == [f"{hidraw} is gone: the USB sound card was unplugged or reset"]
        bank.set_ptt(ptt(False))
        time.sleep(0.2)  # not happening: a second loss report would come at once
        assert lost == [f"{hidraw} is gone: the USB sound card was unplugged or reset"]
        # Closing on the way out tried to unkey, through the descriptor it still had.
        assert os.pread(keep, 64, 0) == report(0, 4) + report(4, 4) + report(0, 4)
    finally:
        os.close(keep)
        bank.close()


def test_reopen_while_missing_then_back_unkeyed(chip: FakeCm119, site: Site) -> None:
    device = str(chip.link)
    chip.report()
    site.bank.set_ptt(ptt(True, False))
    assert chip.report() == A_KEYED
    chip.unplug()
    wait_for(lambda: site.lost)
    with pytest.raises(Cm108Error) as info:
        site.bank.reopen(device)
    assert str(info.value) == f"cannot open {device}: No such file or directory"
    assert site.bank.lost == {device}

    chip.plug()  # the card is back
    site.bank.reopen(device)
    assert site.bank.lost == set()
    assert chip.report() == IDLE  # reopened unkeyed...
    assert chip.quiet()  # ...and nothing keyed until the engine asks
    site.bank.set_ptt(ptt(True, False))  # the PTT the engine held all along
    assert chip.report() == A_KEYED
    chip.send(0, 0xFE)
    wait_for(lambda: site.bank.carrier()[0])
    assert len(site.lost) == 1


def test_a_missing_device_at_start(tmp_path: Path) -> None:
    missing = tmp_path / "hidraw9"
    lost: list[tuple[str, str]] = []
    bank = Cm108PortBank(
        ["a"],
        [Cm108Wiring(str(missing), ptt=(PttGpio("a", 3),))],
        on_lost=lambda device, reason: lost.append((device, reason)),
    )
    with pytest.raises(Cm108Error, match=f"^cannot open {missing}: No such file or directory$"):
        bank.start()
    bank.start(tolerate_missing=True)
    assert lost == [(str(missing), f"cannot open {missing}: No such file or directory")]
    bank.set_ptt(ptt(True))  # nothing to write to: dropped
    bank.close()
    assert not missing.exists()


# --- finding the hidraw from the radio's sound device -------------------------------------------


@pytest.fixture
def sysfs(tmp_path: Path) -> Path:
    """A CM119 as ALSA card 1 (its HID is hidraw0) and a card 2 without HID."""
    sys = tmp_path / "sys"
    fob = usb_device(sys, "1-1", 0x0D8C, 0x013A, "USB Audio Device")
    sound_card(sys, fob / "1-1:1.0", 1, "Device")
    hidraw_node(fob, "1-1:1.3", "0003:0D8C:013A.0001", "hidraw0")
    plain = usb_device(sys, "1-2", 0x0D8C, 0x0102, "USB Sound Device")
    sound_card(sys, plain / "1-2:1.0", 2, "Sound")
    return sys


def test_find_hidraw_from_a_portaudio_device_name(sysfs: Path, tmp_path: Path) -> None:
    dev = tmp_path / "dev"
    assert find_hidraw(PORTAUDIO_NAME, sysfs, dev) == dev / "hidraw0"
    assert find_hidraw_of_sound_device("USB Audio Device: - (hw:1,0)", sysfs, dev) == (
        dev / "hidraw0"
    )
    with pytest.raises(Cm108Error, match=r"card2 'Sound' .* has no HID GPIO"):
        find_hidraw_of_sound_device("USB Sound Device: - (hw:2,0)", sysfs, dev)
    with pytest.raises(Cm108Error, match=r"^sound device '3' is a PortAudio index"):
        find_hidraw_of_sound_device("3", sysfs, dev)


def test_the_bank_finds_the_chip_of_the_radios_sound_card(sysfs: Path, tmp_path: Path) -> None:
    dev = tmp_path / "dev"
    dev.mkdir()
    chip = FakeCm119(dev / "hidraw0")
    s = Site(config(cm119_radios(None)), sysfs=sysfs, dev=dev)
    try:
        s.bank.start()
        assert s.bank.hidraw(PORTAUDIO_NAME) == dev / "hidraw0"
        assert chip.report() == IDLE
        s.bank.set_ptt(ptt(False, True))
        assert chip.report() == B_KEYED

        # Unplugged: the card leaves sysfs, so it is looked for again at each reopen.
        chip.unplug()
        wait_for(lambda: s.lost)
        (sysfs / "class/sound/card1").unlink()
        with pytest.raises(Cm108Error) as info:
            s.bank.reopen(PORTAUDIO_NAME)
        assert str(info.value) == (
            f"no sound card matches '{PORTAUDIO_NAME}' "
            "(sound cards found: card2 'Sound' (USB Sound Device))"
        )
    finally:
        with contextlib.suppress(Cm108Error):
            s.bank.close()
        chip.unplug()


def test_two_names_for_one_chip_are_refused(sysfs: Path, tmp_path: Path) -> None:
    """A port on one radio and the sound card on the other, both reaching hidraw0: each would
    write reports making the other's PTT GPIO an input, so the second is not opened."""
    dev = tmp_path / "dev"
    dev.mkdir()
    chip = FakeCm119(dev / "hidraw0")
    radios = cm119_radios(None)
    radios["a"]["ptt"]["port"] = str(dev / "hidraw0")
    radios["a"]["squelch"] = {"method": "vox"}
    s = Site(config(radios), sysfs=sysfs, dev=dev)
    try:
        s.bank.start(tolerate_missing=True)
        [(device, reason)] = s.lost
        assert device == PORTAUDIO_NAME
        assert reason == (
            f"{dev / 'hidraw0'} is already the CM108 of a (through {dev / 'hidraw0'}): "
            "give the radios on one CM108 the same port"
        )
    finally:
        s.bank.close()
        chip.unplug()
