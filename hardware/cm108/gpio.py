"""CM108/CM119 (and compatible) USB sound-card GPIO: PTT out, COS in, through Linux hidraw.

Reports, as used here (CM108/CM119 datasheets' HID_OR0..3 / HID_IR0..3; the output layout is
Dire Wolf's `src/cm108.c` after its issue 210 fix; the input layout is the one app_rpt's
chan_simpleusb/chan_usbradio poll, and the KD8YHB CM119 notes agree):

- Output report, 5 bytes written to hidraw: report id 0, HID_OR0 = 0 (the next two bytes are
  GPIO), HID_OR1 = GPIO data (bit n-1 = GPIO n, 1 = high), HID_OR2 = GPIO direction (1 =
  output), HID_OR3 = 0 (SPDIF). The kernel needs all 5 bytes: 4 fail with EPIPE.
- Input report, 4 bytes (the chip has no report ids, so none is prefixed): byte 0 = HID_IR0,
  the buttons: bit 0 VOLUP, bit 1 VOLDN, bit 2 PLAY-MUTE, bit 3 REC-MUTE, bits 7..6 = 00 when
  byte 1 carries GPIO; byte 1 = HID_IR1, the GPIO input levels (bit n-1 = GPIO n, 1 = high);
  bytes 2 and 3 are generic registers, unused. NOTE: the GPIO levels are in byte 1, not byte 0;
  byte 0 holds the buttons.

COS polarity: the inputs are pulled up inside the chip and a radio's open-collector COS pulls
them low, so by default a COS input is active when LOW, as app_rpt's `carrierfrom=usb` reads
both GPIO and button bits (`keyed = !(buf[loc] & mask)`); `cos_active_low=False` is its
`usbinvert`. The VOLUP/VOLDN button inputs are a common COS (VOLDN) and CTCSS (VOLUP) input on
modified fobs and on the DMK URI, so a button can be the COS source instead of a GPIO.

Reading: on Linux >= 5.11 hidraw answers HIDIOCGINPUT, a GET_REPORT control transfer, which is
how app_rpt polls (the chip's interrupt reports are not relied upon). Where it is refused (an
older kernel, or a file or FIFO standing in for the device in tests) the reports the device
queued are read instead, the newest winning; before any report the COS reads as not receiving.

A report sets the direction of every GPIO, so every radio on one chip (the two channels of a
CM119) goes through one `Cm108Device`, whose reports carry every PTT GPIO it drives; `Cm108` is
that device with one radio on it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import threading
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from gateway.core.errors import UserError

DEFAULT_PTT_GPIO = 3  # homebrew fobs and the commercial interfaces use GPIO 3 (Dire Wolf)
INPUT_REPORT_SIZE = 4
OUTPUT_REPORT_SIZE = 5

Button = Literal["volup", "voldn"]
_BUTTON_BITS: dict[str, int] = {"volup": 0x01, "voldn": 0x02}

# USB ids accepted as CM108-compatible GPIO (Dire Wolf's GOOD_DEVICE list):
# C-Media 0d8c: 0008-000f CM108/CM109/CM119 (programmable by MSEL/MODE), 0012 CM108B,
# 0013 CM119B, 0139 CM108AH, 013a CM119A, 013c CM108AH/HS100; SSS 0c76: 1605 SSS1621,
# 1607 and 160b SSS1623 (two GPIO); pid.codes 1209:7388 the AIOC cable (emulates a CM108).
ACCEPTED_USB_IDS: dict[int, frozenset[int]] = {
    0x0D8C: frozenset({*range(0x0008, 0x0010), 0x0012, 0x0013, 0x0139, 0x013A, 0x013C}),
    0x0C76: frozenset({0x1605, 0x1607, 0x160B}),
    0x1209: frozenset({0x7388}),
}


class Cm108Error(UserError):
    """A CM108 GPIO problem, as one sentence naming the device and the reason."""


def gpio_bit(gpio: int) -> int:
    """The report bit of GPIO `gpio` (1..8)."""
    if not 1 <= gpio <= 8:
        raise Cm108Error(f"CM108 GPIO {gpio} does not exist: GPIOs are numbered 1 to 8")
    return 1 << (gpio - 1)


def cm108_report(mask: int, data: int) -> bytes:
    """The CM108/CM119 HID output report, as written to Linux hidraw.

    Byte 0 is the report id (0); then HID_OR0 (0: the next two bytes are GPIO), HID_OR1 (GPIO
    data, 1 = high), HID_OR2 (GPIO direction, 1 = output), HID_OR3 (SPDIF, unused). Same layout
    as Dire Wolf's cm108.c after its issue 210 fix (data before direction). The kernel needs all
    5 bytes: 4 fail with EPIPE.
    """
    return bytes((0x00, 0x00, data & 0xFF, mask & 0xFF, 0x00))


@dataclass(frozen=True)
class Cm108Inputs:
    """One input report: byte 0 the buttons, byte 1 the GPIO levels."""

    buttons: int
    gpio: int

    @classmethod
    def from_bytes(cls, report: bytes) -> Cm108Inputs:
        if len(report) < 2:
            raise ValueError(f"a CM108 input report has {INPUT_REPORT_SIZE} bytes: {report!r}")
        return cls(buttons=report[0], gpio=report[1])

    def gpio_high(self, gpio: int) -> bool:
        return bool(self.gpio & gpio_bit(gpio))

    def button_high(self, button: Button) -> bool:
        return bool(self.buttons & _BUTTON_BITS[button])


def _hidiocginput(length: int) -> int:
    # _IOC(_IOC_WRITE | _IOC_READ, 'H', 0x0A, len) from linux/hidraw.h (Linux 5.11).
    return (3 << 30) | (length << 16) | (ord("H") << 8) | 0x0A


def _strerror(exc: OSError) -> str:
    return os.strerror(exc.errno) if exc.errno is not None else str(exc)


@dataclass(frozen=True)
class PttGpio:
    """A radio keyed by a GPIO driven as an output; `invert`: keyed while the GPIO is low."""

    radio: str
    gpio: int
    invert: bool = False

    def high(self, keyed: bool) -> bool:
        """The GPIO level that puts this PTT in state `keyed`."""
        return keyed != self.invert


@dataclass(frozen=True)
class CosInput:
    """A radio's COS on a GPIO input or a volume button input (exactly one of the two).

    `active_low`: receiving while the input is low, the default (see the module doc); False is
    app_rpt's `usbinvert`.
    """

    radio: str
    gpio: int | None = None
    button: Button | None = None
    active_low: bool = True

    @property
    def source(self) -> str:
        return f"GPIO {self.gpio}" if self.gpio is not None else f"the {self.button} button"

    def active(self, inputs: Cm108Inputs | None) -> bool:
        """Receiving, by this input report; before any report, not receiving."""
        if inputs is None:
            return False
        if self.gpio is not None:
            high = inputs.gpio_high(self.gpio)
        else:
            assert self.button is not None
            high = inputs.button_high(self.button)
        return high != self.active_low


def check_gpio_use(where: str, ptt: Sequence[PttGpio], cos: Sequence[CosInput]) -> None:
    """Raises `Cm108Error` unless the PTT GPIOs and COS inputs on one CM108 can work together:
    each GPIO is one radio's PTT output or COS input, a radio has one of each."""
    keyed_by: dict[int, str] = {}
    for p in ptt:
        gpio_bit(p.gpio)
        if p.gpio in keyed_by:
            raise Cm108Error(f"{where}: GPIO {p.gpio} keys both {keyed_by[p.gpio]} and {p.radio}")
        if p.radio in keyed_by.values():
            raise Cm108Error(f"{where}: {p.radio} has two PTT GPIOs")
        keyed_by[p.gpio] = p.radio
    heard_by: dict[str, str] = {}
    for c in cos:
        if c.gpio is None and c.button is None:
            raise Cm108Error(f"{where}: the COS of {c.radio} names no input (gpio or button)")
        if c.gpio is not None and c.button is not None:
            raise Cm108Error(
                f"{where}: COS comes from GPIO {c.gpio} or the {c.button} button, not both"
            )
        if c.gpio is not None:
            gpio_bit(c.gpio)
            if c.gpio in keyed_by:
                raise Cm108Error(
                    f"{where}: GPIO {c.gpio} keys {keyed_by[c.gpio]}; "
                    f"it cannot also be the COS input of {c.radio}"
                )
        if c.source in heard_by:
            raise Cm108Error(
                f"{where}: {c.source} is the COS input of both {heard_by[c.source]} and {c.radio}"
            )
        if c.radio in heard_by.values():
            raise Cm108Error(f"{where}: {c.radio} has two COS inputs")
        heard_by[c.source] = c.radio


