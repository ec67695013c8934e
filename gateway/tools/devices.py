"""`crosspatch devices` and `crosspatch audio devices`: what a radio can be plugged into.

Both name sound devices from one list, PortAudio's (`gateway.hardware.sound.devices.list_devices`),
because that is the list a radio's `audio.input` / `audio.output` is matched against. The kernel's
list of cards (/proc/asound/cards) is not it: a machine whose audio goes through PulseAudio or ALSA
PCMs defined in asound.conf has devices a radio can use and no card the kernel knows, and a card
the kernel knows may be held by PulseAudio and not open to the gateway directly.

Each command has a text form for a technician and a `--json` form for scripts (a list of objects
whose keys stay put across releases).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gateway.hardware.sound.devices import SoundDevice
from gateway.hardware.sound.devices import describe_devices as describe_sound_devices


@dataclass(frozen=True)
class SerialDevice:
    device: str
    description: str
    usb_id: str  # "VVVV:PPPP", or "" for a port that is not USB
    serial_number: str


def serial_devices() -> list[SerialDevice]:
    from serial.tools import list_ports

    found = []
    for port in sorted(list_ports.comports(), key=lambda p: p.device):
        usb = f"{port.vid:04x}:{port.pid:04x}" if port.vid is not None else ""
        found.append(
            SerialDevice(port.device, port.description or "", usb, port.serial_number or "")
        )
    return found


def sound_devices() -> list[SoundDevice]:
    """The sound devices both commands show: PortAudio's, as the daemon opens them."""
    from gateway.hardware.sound.devices import list_devices

    return list_devices()


def sound_device_records(devices: Sequence[SoundDevice]) -> list[dict[str, Any]]:
    """`--json` of the sound devices: one object a device."""
    return [
        {
            "index": d.index,
            "name": d.name,
            "input_channels": d.max_input_channels,
            "output_channels": d.max_output_channels,
            "default_rate": d.default_rate,
            "host_api": d.host_api,
        }
        for d in devices
    ]


def serial_device_records(ports: Sequence[SerialDevice]) -> list[dict[str, Any]]:
    """`--json` of the serial ports: one object a port ("" where a port has no such detail)."""
    return [
        {
            "device": p.device,
            "usb_id": p.usb_id,
            "description": p.description,
            "serial_number": p.serial_number,
        }
        for p in ports
    ]


def describe_devices(
    ports: Sequence[SerialDevice] | None = None, sounds: Sequence[SoundDevice] | None = None
) -> list[str]:
    """Lines for `crosspatch devices`: serial ports, then sound devices as `audio devices`
    lists them (the same devices, the same columns)."""
    ports = serial_devices() if ports is None else ports
    sounds = sound_devices() if sounds is None else sounds
    lines = ["serial ports:"]
    lines += [
        f"  {d.device:<16} {d.usb_id or '-':<10} {d.description}"
        + (f" (serial {d.serial_number})" if d.serial_number else "")
        for d in ports
    ] or ["  none found"]
    lines.append("sound devices (what audio.input and audio.output name):")
    lines += (
        [f"  {line}" for line in describe_sound_devices(sounds)] if sounds else ["  none found"]
    )
    return lines


def devices_report(
    ports: Sequence[SerialDevice] | None = None, sounds: Sequence[SoundDevice] | None = None
) -> dict[str, list[dict[str, Any]]]:
    """`crosspatch devices --json`."""
    ports = serial_devices() if ports is None else ports
    sounds = sound_devices() if sounds is None else sounds
    return {
        "serial_ports": serial_device_records(ports),
        "sound_devices": sound_device_records(sounds),
    }
