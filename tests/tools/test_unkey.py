"""`unkey-all`: every transmitter of a config released without the daemon, each failure named.

Serial PTT runs against real pseudo-terminals and pyserial's loop:// port (which reflects RTS
into CTS and DTR into DSR, so the levels applied at open can be read back); CM108 PTT against a
regular file standing in for /dev/hidrawN.
"""

from __future__ import annotations

import os
import termios
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from serial.urlhandler.protocol_loop import Serial as LoopSerial  # type: ignore[import-untyped, unused-ignore]

from gateway.config import Config, parse_config_text
from gateway.tools.unkey_all import SerialLine, UnkeyReport, UnkeyResult, cm108_report, unkey_all
from tests.support.emulators.kenwood import KenwoodRadio

MISSING = "/dev/crosspatch-test-no-such-device"


def site(
    radios: dict[str, dict[str, Any]], links: dict[str, dict[str, Any]] | None = None
) -> Config:
    """A valid config: one talkgroup per port, each hardware radio on its own sound card."""
    ports = [*radios, *(links or {})]
    document: dict[str, Any] = {
        "gateway": {"id": "test"},
        "agencies": {
            "ca": {
                "name": "Canadian agency",
                "country": "CA",
                "talkgroups": {
                    name: ({} if name in (links or {}) else {"rx_mhz": 142.47}) for name in ports
                },
            }
        },
        "radios": {},
        "links": {},
    }
    for name, settings in radios.items():
        radio: dict[str, Any] = {"talkgroup": f"ca/{name}", **settings}
        if "simulated" not in settings:
            radio.setdefault("audio", {"input": f"card-{name}", "output": f"card-{name}"})
            if "control" not in settings:
                radio.setdefault("squelch", {"method": "vox"})
        document["radios"][name] = radio
    for name, settings in (links or {}).items():
        document["links"][name] = {"talkgroup": f"ca/{name}", **settings}
    return parse_config_text(yaml.safe_dump(document, sort_keys=False), filename="site.yaml")


def by_port(report: UnkeyReport) -> dict[str, UnkeyResult]:
    return {result.port: result for result in report.results}


@pytest.fixture
def pty_path() -> Iterator[str]:
    """The slave side of a real pseudo-terminal: a tty pyserial opens like a USB-serial cable."""
    master, slave = os.openpty()
    try:
        yield os.ttyname(slave)
    finally:
        os.close(slave)
        os.close(master)


@pytest.fixture
def second_pty() -> Iterator[tuple[str, int]]:
    master, slave = os.openpty()
    try:
        yield os.ttyname(slave), slave
    finally:
        os.close(slave)
        os.close(master)


class RecordingLoop(LoopSerial):  # type: ignore[misc, unused-ignore]
    """pyserial's loop:// port, noting the levels asked for before open and seen after it."""

    opened: list[RecordingLoop] = []  # noqa: RUF012 (a test-wide record, on purpose)

    def open(self) -> None:
        self.before_open = (self.rts, self.dtr)
        super().open()
        # loop:// wires RTS to CTS and DTR to DSR: this is what the other end sees.
        self.seen_after_open = (self.cts, self.dsr)
        RecordingLoop.opened.append(self)


def recording_loop(port: str) -> SerialLine:
    line = RecordingLoop(None)
    line.port = port
    return line


@pytest.fixture
def loops() -> Iterator[list[RecordingLoop]]:
    RecordingLoop.opened.clear()
    yield RecordingLoop.opened
    RecordingLoop.opened.clear()


# --- serial PTT ---------------------------------------------------------------------------------


def test_rts_on_a_real_pty(pty_path: str) -> None:
    report = unkey_all(site({"r1": {"ptt": {"method": "rts", "port": pty_path}}}))
    assert report.exit_code == 0
    assert report.results == (UnkeyResult("r1", "rts", True, f"RTS negated on {pty_path}"),)
    assert report.lines() == [
        f"r1: rts: released: RTS negated on {pty_path}",
        "unkey-all: 1 released, 0 with nothing to release",
    ]


def test_dtr_ptt_defaults_to_the_cat_port(pty_path: str) -> None:
    cfg = site(
        {
            "r1": {
                "control": {"driver": "kenwood", "port": pty_path, "baud": 19200},
                "ptt": {"method": "dtr"},
            }
        }
    )
    report = unkey_all(cfg)
    assert report.results == (UnkeyResult("r1", "dtr", True, f"DTR negated on {pty_path}"),)


def test_inverted_ptt_stays_asserted_after_close(second_pty: tuple[str, int]) -> None:
    """Closing a tty with HUPCL drops RTS/DTR, which keys an inverted PTT: it must be cleared."""
    path, slave = second_pty
    attributes = termios.tcgetattr(slave)
    attributes[2] |= termios.HUPCL
    termios.tcsetattr(slave, termios.TCSANOW, attributes)
    report = unkey_all(site({"r1": {"ptt": {"method": "rts", "port": path, "invert": True}}}))
    assert report.exit_code == 0
    assert report.results[0].detail == f"RTS asserted (inverted PTT) on {path}"
    assert not termios.tcgetattr(slave)[2] & termios.HUPCL