class Cm108Device:
    """One CM108/CM119 on /dev/hidrawN, shared by every radio wired to it.

    A CM119 serves two radios (its left and right channels), each keyed by its own GPIO and heard
    on its own input. The chip takes GPIO direction and data for all GPIOs in one report, so every
    report written here carries every PTT GPIO of the device: direction = all of them, data = the
    level of each (keyed or not, inversion applied). A report carrying one radio's GPIO alone
    would turn the other's PTT GPIO into an input and drop its PTT. One input report read serves
    every radio's COS.

    Opening writes the all-unkeyed report at once (opening the device itself changes nothing);
    closing unkeys first. The chip keeps its GPIO levels after the descriptor closes, so unlike a
    tty there is no hang-up to reckon with. Thread-safe: a lock serialises every use of the
    descriptors, so closing never races a read onto a descriptor number the kernel reused.
    """

    def __init__(
        self,
        hidraw_path: str | Path,
        *,
        ptt: Sequence[PttGpio] = (),
        cos: Sequence[CosInput] = (),
    ) -> None:
        self.path = Path(hidraw_path)
        check_gpio_use(str(self.path), ptt, cos)
        self.ptt = tuple(ptt)
        self.cos = tuple(cos)
        self._ptt_by_radio = {p.radio: p for p in self.ptt}
        self.keyed: frozenset[str] = frozenset()  # radios keyed by the last report written
        self._write_fd: int | None = None
        self._read_fd: int | None = None
        self._get_report = False
        self._pending = b""
        self._last: Cm108Inputs | None = None
        self._lock = threading.Lock()

    @property
    def is_open(self) -> bool:
        return self._write_fd is not None or self._read_fd is not None

    def report(self, keyed: Collection[str]) -> bytes:
        """The output report keying exactly the radios in `keyed` (every other PTT unkeyed)."""
        unknown = set(keyed) - self._ptt_by_radio.keys()
        if unknown:
            wired = ", ".join(self._ptt_by_radio) or "none"
            raise Cm108Error(
                f"{self.path}: {', '.join(sorted(unknown))} has no PTT GPIO here "
                f"(radios keyed here: {wired})"
            )
        mask = data = 0
        for p in self.ptt:
            bit = gpio_bit(p.gpio)
            mask |= bit
            if p.high(p.radio in keyed):
                data |= bit
        return cm108_report(mask=mask, data=data)

    def open(self) -> None:
        """Open the device and unkey every PTT. Raises `Cm108Error` with the reason."""
        with self._lock:
            if self.is_open:
                return
            # No O_CREAT: a missing /dev/hidrawN is an error, never a new regular file.
            # O_NOCTTY: a tty standing in for the device (tests) must not become ours.
            flags = os.O_CLOEXEC | os.O_NOCTTY
            try:
                if self.ptt:
                    self._write_fd = os.open(self.path, os.O_WRONLY | flags)
                if self.cos:
                    self._read_fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK | flags)
            except OSError as exc:
                self._close_fds()
                raise Cm108Error(f"cannot open {self.path}: {_strerror(exc)}") from None
            if self.ptt:
                try:
                    self._write(frozenset())
                except Cm108Error:
                    self._close_fds()
                    raise
            if self._read_fd is not None:
                self._get_report = self._request_input() is not None

    def set_ptt(self, keyed: Collection[str]) -> None:
        """Key exactly the radios in `keyed`, unkey the others: one output report."""
        with self._lock:
            self._write(frozenset(keyed))

    def key(self, radio: str, on: bool) -> None:
        """Key (on=True) or unkey one radio, the others as they are."""
        with self._lock:
            self._write(self.keyed | {radio} if on else self.keyed - {radio})

    def read_inputs(self) -> Cm108Inputs | None:
        """The newest input report, or None if the device has sent none yet."""
        with self._lock:
            if self._read_fd is None:
                raise Cm108Error(f"{self.path} is not open for COS")
            if self._get_report:
                report = self._request_input()
                if report is not None:
                    self._last = report
                    return report
            self._drain()
            return self._last

    def squelch(self) -> dict[str, bool]:
        """Each COS radio's (undebounced) receiving state, from one input report."""
        inputs = self.read_inputs()
        return {c.radio: c.active(inputs) for c in self.cos}

    def check_present(self) -> None:
        """Raises `Cm108Error` unless the path still names the device that is open.

        Unplugging makes udev remove /dev/hidrawN, and a card plugged in again gets a new node.
        A device only keyed through is otherwise not touched between transmissions, so its loss
        would show only at the next keying; this stat costs no USB traffic.
        """
        with self._lock:
            fd = self._write_fd if self._write_fd is not None else self._read_fd
            if fd is None:
                raise Cm108Error(f"{self.path} is not open")
            try:
                opened = os.fstat(fd)
                named = self.path.stat()
            except OSError:
                raise Cm108Error(
                    f"{self.path} is gone: the USB sound card was unplugged or reset"
                ) from None
            if (opened.st_dev, opened.st_ino) != (named.st_dev, named.st_ino):
                raise Cm108Error(
                    f"{self.path} is another device now: the USB sound card was unplugged or reset"
                )

    def close(self) -> None:
        """Unkey every PTT, then close. Idempotent; raises `Cm108Error` (after closing) if the
        unkey failed."""
        with self._lock:
            problem: Cm108Error | None = None
            if self._write_fd is not None:
                try:
                    self._write(frozenset())
                except Cm108Error as exc:
                    problem = exc
            self._close_fds()
        if problem is not None:
            raise problem

    def __enter__(self) -> Cm108Device:
        self.open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------------ under the lock
    def _write(self, keyed: frozenset[str]) -> None:
        report = self.report(keyed)
        if self._write_fd is None:
            raise Cm108Error(f"{self.path} is not open")
        try:
            written = os.write(self._write_fd, report)
        except OSError as exc:
            raise Cm108Error(self._failure("write to", exc)) from None
        if written != len(report):
            raise Cm108Error(
                f"short write to {self.path} ({written} of {len(report)} bytes): PTT not set"
            )
        self.keyed = keyed

    def _request_input(self) -> Cm108Inputs | None:
        assert self._read_fd is not None
        buffer = bytearray(1 + INPUT_REPORT_SIZE)  # byte 0: report id 0, returned in place
        try:
            fcntl.ioctl(self._read_fd, _hidiocginput(len(buffer)), buffer)
        except OSError as exc:
            if exc.errno in (errno.ENODEV, errno.EIO) and self._get_report:
                raise Cm108Error(self._failure("read from", exc)) from None
            return None  # ENOTTY/EINVAL: not hidraw or an older kernel; read reports instead
        return Cm108Inputs.from_bytes(bytes(buffer[1:]))

    def _drain(self) -> None:
        assert self._read_fd is not None
        while True:
            try:
                chunk = os.read(self._read_fd, 64 * INPUT_REPORT_SIZE)
            except BlockingIOError:
                break
            except OSError as exc:
                raise Cm108Error(self._failure("read from", exc)) from None
            if not chunk:
                break  # end of a file, or a FIFO with no writer: nothing new
            # hidraw hands one report per read; a file or FIFO may hold several, or a part.
            data = self._pending + chunk
            whole = len(data) - len(data) % INPUT_REPORT_SIZE
            if whole:
                self._last = Cm108Inputs.from_bytes(data[whole - INPUT_REPORT_SIZE : whole])
            self._pending = data[whole:]

    def _failure(self, action: str, exc: OSError) -> str:
        if exc.errno in (errno.ENODEV, errno.EIO):
            return f"cannot {action} {self.path}: the USB sound card was unplugged or reset"
        return f"cannot {action} {self.path}: {_strerror(exc)}"

    def _close_fds(self) -> None:
        for fd in (self._write_fd, self._read_fd):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._write_fd = self._read_fd = None
        self._pending = b""


