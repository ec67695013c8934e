"""What the config says about each radio's hardware, in the terms the hardware layer uses: CAT
driver settings, the channel of each talkgroup, the modem lines grouped per serial port, and the
CM108 GPIOs grouped per sound card."""

from __future__ import annotations

from gateway.config import Config
from gateway.config.models import DEFAULT_CM108_GPIO, ControlSettings, Radio, Talkgroup
from gateway.hardware.cat.base import Tuning
from gateway.hardware.cat.registry import DriverSettings
from gateway.hardware.cm108.gpio import CosInput, PttGpio
from gateway.hardware.cm108.ports import Cm108Wiring
from gateway.hardware.serial.lines import CosLine, InputLine, OutputLine, PttLine, SerialLines

_PTT_LINES: dict[str, OutputLine] = {"rts": "rts", "dtr": "dtr"}
_SQUELCH_LINES: dict[str, InputLine] = {"cts": "cts", "dsr": "dsr", "dcd": "dcd", "ri": "ri"}


def driver_settings(control: ControlSettings) -> DriverSettings:
    c = control
    return DriverSettings(c.driver, c.port, c.baud, c.civ_address, c.host, c.tcp_port)


def channel_tuning(talkgroup: Talkgroup) -> Tuning | None:
    """The talkgroup as a radio is tuned for it; None for a network talkgroup."""
    if talkgroup.rx_mhz is None:
        return None
    return Tuning(
        rx_hz=round(talkgroup.rx_mhz * 1e6),
        tx_hz=round((talkgroup.tx_mhz or talkgroup.rx_mhz) * 1e6),
        mode=talkgroup.mode or "nfm",
        ctcss_hz=talkgroup.ctcss_hz,
        dcs=talkgroup.dcs,
    )


def channels(cfg: Config) -> dict[str, Tuning]:
    """Every talkgroup that has frequencies, by `agency/name`."""
    found: dict[str, Tuning] = {}
    for ref in cfg.talkgroup_refs():
        tuning = channel_tuning(cfg.talkgroup(ref))
        if tuning is not None:
            found[ref] = tuning
    return found


def hardware_radios(cfg: Config) -> dict[str, Radio]:
    """Radios with any real control: CAT, a PTT line or a squelch line."""
    return {name: radio for name, radio in cfg.radios.items() if radio.has_hardware_control}


def serial_line_wirings(cfg: Config) -> list[SerialLines]:
    """One `SerialLines` per serial device that keys a radio (RTS/DTR) or carries its squelch
    (CTS/DSR/DCD/RI), with every radio wired to it."""
    ptt: dict[str, list[PttLine]] = {}
    cos: dict[str, list[CosLine]] = {}
    for name, radio in hardware_radios(cfg).items():
        p, q = radio.ptt, radio.squelch
        if p is not None and p.method in _PTT_LINES and p.port:
            ptt.setdefault(p.port, []).append(PttLine(name, _PTT_LINES[p.method], p.invert))
        if q is not None and q.method in _SQUELCH_LINES and q.port:
            cos.setdefault(q.port, []).append(CosLine(name, _SQUELCH_LINES[q.method], q.invert))
    devices = list(dict.fromkeys([*ptt, *cos]))
    return [SerialLines(d, ptt=ptt.get(d, ()), cos=cos.get(d, ())) for d in devices]


def cm108_wirings(cfg: Config) -> list[Cm108Wiring]:
    """One `Cm108Wiring` per CM108 that keys a radio or carries its COS, with every radio wired
    to it. A CM108 is the ptt/squelch `port` (/dev/hidrawN) when given, else the one of the
    radio's sound card, named by its audio output as the config checks name it (so the two
    radios on a stereo CM119 share it) and found from its output or input device."""
    ptt: dict[str, list[PttGpio]] = {}
    cos: dict[str, list[CosInput]] = {}
    found_from: dict[str, tuple[str, ...]] = {}

    def device(radio: Radio, port: str | None) -> str:
        if port is not None or radio.audio is None:
            return port or ""  # the config requires a port when there is no sound card
        found_from.setdefault(
            radio.audio.output, tuple(dict.fromkeys([radio.audio.output, radio.audio.input]))
        )
        return radio.audio.output

    for name, radio in hardware_radios(cfg).items():
        p, q = radio.ptt, radio.squelch
        if p is not None and p.method == "cm108":
            gpio = p.gpio or DEFAULT_CM108_GPIO
            ptt.setdefault(device(radio, p.port), []).append(PttGpio(name, gpio, p.invert))
        if q is not None and q.method == "cm108":
            # Inputs are pulled up and a COS pulls them low; invert: receiving while high.
            cos_input = CosInput(name, q.gpio, q.button, active_low=not q.invert)
            cos.setdefault(device(radio, q.port), []).append(cos_input)
    devices = list(dict.fromkeys([*ptt, *cos]))
    return [
        Cm108Wiring(d, tuple(ptt.get(d, ())), tuple(cos.get(d, ())), found_from.get(d, ()))
        for d in devices
    ]