def test_normal_ptt_leaves_the_hang_up_on_close_alone(second_pty: tuple[str, int]) -> None:
    path, slave = second_pty
    attributes = termios.tcgetattr(slave)
    attributes[2] |= termios.HUPCL
    termios.tcsetattr(slave, termios.TCSANOW, attributes)
    assert unkey_all(site({"r1": {"ptt": {"method": "rts", "port": path}}})).exit_code == 0
    assert termios.tcgetattr(slave)[2] & termios.HUPCL


def test_levels_are_set_before_open(loops: list[RecordingLoop]) -> None:
    report = unkey_all(
        site({"r1": {"ptt": {"method": "rts", "port": "loop://"}}}), serial_factory=recording_loop
    )
    assert report.exit_code == 0
    [line] = loops
    # RTS keys r1: negated. DTR keys nobody: negated too (what the kernel leaves after close).
    assert line.before_open == (False, False)
    assert line.seen_after_open == (False, False)
    assert not line.is_open


@pytest.mark.parametrize(
    ("rts_invert", "dtr_invert", "levels"),
    [(False, False, (False, False)), (True, False, (True, False)), (False, True, (False, True))],
)
def test_two_radios_on_one_cable_are_released_by_one_open(
    loops: list[RecordingLoop], rts_invert: bool, dtr_invert: bool, levels: tuple[bool, bool]
) -> None:
    """Radio A keyed by RTS, radio B by DTR of the same adapter: releasing A must not key B."""
    cfg = site(
        {
            "a": {"ptt": {"method": "rts", "port": "loop://", "invert": rts_invert}},
            "b": {"ptt": {"method": "dtr", "port": "loop://", "invert": dtr_invert}},
        }
    )
    report = unkey_all(cfg, serial_factory=recording_loop)
    assert report.exit_code == 0
    assert [r.port for r in report.results] == ["a", "b"]
    [line] = loops
    assert line.before_open == levels
    assert line.seen_after_open == levels


def test_pyserial_urls_work_without_a_seam() -> None:
    report = unkey_all(site({"r1": {"ptt": {"method": "dtr", "port": "loop://", "invert": True}}}))
    assert report.results == (
        UnkeyResult("r1", "dtr", True, "DTR asserted (inverted PTT) on loop://"),
    )


def test_missing_serial_device_is_one_line() -> None:
    report = unkey_all(site({"r1": {"ptt": {"method": "rts", "port": MISSING}}}))
    assert report.exit_code == 1
    assert report.results == (
        UnkeyResult("r1", "rts", False, f"cannot open {MISSING}: No such file or directory"),
    )
    assert (
        report.lines()[-1]
        == "unkey-all: 0 released, 1 NOT released (r1), 0 with nothing to release"
    )


def test_a_file_that_is_not_a_tty(tmp_path: Path) -> None:
    path = tmp_path / "not-a-tty"
    path.write_bytes(b"")
    [result] = unkey_all(site({"r1": {"ptt": {"method": "rts", "port": str(path)}}})).results
    assert not result.ok
    assert result.detail.startswith(f"cannot open {path}: ")
    assert "\n" not in result.detail


def test_a_hung_device_times_out_and_the_others_are_still_released(
    pty_path: str, tmp_path: Path
) -> None:
    hidraw = tmp_path / "hidraw0"
    hidraw.write_bytes(b"")
    release = threading.Event()

    def factory(port: str) -> SerialLine:
        if port != "loop://":
            return recording_loop(port)

        class Hung(RecordingLoop):
            def open(self) -> None:
                release.wait(10)  # a USB adapter wedged in the kernel

        line = Hung(None)
        line.port = port
        return line

    cfg = site(
        {
            "hung": {"ptt": {"method": "rts", "port": "loop://"}},
            "fine": {"ptt": {"method": "cm108", "port": str(hidraw)}},
        }
    )
    started = time.monotonic()
    try:
        report = unkey_all(cfg, timeout_s=0.3, serial_factory=factory)
    finally:
        release.set()
    assert time.monotonic() - started < 2
    results = by_port(report)
    assert results["hung"] == UnkeyResult(
        "hung", "rts", False, "no answer from loop:// within 0.3 s"
    )
    assert results["fine"].ok
    assert report.exit_code == 1


# --- CM108 --------------------------------------------------------------------------------------


def test_cm108_report_layout() -> None:
    # [report id, HID_OR0, HID_OR1 data, HID_OR2 direction, HID_OR3]: GPIO 3 output, low.
    assert cm108_report(mask=1 << 2, data=0) == bytes([0x00, 0x00, 0x00, 0x04, 0x00])