_RADIO = "radio"  # the one radio of a `Cm108`


class Cm108:
    """PTT on one GPIO and optionally COS on a GPIO or volume button, via /dev/hidrawN: a
    `Cm108Device` with one radio on it (for tools and tests that drive one radio).

    `ptt_gpio=None` for a radio keyed some other way whose COS comes from the sound card.
    Opening writes the inactive PTT level at once; closing unkeys first.
    """

    def __init__(
        self,
        hidraw_path: str | Path,
        ptt_gpio: int | None = DEFAULT_PTT_GPIO,
        cos_gpio: int | None = None,
        *,
        cos_button: Button | None = None,
        ptt_invert: bool = False,
        cos_active_low: bool = True,
    ) -> None:
        self.path = Path(hidraw_path)
        if cos_gpio is not None and cos_button is not None:
            raise Cm108Error(
                f"{self.path}: COS comes from GPIO {cos_gpio} or the {cos_button} button, not both"
            )
        if ptt_gpio is not None:
            gpio_bit(ptt_gpio)
            if ptt_gpio == cos_gpio:
                raise Cm108Error(f"{self.path}: GPIO {ptt_gpio} cannot be both PTT and COS")
        self.ptt_gpio = ptt_gpio
        self.cos_gpio = cos_gpio
        self.cos_button = cos_button
        self.ptt_invert = ptt_invert
        self.cos_active_low = cos_active_low
        ptt = [PttGpio(_RADIO, ptt_gpio, ptt_invert)] if ptt_gpio is not None else []
        has_cos = cos_gpio is not None or cos_button is not None
        cos = [CosInput(_RADIO, cos_gpio, cos_button, cos_active_low)] if has_cos else []
        self.device = Cm108Device(self.path, ptt=ptt, cos=cos)

    @property
    def has_cos(self) -> bool:
        return bool(self.device.cos)

    def report(self, on: bool) -> bytes:
        """The output report that puts the PTT GPIO in state `on` (inversion applied)."""
        if self.ptt_gpio is None:
            raise Cm108Error(f"{self.path}: no PTT GPIO configured")
        return self.device.report({_RADIO} if on else ())

    def open(self) -> None:
        """Open the device and set PTT inactive. Raises `Cm108Error` with the reason."""
        self.device.open()

    def set_ptt(self, on: bool) -> None:
        """Key (on=True) or unkey: one output report."""
        if self.ptt_gpio is None:
            raise Cm108Error(f"{self.path}: no PTT GPIO configured")
        self.device.set_ptt({_RADIO} if on else ())

    def read_inputs(self) -> Cm108Inputs | None:
        """The newest input report, or None if the device has sent none yet."""
        return self.device.read_inputs()

    def read_cos(self) -> bool:
        """True while the radio is receiving (COS active)."""
        if not self.device.cos:
            raise Cm108Error(f"{self.path}: no COS input configured (cos_gpio or cos_button)")
        return self.device.cos[0].active(self.device.read_inputs())

    def close(self) -> None:
        """Unkey, then close. Idempotent; raises `Cm108Error` (after closing) if unkey failed."""
        self.device.close()

    def __enter__(self) -> Cm108:
        self.open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


