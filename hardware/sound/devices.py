"""Sound devices as PortAudio (through PyAudio) sees them: listing them and picking one by a spec.

A site's configuration names each radio's sound card, and a technician standing at the rack needs
to see what the machine has (`crosspatch audio devices`) and to get a clear answer when a name
fits nothing, or more than one card. So a device is named here by a spec that is either its
PortAudio index ("3"), its exact name ("USB Audio Device: - (hw:1,0)", or an ALSA PCM defined in
asound.conf such as "rcmp_rx_rec"), or a case-insensitive part of its name ("usb audio"); every
failure is one `SoundDeviceError` line that says what was asked and what exists for that
direction, since a technician reads it in a log or a terminal, not in a traceback.

On Linux PortAudio's ALSA host API lists the sound cards' hw/plughw devices and every top-level
`pcm.NAME` in the ALSA configuration (asound.conf, ~/.asoundrc, the files that ALSA_CONFIG_PATH
names), with or without a `hint` section; a PCM that fails to open in a direction is listed with
no channels in it. Indexes are only stable until the device set changes (a USB card unplugged or
plugged in), which is why a site should name cards by name rather than by index.

PortAudio scans the devices only when the first user in the process initialises it: while any
other PyAudio object is still open in the process, a new listing shows the devices as they were
at that first initialisation.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from gateway.core.errors import UserError

if TYPE_CHECKING:
    import pyaudio

Direction = Literal["input", "output"]
log = logging.getLogger(__name__)


class SoundDeviceError(UserError):
    """A sound device spec that fits no device, several, or one without channels that way."""


@dataclass(frozen=True)
class SoundDevice:
    """One PortAudio device: `index` is PortAudio's, valid until the device set changes."""

    index: int
    name: str
    max_input_channels: int
    max_output_channels: int
    default_rate: float
    host_api: str

    def channels(self, direction: Direction) -> int:
        return self.max_input_channels if direction == "input" else self.max_output_channels

    @property
    def label(self) -> str:
        return f"{self.index} {self.name}"


# Lines that PortAudio's ALSA host API causes to be printed on stderr while it probes devices
# that are not there: alsa-lib's own error messages ("ALSA lib pcm.c:2666:(...) Unknown PCM
# cards.pcm.front"), JACK's client library, which the ALSA `jack` PCM loads ("Cannot connect to
# server socket", "jack server is not running ..."), and PortAudio's own failed-expression
# reports. The blank lines are the trailing newlines of some of these messages.
_PROBE_NOISE = re.compile(
    rb"^(ALSA lib |Expression '.*' failed in |Cannot connect to server|jack server is not"
    rb"|JackShmReadWritePtr|Cannot lock down|\s*$)"
)
# Berkeley DB's complaints through JACK's client library, which opens its metadata database in
# /dev/shm (jack_db-UID) when loaded: "BDB1539 Build signature doesn't match environment",
# "Cannot open DB environment: BDB0091 DB_VERSION_MISMATCH ...". They mean that database was made
# by another libdb build (a container or chroot sharing /dev/shm with its host, a release
# upgraded in place). crosspatch does not use JACK, so they are harmless here.
_JACK_METADATA_NOISE = re.compile(rb"^(BDB\d{4} |Cannot open DB environment: )")

# Pa_Initialize and Pa_Terminate are not thread-safe, and the stderr redirection below is
# process-wide: both are done under this lock.
_portaudio_lock = threading.Lock()


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Keep PortAudio's device probing from printing dozens of error lines on stderr.

    Initialising PortAudio on Linux opens every ALSA PCM it can find to learn its channels,
    and most of them fail on a machine without those cards: alsa-lib, the JACK library behind
    the ALSA `jack` PCM and PortAudio each print their failures straight to file descriptor 2.
    alsa-lib's `snd_lib_error_set_handler` (through ctypes) would silence only the first of the
    three, so file descriptor 2 itself points to a temporary file while PortAudio probes. Other
    threads' stderr output in that window is kept: whatever in the file is not probe noise is
    written to the real stderr afterwards.
    """
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    saved = os.dup(2)
    try:
        with tempfile.TemporaryFile() as capture:
            os.dup2(capture.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(saved, 2)
                capture.seek(0)
                kept: list[bytes] = []
                jack_metadata = False
                for line in capture.read().splitlines(keepends=True):
                    if _JACK_METADATA_NOISE.match(line):
                        jack_metadata = True
                    elif not _PROBE_NOISE.match(line):
                        kept.append(line)
                if jack_metadata:
                    log.debug(
                        "JACK's metadata database in /dev/shm was made by another libdb build "
                        "(crosspatch does not use JACK): its Berkeley DB errors are ignored"
                    )
                if kept:
                    os.write(2, b"".join(kept))
    finally:
        os.close(saved)


@contextlib.contextmanager
def open_portaudio() -> Iterator[pyaudio.PyAudio]:
    """An initialised PyAudio, terminated on leaving; the probe's stderr noise is dropped."""
    import pyaudio

    with _portaudio_lock, _quiet_stderr():
        audio = pyaudio.PyAudio()
    try:
        yield audio
    finally:
        with _portaudio_lock, _quiet_stderr():
            audio.terminate()