def test_cm108_writes_gpio_low(tmp_path: Path) -> None:
    hidraw = tmp_path / "hidraw3"
    hidraw.write_bytes(b"")
    report = unkey_all(site({"r1": {"ptt": {"method": "cm108", "port": str(hidraw)}}}))
    assert report.results == (UnkeyResult("r1", "cm108", True, f"GPIO 3 set low on {hidraw}"),)
    assert hidraw.read_bytes() == b"\x00\x00\x00\x04\x00"


def test_two_radios_on_one_cm108_get_one_report(tmp_path: Path) -> None:
    """One report sets every GPIO's direction, so both PTTs go in it or one would float."""
    hidraw = tmp_path / "hidraw1"
    hidraw.write_bytes(b"")
    cfg = site(
        {
            "a": {"ptt": {"method": "cm108", "port": str(hidraw), "gpio": 1}},
            "b": {"ptt": {"method": "cm108", "port": str(hidraw), "gpio": 4, "invert": True}},
        }
    )
    report = unkey_all(cfg)
    assert report.exit_code == 0
    assert hidraw.read_bytes() == bytes([0x00, 0x00, 0b1000, 0b1001, 0x00])


def test_missing_hidraw_is_reported_and_not_created() -> None:
    report = unkey_all(site({"r1": {"ptt": {"method": "cm108", "port": MISSING}}}))
    assert report.results == (
        UnkeyResult("r1", "cm108", False, f"cannot open {MISSING}: No such file or directory"),
    )
    assert not Path(MISSING).exists()


def test_cm108_without_port_looks_for_the_sound_cards_hidraw() -> None:
    # This machine has no such USB sound card: one clear line, and the fix.
    [result] = unkey_all(site({"r1": {"ptt": {"method": "cm108"}}})).results
    assert not result.ok
    assert "set ptt.port: /dev/hidrawN" in result.detail
    assert "\n" not in result.detail


# --- CAT, nothing to release, and the mix ---------------------------------------------------------


def test_cat_ptt_is_released_through_the_driver() -> None:
    with KenwoodRadio() as radio:
        radio.ptt = True  # left keyed by a crashed daemon
        cfg = site({"r1": {"control": {"driver": "kenwood", "port": radio.path}}})
        report = unkey_all(cfg)
        assert not radio.ptt
    assert report.exit_code == 0
    [result] = report.results
    assert (result.port, result.method, result.ok) == ("r1", "cat", True)
    assert "kenwood unkey sent" in result.detail


def test_cat_radio_that_cannot_be_reached_is_not_released() -> None:
    cfg = site({"r1": {"control": {"driver": "kenwood", "port": MISSING}}})
    report = unkey_all(cfg)
    assert report.exit_code == 1
    [result] = report.results
    assert (result.method, result.ok) == ("cat", False)
    assert f"cannot open {MISSING}" in result.detail
    assert report.lines()[0].startswith("r1: cat: NOT RELEASED: ")


def test_silent_cat_radio_is_not_released_within_the_deadline() -> None:
    with KenwoodRadio() as radio:
        radio.silent = True
        cfg = site({"r1": {"control": {"driver": "kenwood", "port": radio.path}}})
        started = time.monotonic()
        report = unkey_all(cfg, timeout_s=3.0)
        assert time.monotonic() - started < 4.0
    [result] = report.results
    assert not result.ok and report.exit_code == 1


def test_nothing_to_release() -> None:
    cfg = site(
        {"sim": {"simulated": {}}, "vox": {"ptt": {"method": "none"}}},
        links={
            "peer": {
                "protocol": "rtp",
                "local": "127.0.0.1:40000",
                "remote": "127.0.0.1:40002",
                "insecure": True,
            }
        },
    )
    report = unkey_all(cfg)
    assert report.exit_code == 0
    assert [(r.port, r.method, r.ok, r.needed) for r in report.results] == [
        ("sim", "simulated", True, False),
        ("vox", "none", True, False),
        ("peer", "link", True, False),
    ]
    assert report.lines()[-1] == "unkey-all: 0 released, 3 with nothing to release"


def test_one_failure_does_not_stop_the_others(pty_path: str, tmp_path: Path) -> None:
    hidraw = tmp_path / "hidraw0"
    hidraw.write_bytes(b"")
    cfg = site(
        {
            "gone": {"ptt": {"method": "rts", "port": MISSING}},
            "serial": {"ptt": {"method": "dtr", "port": pty_path}},
            "cat": {"control": {"driver": "icom", "port": "/dev/ttyUSB7", "civ_address": 0x94}},
            "gpio": {"ptt": {"method": "cm108", "port": str(hidraw), "gpio": 2}},
            "sim": {"simulated": {}},
        }
    )
    report = unkey_all(cfg)
    assert [(r.port, r.ok) for r in report.results] == [
        ("gone", False),
        ("serial", True),
        ("cat", False),
        ("gpio", True),
        ("sim", True),
    ]
    assert hidraw.read_bytes() == b"\x00\x00\x00\x02\x00"
    assert report.exit_code == 1
    assert report.lines()[-1] == (
        "unkey-all: 2 released, 2 NOT released (gone, cat), 1 with nothing to release"
    )
    assert all("\n" not in line for line in report.lines())