# --- which hidraw belongs to a sound card ----------------------------------------------------


@dataclass(frozen=True)
class _Card:
    number: int
    id: str
    usb: Path | None  # the USB device directory the card is on, if any
    product: str

    @property
    def label(self) -> str:
        where = f"{self.product}" if self.usb is not None else "not USB"
        return f"card{self.number} '{self.id}' ({where})"


_CARD_NUMBER = re.compile(r"^(?:card)?(\d+)$")
_ALSA_NAME = re.compile(r"^(?:plug)?hw:(?:CARD=)?([^,]+)(?:,.*)?$", re.IGNORECASE)
# PortAudio's ALSA devices end in the card they open: "USB Audio Device: - (hw:1,0)".
_PORTAUDIO_NAME = re.compile(r"\((?:plug)?hw:(?:CARD=)?([^,()]+)(?:,[^()]*)?\)\s*$", re.IGNORECASE)


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def _usb_device(card_dir: Path, sysfs: Path) -> Path | None:
    """The nearest ancestor that is a USB device (has idVendor; its interfaces do not)."""
    top = (sysfs / "devices").resolve()
    for parent in card_dir.parents:
        if parent == top or top not in parent.parents:
            return None
        if (parent / "idVendor").is_file() and (parent / "idProduct").is_file():
            return parent
    return None