def _int(value: str | int | float) -> int:
    return int(value)


def _float(value: str | int | float) -> float:
    return float(value)


def devices_of(audio: pyaudio.PyAudio) -> list[SoundDevice]:
    """The devices an initialised PyAudio knows, in PortAudio's index order."""
    host_apis: dict[int, str] = {}
    for api in range(audio.get_host_api_count()):
        host_apis[api] = str(audio.get_host_api_info_by_index(api)["name"])
    devices = []
    for index in range(audio.get_device_count()):
        info = audio.get_device_info_by_index(index)
        host_api = _int(info["hostApi"])
        devices.append(
            SoundDevice(
                index=index,
                name=str(info["name"]),
                max_input_channels=_int(info["maxInputChannels"]),
                max_output_channels=_int(info["maxOutputChannels"]),
                default_rate=_float(info["defaultSampleRate"]),
                host_api=host_apis.get(host_api, str(host_api)),
            )
        )
    return devices


def list_devices() -> list[SoundDevice]:
    """Every device PortAudio finds now (see the module docstring for when it rescans)."""
    with open_portaudio() as audio:
        return devices_of(audio)


def _listing(devices: Sequence[SoundDevice], direction: Direction) -> str:
    usable = [device.label for device in devices if device.channels(direction) > 0]
    return f"{direction} devices: {', '.join(usable) if usable else 'none'}"


def find_device(
    spec: str, direction: Direction, devices: Sequence[SoundDevice] | None = None
) -> SoundDevice:
    """The device that `spec` names for `direction` (index, exact name, or part of a name).

    An exact name wins over partial matches; a part of a name must fit exactly one device
    that has channels in `direction`. Raises SoundDeviceError otherwise, in one line.
    """
    if devices is None:
        devices = list_devices()
    wanted = spec.strip()

    def usable(device: SoundDevice) -> SoundDevice:
        if device.channels(direction) > 0:
            return device
        raise SoundDeviceError(
            f"sound device {device.index} {device.name!r} has no {direction} channels; "
            + _listing(devices, direction)
        )

    if re.fullmatch(r"[0-9]+", wanted):
        for device in devices:
            if device.index == int(wanted):
                return usable(device)
        raise SoundDeviceError(
            f"no sound device has index {wanted}; " + _listing(devices, direction)
        )
    if not wanted:
        raise SoundDeviceError("empty sound device name; " + _listing(devices, direction))

    exact = [device for device in devices if device.name == wanted]
    if exact:
        with_channels = [device for device in exact if device.channels(direction) > 0]
        return with_channels[0] if with_channels else usable(exact[0])

    folded = wanted.casefold()
    matching = [device for device in devices if folded in device.name.casefold()]
    candidates = [device for device in matching if device.channels(direction) > 0]
    if len(candidates) == 1:
        return candidates[0]
    if len(candidates) > 1:
        same = [device for device in candidates if device.name.casefold() == folded]
        if len(same) == 1:
            return same[0]
        names = ", ".join(device.label for device in candidates)
        raise SoundDeviceError(
            f"sound device {spec!r} is ambiguous for {direction}: it matches {names}; "
            "give the index or the exact name"
        )
    if matching:
        names = ", ".join(device.label for device in matching)
        raise SoundDeviceError(
            f"sound device {spec!r} matches only devices without {direction} channels "
            f"({names}); " + _listing(devices, direction)
        )
    raise SoundDeviceError(
        f"no {direction} sound device matches {spec!r}; " + _listing(devices, direction)
    )


def describe_devices(devices: Sequence[SoundDevice] | None = None) -> list[str]:
    """Lines for `crosspatch audio devices`: index, channels in and out, default rate, name."""
    if devices is None:
        devices = list_devices()
    if not devices:
        return ["no sound devices found"]
    lines = [f"{'index':>5}  {'in':>3}  {'out':>3}  {'rate':>6}  {'api':<6}  name"]
    for device in devices:
        lines.append(
            f"{device.index:>5}  {device.max_input_channels:>3}  {device.max_output_channels:>3}"
            f"  {device.default_rate:>6.0f}  {device.host_api:<6}  {device.name}"
        )
    return lines