def _sound_cards(sysfs: Path) -> list[_Card]:
    cards: list[_Card] = []
    for link in (sysfs / "class" / "sound").glob("card*"):
        match = re.fullmatch(r"card(\d+)", link.name)
        if match is None:
            continue
        real = link.resolve()
        usb = _usb_device(real, sysfs)
        product = _read(usb / "product") if usb is not None else ""
        cards.append(_Card(int(match.group(1)), _read(real / "id"), usb, product))
    return sorted(cards, key=lambda card: card.number)


def _match_card(wanted: str, cards: list[_Card]) -> _Card:
    text = wanted.strip()
    alsa = _ALSA_NAME.match(text) or _PORTAUDIO_NAME.search(text)
    if alsa is not None:
        text = alsa.group(1)
    number = _CARD_NUMBER.match(text)
    if number is not None:
        found = [card for card in cards if card.number == int(number.group(1))]
    else:
        found = [card for card in cards if text == card.id]
        if not found:
            lowered = text.lower()
            found = [c for c in cards if lowered in (c.id.lower(), c.product.lower())]
        if not found:
            # Space-separated substrings, as sound devices are named elsewhere in the config.
            words = text.lower().split()
            found = [
                c for c in cards if words and all(w in f"{c.id} {c.product}".lower() for w in words)
            ]
    listing = ", ".join(card.label for card in cards) or "none"
    if not found:
        raise Cm108Error(f"no sound card matches '{wanted}' (sound cards found: {listing})")
    if len(found) > 1:
        names = ", ".join(card.label for card in found)
        raise Cm108Error(f"sound card '{wanted}' is ambiguous: it matches {names}")
    return found[0]


def find_hidraw(sound_card: str, sysfs: Path = Path("/sys"), dev: Path = Path("/dev")) -> Path:
    """The /dev/hidrawN on the same USB device as ALSA sound card `sound_card`.

    `sound_card` is an ALSA card id ("Device"), number ("1", "card1", "hw:1", "plughw:1,0",
    "hw:CARD=Device"), a PortAudio ALSA device name ("USB Audio Device: - (hw:1,0)": its card),
    or USB product name or words of it ("USB Audio"). Raises `Cm108Error` naming what was looked
    for and what was found. `sysfs` and `dev` are where the kernel shows them (tests move them).
    """
    cards = _sound_cards(sysfs)
    card = _match_card(sound_card, cards)
    if card.usb is None:
        raise Cm108Error(f"sound card {card.label} is not a USB device, so it has no CM108 GPIO")
    vendor = int(_read(card.usb / "idVendor") or "0", 16)
    product = int(_read(card.usb / "idProduct") or "0", 16)
    usb_id = f"{vendor:04x}:{product:04x}"
    # <usb device>/<interface>/<bus:vendor:product.instance>/hidraw/hidrawN
    hidraws = sorted(card.usb.glob("*/*/hidraw/hidraw*"))
    if not hidraws:
        raise Cm108Error(
            f"sound card {card.label}, USB {usb_id}, has no HID GPIO: "
            f"no hidraw device on that USB device"
        )
    devices = [dev / hidraw.name for hidraw in hidraws]
    if product not in ACCEPTED_USB_IDS.get(vendor, frozenset()):
        accepted = ", ".join(
            f"{v:04x}:{p:04x}" for v, pids in ACCEPTED_USB_IDS.items() for p in sorted(pids)
        )
        raise Cm108Error(
            f"sound card {card.label} is USB {usb_id}, not a known CM108-compatible chip "
            f"(accepted: {accepted}); set ptt.port: {devices[0]} to use its HID anyway"
        )
    if len(devices) > 1:
        raise Cm108Error(
            f"sound card {card.label} has several HID devices "
            f"({', '.join(map(str, devices))}); set ptt.port to the GPIO one"
        )
    return devices[0]


def find_hidraw_of_sound_device(
    selector: str, sysfs: Path = Path("/sys"), dev: Path = Path("/dev")
) -> Path:
    """The hidraw of the sound card that a radio's `audio.input`/`audio.output` selector names.

    The selector is a PortAudio device spec: its name ("USB Audio Device: - (hw:1,0)", whose
    card is taken), or words of the card's name. A PortAudio index ("3") is refused: it numbers
    PortAudio's devices, not ALSA's cards, and `find_hidraw` would read it as card 3.
    """
    if selector.strip().isdigit():
        raise Cm108Error(
            f"sound device '{selector}' is a PortAudio index, which does not say which card it "
            "is: name the device (like 'USB Audio Device: - (hw:1,0)') or set the port of the "
            "CM108 (/dev/hidrawN)"
        )
    return find_hidraw(selector, sysfs, dev)
