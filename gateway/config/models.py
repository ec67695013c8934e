"""The configuration as pydantic models: shapes, ranges, and the rules inside one section.

Every model forbids unknown keys: a misspelt `hang_ms` must be an error, never a silently ignored
safety setting. Rules that need two keys of one section (a simulated radio with a sound card, an
RTP link without encryption) live in the section's model validator and report each problem at the
key it concerns. Rules that look across sections (does this talkgroup exist, do two radios share a
serial line) are in `references.py` and run only once every section is well-formed.
"""

from __future__ import annotations

import ipaddress
import os
import re
from bisect import bisect_left
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

# The 50 standard CTCSS tones and 104 DCS codes, shared with the CAT drivers (re-exported).
from gateway.core.tones import CTCSS_TONES_HZ as CTCSS_TONES_HZ
from gateway.core.tones import DCS_CODES as DCS_CODES
from gateway.core.tones import nearest_ctcss_tone as nearest_ctcss_tone

# The engine runs at one fixed rate; devices at other rates are resampled at the edge.
SAMPLE_RATE_HZ = 8000

# Pydantic error type of every message written here; the loader shows these messages as they are.
RULE_ERROR = "crosspatch"

NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,62}$"
NAME_RE = re.compile(NAME_PATTERN)
_NAME_RULE = (
    "use 1-63 lower-case letters, digits, '_', '.' or '-', starting with a letter or digit "
    "(names appear in MQTT topics and file names)"
)

_DCS_RE = re.compile(r"^([0-7]{3})([NI])$")

STANDARD_BAUDS: tuple[int, ...] = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)
SERIAL_DRIVERS = frozenset({"kenwood", "kenwood-tm", "yaesu-legacy", "yaesu", "icom"})
SERIAL_PTT_METHODS = frozenset({"rts", "dtr"})
SERIAL_SQUELCH_METHODS = frozenset({"cts", "dsr", "dcd", "ri"})
DEFAULT_RIGCTLD_HOST = "localhost"
DEFAULT_RIGCTLD_PORT = 4532
# Dire Wolf's default: most CM108/CM119 interfaces key the radio from GPIO 3.
DEFAULT_CM108_GPIO = 3
DEFAULT_VOX_THRESHOLD_DBFS = -30.0
DEFAULT_VOX_ATTACK_MS = 40
DEFAULT_VOX_HANG_MS = 500
# app_rpt's default COS input (carrierfrom=usb): the VOLDN button input of a CM108/CM119, where
# the DMK URI and most modified fobs wire the radio's COS (VOLUP carries a CTCSS decoder).
Cm108Button = Literal["volup", "voldn"]
DEFAULT_CM108_COS_BUTTON: Cm108Button = "voldn"
# Rates a sound card is opened at; the engine itself always runs at SAMPLE_RATE_HZ.
DEVICE_RATES_HZ: tuple[int, ...] = (8000, 16000, 22050, 32000, 44100, 48000, 96000)
# Announcements: tones inside the voice band (above every CTCSS tone, so a prompt never opens or
# closes a tone squelch), and no prompt longer than this.
ANNOUNCEMENT_TONE_HZ = (300.0, 3000.0)
ANNOUNCEMENT_TONE_MS = (20, 2000)
MAX_ANNOUNCEMENT_S = 30.0


def rule_error(message: str) -> PydanticCustomError:
    """A validation error whose message is shown to the user exactly as written."""
    return PydanticCustomError(RULE_ERROR, message)


class RuleProblems:
    """The problems one model validator finds, each at its own key, raised together."""

    def __init__(self) -> None:
        self._details: list[InitErrorDetails] = []

    def add(self, loc: tuple[str | int, ...], message: str, value: Any = None) -> None:
        self._details.append(InitErrorDetails(type=rule_error(message), loc=loc, input=value))

    def raise_if_any(self, title: str) -> None:
        # Pydantic nests a ValidationError raised in a validator under the model's own location.
        if self._details:
            raise ValidationError.from_exception_data(title, self._details)


# --- names and references --------------------------------------------------------------------


def check_name(value: str) -> str:
    if not NAME_RE.match(value):
        raise rule_error(f"'{value}' is not a valid name: {_NAME_RULE}")
    return value


def split_talkgroup_ref(ref: str) -> tuple[str, str]:
    """`"rcmp/tac2"` -> `("rcmp", "tac2")`; raises ValueError if it is not `agency/name`."""
    agency, slash, name = ref.partition("/")
    if not slash or not agency or not name:
        raise ValueError(f"talkgroup reference {ref!r} is not 'agency/talkgroup'")
    return agency, name


def _check_talkgroup_ref(value: str) -> str:
    agency, slash, name = value.partition("/")
    if not slash or not NAME_RE.match(agency) or not NAME_RE.match(name):
        raise rule_error(
            f"'{value}' is not a talkgroup reference: write 'agency/talkgroup', like 'rcmp/tac2'"
        )
    return value


Name = Annotated[
    str, AfterValidator(check_name), WithJsonSchema({"type": "string", "pattern": NAME_PATTERN})
]
TalkgroupRef = Annotated[
    str,
    AfterValidator(_check_talkgroup_ref),
    WithJsonSchema({"type": "string", "pattern": NAME_PATTERN[:-1] + "/" + NAME_PATTERN[1:]}),
]


def split_host_port(text: str) -> tuple[str, int]:
    """`"198.51.100.7:40000"` or `"[2001:db8::1]:40000"` -> (host, port); raises ValueError."""
    match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d{1,5})|([^\s:/\[\]]+):(\d{1,5})", text)
    if match is None:
        raise ValueError(f"{text!r} is not host:port; write it like 0.0.0.0:40000 or [::1]:40000")
    host = match.group(1) or match.group(3)
    port = int(match.group(2) or match.group(4))
    if not 1 <= port <= 65535:
        raise ValueError(f"port must be between 1 and 65535 (got {port})")
    return host, port


def _check_host_port(value: str) -> str:
    try:
        split_host_port(value)
    except ValueError as exc:
        raise rule_error(str(exc)) from None
    return value


HostPort = Annotated[
    str, AfterValidator(_check_host_port), WithJsonSchema({"type": "string", "format": "host:port"})
]


# --- tones and frequencies ---------------------------------------------------------------------


def _check_ctcss(value: float | None) -> float | None:
    if value is None:
        return None
    nearest = nearest_ctcss_tone(value)
    if abs(nearest - value) > 0.05:
        raise rule_error(
            f"{value:g} Hz is not one of the 50 standard CTCSS tones; the nearest is {nearest} Hz"
        )
    return nearest


CtcssTone = Annotated[float, AfterValidator(_check_ctcss)]


def _check_dcs(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return value  # pydantic reports the type
    if isinstance(value, int):
        raise rule_error(
            f'write the DCS code in quotes with its polarity, like "023N" '
            f"(YAML read it as the number {value})"
        )
    code = value.strip().upper()
    match = _DCS_RE.match(code)
    if match is None:
        raise rule_error(
            f"'{value}' is not a DCS code: write 3 octal digits then N (normal) or I (inverted), "
            "like '023N'"
        )
    digits = match.group(1)
    if digits not in DCS_CODES:
        values = [int(dcs, 8) for dcs in DCS_CODES]
        place = bisect_left(values, int(digits, 8))
        neighbours = [DCS_CODES[i] for i in (place - 1, place) if 0 <= i < len(DCS_CODES)]
        raise rule_error(
            f"'{value}' is not one of the 104 standard DCS codes; "
            f"the nearest are {' and '.join(neighbours)}"
        )
    return code


def _check_mhz(value: float | None) -> float | None:
    if value is not None and value > 3000:
        raise rule_error(
            f"frequencies are in MHz: {value:g} looks like hertz ({value / 1e6:g} MHz?)"
        )
    return value


Megahertz = Annotated[float, Field(gt=0), AfterValidator(_check_mhz)]


def _check_path(value: Any) -> Any:
    # An empty string would become Path("."), the current directory: never what was meant.
    if isinstance(value, str) and not value.strip():
        raise rule_error("an empty path names no file: give the path, or leave the key out")
    return value


# A path in the config: a file or directory that must be named, not left empty.
ConfigPath = Annotated[Path, BeforeValidator(_check_path)]


class StrictModel(BaseModel):
    """Base of every config section: unknown keys are errors."""

    # NaN and infinity pass every `gt`/`le` bound unnoticed or absurdly; no setting needs them.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


# --- agencies and talkgroups -------------------------------------------------------------------


def _empty_when_null(value: Any) -> Any:
    # `ops:` with nothing after it is YAML for null; for a talkgroup it plainly means "no settings".
    return {} if value is None else value


class Talkgroup(StrictModel):
    """One voice channel of an agency: an analog channel, or a network talkgroup on a link."""

    rx_mhz: Megahertz | None = None
    tx_mhz: Megahertz | None = None
    mode: Literal["nfm", "fm", "am"] | None = None
    ctcss_hz: CtcssTone | None = None
    dcs: Annotated[str, BeforeValidator(_check_dcs)] | None = None
    id: int | None = Field(default=None, ge=0)

    @property
    def has_frequencies(self) -> bool:
        return self.rx_mhz is not None

    @model_validator(mode="after")
    def _check_channel(self) -> Talkgroup:
        problems = RuleProblems()
        # One frequency given means simplex: receive and transmit on it.
        if self.rx_mhz is None:
            self.rx_mhz = self.tx_mhz
        if self.tx_mhz is None:
            self.tx_mhz = self.rx_mhz
        if self.ctcss_hz is not None and self.dcs is not None:
            problems.add(("dcs",), "give ctcss_hz or dcs, not both", self.dcs)
        if self.rx_mhz is None:
            for key in ("mode", "ctcss_hz", "dcs"):
                if getattr(self, key) is not None:
                    problems.add(
                        (key,),
                        f"{key} applies to a radio channel: add rx_mhz/tx_mhz, or remove {key} "
                        "for a network talkgroup",
                        getattr(self, key),
                    )
        problems.raise_if_any(type(self).__name__)
        return self


class Agency(StrictModel):
    name: str = Field(min_length=1)
    country: str
    talkgroups: dict[Name, Annotated[Talkgroup, BeforeValidator(_empty_when_null)]]

    @field_validator("country")
    @classmethod
    def _check_country(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Z]{2}", value):
            hint = f"; write '{value.upper()}'" if re.fullmatch(r"[A-Za-z]{2}", value) else ""
            raise rule_error(
                f"country must be an ISO 3166 alpha-2 code in upper case, like CA or US "
                f"(got '{value}'){hint}"
            )
        return value


# --- radios ------------------------------------------------------------------------------------


class Timing(StrictModel):
    """Per-port timing rules; see docs/design.md, "Timing rules per port"."""

    tx_delay_ms: int = Field(default=150, ge=0, le=2000)
    hang_ms: int = Field(default=800, ge=0, le=10000)
    timeout_s: float = Field(default=180.0, gt=0, le=3600)
    rx_inhibit_ms: int = Field(default=100, ge=0, le=5000)


class LinkTiming(Timing):
    """Timing of a link: no key-up delay, hang or false COR on a network stream."""

    tx_delay_ms: int = Field(default=0, ge=0, le=2000)
    hang_ms: int = Field(default=0, ge=0, le=10000)
    rx_inhibit_ms: int = Field(default=0, ge=0, le=5000)


class Traffic(StrictModel):
    """Generated talk bursts of a simulated port: `talk_s` of audio every `every_s`."""

    every_s: float = Field(gt=0)
    talk_s: float = Field(gt=0)
    level_dbfs: float = Field(default=-12.0, le=0)
    seed: int | None = None

    @model_validator(mode="after")
    def _check_burst(self) -> Traffic:
        problems = RuleProblems()
        if self.talk_s >= self.every_s:
            problems.add(
                ("talk_s",),
                f"talk_s must be shorter than every_s (got talk_s {self.talk_s:g}, "
                f"every_s {self.every_s:g})",
                self.talk_s,
            )
        problems.raise_if_any(type(self).__name__)
        return self


class SimulatedRadio(StrictModel):
    traffic: Traffic | None = None


class AudioSettings(StrictModel):
    """A radio's sound card, and the processing of its audio at the edge of the engine.

    `rate` is the rate the device is opened at (None: the device's default); the audio is
    resampled to and from the engine's 8 kHz. `block_ms` is the device's block size. `highpass`
    removes sub-audible tones (CTCSS, DCS) from received audio before it is routed, so a patch
    never repeats one radio's tone onto another's channel. `auto_level` brings received speech
    to `target_dbfs` (slow automatic gain), so quiet and loud radios sound alike.
    """

    input: str = Field(min_length=1)
    output: str = Field(min_length=1)
    channel: Literal["left", "right", "mono"] = "mono"
    input_gain_db: float = Field(default=0.0, ge=-60, le=60)
    output_gain_db: float = Field(default=0.0, ge=-60, le=60)
    rate: int | None = None
    block_ms: Literal[5, 10, 20] = 10
    highpass: bool = True
    auto_level: bool = True
    target_dbfs: float = Field(default=-18.0, le=0)

    @field_validator("rate")
    @classmethod
    def _check_rate(cls, value: int | None) -> int | None:
        if value is not None and value not in DEVICE_RATES_HZ:
            rates = ", ".join(str(rate) for rate in DEVICE_RATES_HZ)
            raise rule_error(f"rate must be one of {rates} Hz (got {value})")
        return value

    @model_validator(mode="after")
    def _check_level(self) -> AudioSettings:
        problems = RuleProblems()
        if not self.auto_level and "target_dbfs" in self.model_fields_set:
            problems.add(
                ("target_dbfs",),
                "target_dbfs applies only with auto_level: true",
                self.target_dbfs,
            )
        problems.raise_if_any(type(self).__name__)
        return self


class ControlSettings(StrictModel):
    """CAT control: a serial driver on `port`, or rigctld over TCP."""

    driver: Literal["kenwood", "kenwood-tm", "yaesu-legacy", "yaesu", "icom", "rigctld"]
    port: str | None = Field(default=None, min_length=1)
    baud: int | None = None
    civ_address: int | None = None
    host: str | None = Field(default=None, min_length=1)
    tcp_port: int | None = Field(default=None, ge=1, le=65535)

    @field_validator("baud")
    @classmethod
    def _check_baud(cls, value: int | None) -> int | None:
        if value is not None and value not in STANDARD_BAUDS:
            rates = ", ".join(str(rate) for rate in STANDARD_BAUDS)
            raise rule_error(f"baud must be a standard rate: {rates} (got {value})")
        return value

    @field_validator("civ_address")
    @classmethod
    def _check_civ_address(cls, value: int | None) -> int | None:
        if value is not None and not 0 <= value <= 0xDF:
            raise rule_error(f"civ_address must be between 0x00 and 0xDF (got 0x{value:02X})")
        return value

    @model_validator(mode="after")
    def _check_driver(self) -> ControlSettings:
        problems = RuleProblems()
        if self.driver == "rigctld":
            for key in ("port", "baud", "civ_address"):
                if getattr(self, key) is not None:
                    problems.add(
                        (key,),
                        f"{key} does not apply to driver rigctld, which is reached over TCP "
                        "(use host and tcp_port)",
                        getattr(self, key),
                    )
            self.host = self.host or DEFAULT_RIGCTLD_HOST
            self.tcp_port = self.tcp_port or DEFAULT_RIGCTLD_PORT
        else:
            if self.port is None:
                problems.add(
                    ("port",),
                    f"driver {self.driver} talks over a serial line: add port, like /dev/ttyUSB0",
                )
            for key in ("host", "tcp_port"):
                if getattr(self, key) is not None:
                    problems.add(
                        (key,), f"{key} applies only to driver rigctld", getattr(self, key)
                    )
            if self.civ_address is not None and self.driver != "icom":
                problems.add(
                    ("civ_address",), "civ_address applies only to driver icom", self.civ_address
                )
        problems.raise_if_any(type(self).__name__)
        return self


class PttSettings(StrictModel):
    """How the gateway keys the transmitter."""

    method: Literal["cat", "rts", "dtr", "cm108", "none"]
    port: str | None = Field(default=None, min_length=1)
    invert: bool = False
    gpio: int | None = Field(default=None, ge=1, le=8)

    @model_validator(mode="after")
    def _check_method(self) -> PttSettings:
        problems = RuleProblems()
        if self.port is not None and self.method not in SERIAL_PTT_METHODS | {"cm108"}:
            problems.add(
                ("port",),
                f"port applies only to methods rts, dtr and cm108, not {self.method}",
                self.port,
            )
        if self.method == "cm108":
            self.gpio = self.gpio or DEFAULT_CM108_GPIO
        elif self.gpio is not None:
            problems.add(("gpio",), "gpio applies only to method cm108", self.gpio)
        problems.raise_if_any(type(self).__name__)
        return self


_VOX_DEFAULTS: dict[str, float] = {
    "vox_threshold_dbfs": DEFAULT_VOX_THRESHOLD_DBFS,
    "vox_attack_ms": DEFAULT_VOX_ATTACK_MS,
    "vox_hang_ms": DEFAULT_VOX_HANG_MS,
}


class SquelchSettings(StrictModel):
    """How the gateway knows the radio is receiving (carrier, COS).

    `ctcss_hz` is a software CTCSS qualifier, with any method: the carrier counts only while the
    tone is present in the received audio. VOX opens after `vox_attack_ms` above the threshold
    and closes `vox_hang_ms` after the audio falls below it. A CM108's COS input is one of its
    GPIOs (`gpio: 1..8`) or a volume button input (`button: volup | voldn`), by default voldn.
    """

    method: Literal["cat", "cts", "dsr", "dcd", "ri", "vox", "cm108"]
    port: str | None = Field(default=None, min_length=1)
    invert: bool = False
    ctcss_hz: CtcssTone | None = None
    vox_threshold_dbfs: float | None = Field(default=None, le=0)
    vox_attack_ms: int | None = Field(default=None, ge=0, le=2000)
    vox_hang_ms: int | None = Field(default=None, ge=0, le=10000)
    gpio: int | None = Field(default=None, ge=1, le=8)
    button: Cm108Button | None = None

    @model_validator(mode="after")
    def _check_method(self) -> SquelchSettings:
        problems = RuleProblems()
        if self.port is not None and self.method not in SERIAL_SQUELCH_METHODS | {"cm108"}:
            problems.add(
                ("port",),
                f"port applies only to methods cts, dsr, dcd, ri and cm108, not {self.method}",
                self.port,
            )
        for key, default in _VOX_DEFAULTS.items():
            if self.method == "vox":
                if getattr(self, key) is None:
                    setattr(self, key, default)
            elif getattr(self, key) is not None:
                problems.add((key,), f"{key} applies only to method vox", getattr(self, key))
        if self.method == "cm108":
            if self.gpio is not None and self.button is not None:
                problems.add(
                    ("button",),
                    "the CM108's COS input is a GPIO or a button, not both: give gpio or button",
                    self.button,
                )
            elif self.gpio is None and self.button is None:
                self.button = DEFAULT_CM108_COS_BUTTON
        else:
            for key in ("gpio", "button"):
                if getattr(self, key) is not None:
                    problems.add(
                        (key,),
                        f"{key} (the CM108's COS input) applies only to method cm108",
                        getattr(self, key),
                    )
        problems.raise_if_any(type(self).__name__)
        return self


def _check_bands(value: Any) -> Any:
    # Checked before pydantic so the message speaks of bands, not of tuples.
    if not isinstance(value, list):
        return value
    for index, band in enumerate(value):
        if not (isinstance(band, list) and len(band) == 2):
            raise rule_error(
                f"band {index} must be [low_mhz, high_mhz], like [136, 174] (got {band!r})"
            )
        low, high = band
        numbers = all(
            isinstance(edge, (int, float)) and not isinstance(edge, bool) for edge in band
        )
        if numbers and not 0 < low < high:
            raise rule_error(f"band {index} must have 0 < low < high (got [{low:g}, {high:g}])")
    return value


class PortSettings(StrictModel):
    """What every port has, radio or link: its timing rules (each declares its talkgroup)."""

    simulated: SimulatedRadio | None = None
    timing: Timing = Field(default_factory=Timing)
    duplex: Literal["half", "full"] = "half"


_SIMULATED_SQUELCH_METHODS = "cat, cts, dsr, dcd, ri or cm108"


class Radio(PortSettings):
    """A transceiver: on a sound card with serial control, or simulated.

    A radio serves one fixed `talkgroup`, or belongs to a `pool` and is tuned on demand, inside
    its `bands_mhz`, to whatever talkgroup a patch needs. A simulated radio has simulated audio;
    it may still have real CAT control, PTT and squelch (bench mode, for checking the wiring).
    """

    talkgroup: TalkgroupRef | None = None
    pool: Name | None = None
    audio: AudioSettings | None = None
    control: ControlSettings | None = None
    ptt: PttSettings | None = None
    squelch: SquelchSettings | None = None
    bands_mhz: Annotated[list[tuple[float, float]], BeforeValidator(_check_bands)] | None = None

    @property
    def is_simulated(self) -> bool:
        return self.simulated is not None

    @property
    def is_pool(self) -> bool:
        """Tuned on demand (a pool radio) rather than fixed on one talkgroup."""
        return self.pool is not None

    @property
    def has_hardware_control(self) -> bool:
        """Whether the gateway drives real hardware of this radio: CAT, a PTT line or squelch."""
        return (
            self.control is not None
            or (self.ptt is not None and self.ptt.method != "none")
            or self.squelch is not None
        )

    def in_bands(self, mhz: float) -> bool:
        """Whether `mhz` lies in one of the radio's bands_mhz (False when it has none)."""
        return self.bands_mhz is not None and any(
            low <= mhz <= high for low, high in self.bands_mhz
        )

    @model_validator(mode="after")
    def _check_hardware(self) -> Radio:
        problems = RuleProblems()
        self._check_channel(problems)
        self._check_cm108_lines(problems)
        if self.simulated is None:
            self._complete_hardware(problems, simulated=False)
        elif self._check_simulated(problems):
            self._complete_hardware(problems, simulated=True)
        problems.raise_if_any(type(self).__name__)
        return self

    def _check_channel(self, problems: RuleProblems) -> None:
        """Exactly one of talkgroup and pool; a pool radio has bands and no generated traffic."""
        if self.talkgroup is not None and self.pool is not None:
            problems.add(("pool",), "give talkgroup or pool, not both", self.pool)
        elif self.talkgroup is None and self.pool is None:
            problems.add(
                ("talkgroup",),
                "a radio needs talkgroup (a fixed channel) or pool (tuned on demand)",
            )
        if self.pool is None:
            return
        if self.bands_mhz is None:
            problems.add(
                ("bands_mhz",),
                "a pool radio needs bands_mhz, so the gateway never tunes it outside its bands: "
                "add bands_mhz, like [[136, 174]]",
            )
        if self.simulated is not None and self.simulated.traffic is not None:
            problems.add(
                ("simulated", "traffic"),
                "generated traffic needs a fixed talkgroup: remove traffic, or give the radio "
                "a talkgroup instead of pool",
            )

    def _check_cm108_lines(self, problems: RuleProblems) -> None:
        """PTT and COS on one CM108 use different GPIOs (the PTT GPIO is driven as an output)."""
        ptt, squelch = self.ptt, self.squelch
        if ptt is None or squelch is None or ptt.method != "cm108" or squelch.method != "cm108":
            return
        # No port on either: both are the CM108 of the radio's sound card.
        if squelch.gpio is not None and squelch.gpio == ptt.gpio and squelch.port == ptt.port:
            problems.add(
                ("squelch", "gpio"),
                f"GPIO {squelch.gpio} already keys this radio (ptt gpio); a GPIO is PTT or COS, "
                "not both: give squelch another gpio, or a button",
                squelch.gpio,
            )

    def _check_simulated(self, problems: RuleProblems) -> bool:
        """A simulated radio's audio is simulated; its control, PTT and squelch may be real.

        Returns whether its hardware settings are worth completing (no conflict with traffic).
        """
        if self.audio is not None:
            problems.add(
                ("audio",),
                "a simulated radio has no audio: remove 'audio', "
                "or remove 'simulated' to use hardware",
            )
        complete = True
        if self.simulated is not None and self.simulated.traffic is not None:
            for key in ("control", "ptt", "squelch"):
                if getattr(self, key) is not None:
                    complete = False
                    problems.add(
                        (key,),
                        "generated traffic makes its own carrier; remove traffic, "
                        "or remove the radio's squelch/ptt/control",
                    )
        if self.squelch is not None and self.squelch.ctcss_hz is not None:
            problems.add(
                ("squelch", "ctcss_hz"),
                "ctcss_hz needs the radio's audio (the tone is detected in it), and a simulated "
                "radio has none: remove ctcss_hz, or remove 'simulated' to use hardware",
                self.squelch.ctcss_hz,
            )
        if self.squelch is not None and self.squelch.method == "vox":
            complete = False
            problems.add(
                ("squelch", "method"),
                "vox needs the radio's audio, and a simulated radio has none; use "
                f"{_SIMULATED_SQUELCH_METHODS}, or remove 'simulated' to use hardware",
                "vox",
            )
        # A CM108 is found through the radio's sound card; a simulated radio has none.
        for key, settings in (("ptt", self.ptt), ("squelch", self.squelch)):
            if settings is not None and settings.method == "cm108" and settings.port is None:
                problems.add(
                    (key, "port"),
                    f"{key} method cm108 on a simulated radio needs port, the CM108's "
                    "/dev/hidrawN (there is no sound card to find it from)",
                )
        return complete

    def _complete_hardware(self, problems: RuleProblems, *, simulated: bool) -> None:
        """Fill the hardware defaults (CAT PTT and squelch, lines on the CAT port) or complain.

        A simulated radio needs neither audio nor PTT/squelch, but what it has gets the same
        defaults and rules as on a hardware radio.
        """
        if self.audio is None and not simulated:
            problems.add(
                ("audio",),
                "a hardware radio needs audio: {input: ..., output: ...}; "
                "or write 'simulated: {}' for a simulated radio",
            )
        control_port = self.control.port if self.control is not None else None
        if self.ptt is None:
            if self.control is not None:
                self.ptt = PttSettings(method="cat")
            elif not simulated:
                problems.add(
                    ("ptt",),
                    "a radio without control (CAT) needs ptt: method rts, dtr, cm108 or none",
                )
        elif self.ptt.method == "cat" and self.control is None:
            problems.add(
                ("ptt", "method"),
                "ptt method cat needs control (a CAT connection); add control, "
                "or use rts, dtr, cm108 or none",
                "cat",
            )
        elif self.ptt.method in SERIAL_PTT_METHODS and self.ptt.port is None:
            if control_port is not None:
                self.ptt.port = control_port
            else:
                problems.add(
                    ("ptt", "port"),
                    f"ptt method {self.ptt.method} needs port, the serial line that keys the radio",
                )
        if self.squelch is None:
            if self.control is not None:
                self.squelch = SquelchSettings(method="cat")
            elif not simulated:
                problems.add(
                    ("squelch",),
                    "a radio without control (CAT) needs squelch: method cts, dsr, dcd, ri, vox "
                    "or cm108",
                )
        elif self.squelch.method == "cat" and self.control is None:
            problems.add(
                ("squelch", "method"),
                "squelch method cat needs control (a CAT connection); add control, "
                "or use cts, dsr, dcd, ri, vox or cm108",
                "cat",
            )
        elif self.squelch.method in SERIAL_SQUELCH_METHODS and self.squelch.port is None:
            if control_port is not None:
                self.squelch.port = control_port
            else:
                problems.add(
                    ("squelch", "port"),
                    f"squelch method {self.squelch.method} needs port, the serial line "
                    "that carries the radio's COS",
                )


# --- links -------------------------------------------------------------------------------------

# Where plain RTP may go: loopback, and networks that never route across the internet.
_PRIVATE_NETWORKS = tuple(
    ipaddress.ip_network(net)
    for net in (
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "169.254.0.0/16",
        "fc00::/7",
        "fe80::/10",
    )
)


def is_loopback_or_private(host: str) -> bool:
    """Whether `host` (an address, or `localhost`) is a loopback or private address. Other host
    names are not: what they resolve to can change after the config was checked."""
    if host.lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback or any(address in net for net in _PRIVATE_NETWORKS)


USRP_ONLY_KEYS = ("usrp_type_byte_order", "usrp_ping_s", "usrp_timeout_s")
USRP_TIMEOUT_PINGS = 3
USRP_MAX_TALKGROUP_ID = 0xFFFF_FFFF  # the header's talkgroup is a uint32


# RTP and USRP links carry 20 ms packets, one a frame: only a gateway of 20 ms frames drives them.
LINK_FRAME_MS = 20


class Link(PortSettings):
    """A port to another gateway or network: an RTP or USRP audio stream."""

    talkgroup: TalkgroupRef
    protocol: Literal["rtp", "usrp"]
    local: HostPort
    remote: HostPort
    codec: Literal["pcmu", "pcma", "dvi4", "opus"] = "pcmu"
    srtp_key_file: ConfigPath | None = None
    insecure: bool = False
    timing: LinkTiming = Field(default_factory=LinkTiming)
    duplex: Literal["half", "full"] = "full"
    # USRP only (gateway.links.usrp_link). The byte order of the header's `type` field: ASL and
    # DVSwitch put it little-endian, some other implementations big-endian.
    usrp_type_byte_order: Literal["little", "big"] = "little"
    # A PING (DVSwitch type 3, header only) after this long with nothing sent; 0: never. ASL
    # ignores header-only packets, so pinging it is harmless.
    usrp_ping_s: float = Field(default=1.0, ge=0, le=60)
    # The peer is down after this long unheard; None: never (ASL sends nothing while idle).
    usrp_timeout_s: float | None = Field(default=None, gt=0, le=3600)

    @property
    def local_address(self) -> tuple[str, int]:
        return split_host_port(self.local)

    @property
    def remote_address(self) -> tuple[str, int]:
        return split_host_port(self.remote)

    @model_validator(mode="after")
    def _check_security(self) -> Link:
        problems = RuleProblems()
        if self.protocol == "rtp":
            if self.srtp_key_file is None and not self.insecure:
                problems.add(
                    ("srtp_key_file",),
                    "an RTP link needs srtp_key_file, or insecure: true to send audio unencrypted "
                    "(an unencrypted link must be asked for)",
                )
            elif self.srtp_key_file is not None and self.insecure:
                problems.add(
                    ("insecure",),
                    "give srtp_key_file or insecure: true, not both",
                    self.insecure,
                )
            elif self.insecure and not is_loopback_or_private(self.remote_address[0]):
                problems.add(
                    ("insecure",),
                    f"insecure: true is only for a loopback or private remote address "
                    f"(127.0.0.0/8, ::1, 10/8, 172.16/12, 192.168/16, 169.254/16, fc00::/7, "
                    f"fe80::/10), and {self.remote_address[0]} is none: give srtp_key_file",
                    self.insecure,
                )
            for key in USRP_ONLY_KEYS:
                if key in self.model_fields_set:
                    problems.add(
                        (key,),
                        f"{key} applies to USRP links: remove it, or use protocol usrp",
                        getattr(self, key),
                    )
        else:
            if self.srtp_key_file is not None:
                problems.add(
                    ("srtp_key_file",),
                    "USRP has no encryption: remove srtp_key_file, or use protocol rtp",
                    str(self.srtp_key_file),
                )
            if "codec" in self.model_fields_set:
                problems.add(
                    ("codec",),
                    "USRP always carries 16-bit linear audio: remove codec",
                    self.codec,
                )
            host = self.remote_address[0]
            if not self.insecure and not is_loopback_or_private(host):
                problems.add(
                    ("remote",),
                    f"USRP audio is unencrypted and {host} is not a loopback or private address: "
                    "add insecure: true to send it there anyway, or use protocol rtp with "
                    "srtp_key_file",
                    self.remote,
                )
            self._check_usrp_timeout(problems)
        problems.raise_if_any(type(self).__name__)
        return self

    def _check_usrp_timeout(self, problems: RuleProblems) -> None:
        timeout, ping = self.usrp_timeout_s, self.usrp_ping_s
        # A peer configured like this link pings as often as we do: a timeout of fewer than
        # three of its pings would declare it down whenever one or two are lost.
        if timeout is not None and ping > 0 and timeout < USRP_TIMEOUT_PINGS * ping - 1e-9:
            problems.add(
                ("usrp_timeout_s",),
                f"usrp_timeout_s {timeout:g} is shorter than {USRP_TIMEOUT_PINGS} pings of "
                f"usrp_ping_s {ping:g}: make it at least {USRP_TIMEOUT_PINGS * ping:g}, so a peer "
                "pinging like this link is not declared down when a ping or two are lost",
                timeout,
            )


# --- patches -----------------------------------------------------------------------------------


class Member(StrictModel):
    """One talkgroup of a patch, and whether it talks, listens or both."""

    talkgroup: TalkgroupRef
    mode: Literal["talk+listen", "listen", "talk"] = "talk+listen"
    priority: int = Field(default=0, ge=0, le=100)

    @property
    def agency(self) -> str:
        return split_talkgroup_ref(self.talkgroup)[0]

    @property
    def talks(self) -> bool:
        """Heard by the patch (its receive audio is sent to the others)."""
        return self.mode != "listen"

    @property
    def listens(self) -> bool:
        """Hears the patch (the others' audio is transmitted on it)."""
        return self.mode != "talk"


def _member_short_form(value: Any) -> Any:
    if isinstance(value, str):
        return {"talkgroup": value}
    if not isinstance(value, dict):
        raise rule_error(
            "a member is 'agency/talkgroup' or a mapping {talkgroup, mode, priority} "
            f"(got {value!r})"
        )
    return value


MemberItem = Annotated[
    Member, BeforeValidator(_member_short_form, json_schema_input_type=str | Member)
]


class Patch(StrictModel):
    members: list[MemberItem]
    floor: Literal["first", "priority", "mix"] = "first"
    enabled: bool = False
    consent: list[Name] | None = None
    announce: bool = True  # false: no announcements (enable, disable, id) for this patch

    def member_agencies(self) -> list[str]:
        """Agencies of the members, each once, in member order."""
        return list(dict.fromkeys(member.agency for member in self.members))

    def consent_agencies(self, cfg: Config | None = None) -> list[str]:
        """Agencies that must approve enabling: `consent`, or every member agency when omitted.

        `cfg` is accepted for callers that hold one; member agencies come from the references.
        """
        return list(self.consent) if self.consent is not None else self.member_agencies()

    @model_validator(mode="after")
    def _check_members(self) -> Patch:
        problems = RuleProblems()
        if len(self.members) < 2:
            problems.add(
                ("members",),
                f"a patch joins at least two talkgroups; this one has {len(self.members)}",
            )
        first_index: dict[str, int] = {}
        for index, member in enumerate(self.members):
            if member.talkgroup in first_index:
                problems.add(
                    ("members", index),
                    f"talkgroup '{member.talkgroup}' is already member "
                    f"{first_index[member.talkgroup]} of this patch",
                    member.talkgroup,
                )
            first_index.setdefault(member.talkgroup, index)
        for index, agency in enumerate(self.consent or []):
            if agency in (self.consent or [])[:index]:
                problems.add(("consent", index), f"agency '{agency}' is listed twice", agency)
        problems.raise_if_any(type(self).__name__)
        return self


# --- announcements -----------------------------------------------------------------------------


def _check_tone(value: Any) -> Any:
    # Checked before pydantic so the message speaks of tones, at the tone's own index.
    if not (isinstance(value, list) and len(value) == 2):
        raise rule_error(
            f"a tone is [hz, ms], like [1000, 100], with hz 0 for a pause (got {value!r})"
        )
    hz, ms = value
    if not all(isinstance(part, (int, float)) and not isinstance(part, bool) for part in value):
        return value  # pydantic reports the type
    low_hz, high_hz = ANNOUNCEMENT_TONE_HZ
    if hz != 0 and not low_hz <= hz <= high_hz:
        raise rule_error(
            f"a tone's hz must be 0 (a pause) or {low_hz:g} to {high_hz:g} Hz, the voice band "
            f"above every CTCSS tone (got {hz:g})"
        )
    shortest, longest = ANNOUNCEMENT_TONE_MS
    if not shortest <= ms <= longest:
        raise rule_error(f"a tone's ms must be {shortest} to {longest} (got {ms:g})")
    return value


Tone = Annotated[
    tuple[float, int],
    BeforeValidator(_check_tone),
    WithJsonSchema(
        {
            "type": "array",
            "prefixItems": [{"type": "number"}, {"type": "integer"}],
            "minItems": 2,
            "maxItems": 2,
        }
    ),
]

BuiltinAnnouncement = Literal["enable", "disable", "id"]


class Announcement(StrictModel):
    """One prompt: a sound file, a tone sequence or a built-in prompt; exactly one of them.

    `file` is any format ffmpeg reads (WAV needs no ffmpeg); a relative path is relative to the
    config file's directory (`file_path`). `tones` is `[[hz, ms], ...]`, hz 0 for a pause.
    `level_dbfs` is the prompt's peak level; None takes the announcements section's.
    """

    file: ConfigPath | None = None
    tones: list[Tone] | None = Field(default=None, min_length=1)
    builtin: BuiltinAnnouncement | None = None
    level_dbfs: float | None = Field(default=None, le=0)

    @field_validator("file", mode="before")
    @classmethod
    def _check_file(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            raise rule_error("file must name a sound file, like sounds/patch-on.wav")
        return value

    @model_validator(mode="after")
    def _check_source(self) -> Announcement:
        problems = RuleProblems()
        given = [key for key in ("file", "tones", "builtin") if getattr(self, key) is not None]
        if not given:
            problems.add(
                (),
                "an announcement needs one of file (a sound file), tones ([[hz, ms], ...]) "
                "or builtin (enable, disable or id)",
            )
        for extra in given[1:]:
            problems.add(
                (extra,),
                f"give one of file, tones and builtin, not both {given[0]} and {extra}",
                getattr(self, extra),
            )
        if self.tones is not None:
            seconds = sum(ms for _, ms in self.tones) / 1000
            if all(hz == 0 for hz, _ in self.tones):
                problems.add(("tones",), "tones has only pauses (hz 0): add a tone")
            elif seconds > MAX_ANNOUNCEMENT_S:
                problems.add(
                    ("tones",),
                    f"tones last {seconds:g} s; an announcement lasts at most "
                    f"{MAX_ANNOUNCEMENT_S:g} s",
                )
        problems.raise_if_any(type(self).__name__)
        return self

    def file_path(self, base_dir: Path) -> Path | None:
        """The sound file, a relative `file` taken relative to `base_dir` (the config file's
        directory: models do not know where their file was); None if this is no file."""
        if self.file is None:
            return None
        return base_dir / self.file  # an absolute `file` stays as it is


def _builtin(name: BuiltinAnnouncement) -> Announcement:
    return Announcement(builtin=name)


class PatchId(StrictModel):
    """The periodic identification of every enabled patch, on its members' channels."""

    every_s: float = Field(default=600.0, ge=60, le=3600)
    announcement: Announcement = Field(default_factory=lambda: _builtin("id"))


class Announcements(StrictModel):
    """Prompts on a patch's channels when it is enabled or disabled, and its periodic ID.

    `on_enable` and `on_disable` default to the built-in prompts; null means silence. Without
    this section there are no announcements; `enabled: false` keeps it but silences it, and a
    patch's `announce: false` silences that patch.
    """

    enabled: bool = True
    level_dbfs: float = Field(default=-12.0, le=0)
    on_enable: Announcement | None = Field(default_factory=lambda: _builtin("enable"))
    on_disable: Announcement | None = Field(default_factory=lambda: _builtin("disable"))
    patch_id: PatchId | None = None

    def level_of(self, announcement: Announcement) -> float:
        """The peak level of `announcement`: its own level_dbfs, else the section's."""
        if announcement.level_dbfs is not None:
            return announcement.level_dbfs
        return self.level_dbfs

    def sources(self) -> list[tuple[tuple[str, ...], Announcement]]:
        """Every configured announcement with its key path below `announcements`."""
        found: list[tuple[tuple[str, ...], Announcement]] = []
        if self.on_enable is not None:
            found.append((("on_enable",), self.on_enable))
        if self.on_disable is not None:
            found.append((("on_disable",), self.on_disable))
        if self.patch_id is not None:
            found.append((("patch_id", "announcement"), self.patch_id.announcement))
        return found


# --- access, MQTT, recording -------------------------------------------------------------------


class Dispatcher(StrictModel):
    agency: Name


class Access(StrictModel):
    """Who may command the gateway: dispatchers act for their agency, technicians for the site."""

    dispatchers: dict[Name, Dispatcher] = Field(default_factory=dict)
    technicians: list[Name] = Field(default_factory=list)
    # A request still waiting for another agency's approval after this long is withdrawn: an
    # approval given much later may no longer fit the situation it was asked for.
    pending_expiry_s: int = Field(default=900, ge=10, le=86400)

    def is_principal(self, user: str) -> bool:
        return user in self.dispatchers or user in self.technicians

    @model_validator(mode="after")
    def _check_roles(self) -> Access:
        problems = RuleProblems()
        for index, user in enumerate(self.technicians):
            if user in self.technicians[:index]:
                problems.add(("technicians", index), f"technician '{user}' is listed twice", user)
            elif user in self.dispatchers:
                problems.add(
                    ("technicians", index),
                    f"'{user}' is already a dispatcher; a user is a dispatcher or a technician, "
                    "not both",
                    user,
                )
        problems.raise_if_any(type(self).__name__)
        return self


_MQTT_URL_RE = re.compile(r"(mqtts?)://([^\s:/@\[\]]+|\[[0-9A-Fa-f:.]+\])(?::(\d{1,5}))?/?")


class MqttSettings(StrictModel):
    url: str
    topic_prefix: str = "crosspatch"
    username: str | None = None
    password_file: ConfigPath | None = None
    ca_file: ConfigPath | None = None
    cert_file: ConfigPath | None = None
    key_file: ConfigPath | None = None
    protocol: Literal["3.1.1", "5"] = "5"
    # Disk the durable outbox may fill while the broker is away (about 1 KiB an event).
    outbox_mb: int = Field(default=256, ge=1, le=100_000)
    # Commands each login may have run over MQTT: so many a second, in bursts of up to so many;
    # more are refused and counted, in one audit a second (gateway.mqtt.command_limit).
    commands_per_s: float = Field(default=5.0, gt=0, le=1000)
    command_burst: int = Field(default=20, ge=1, le=10_000)

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        match = _MQTT_URL_RE.fullmatch(value)
        if match is None:
            raise rule_error(
                f"url must be mqtt://host[:port] or mqtts://host[:port] (got '{value}')"
            )
        if match.group(3) is not None and not 1 <= int(match.group(3)) <= 65535:
            raise rule_error(f"the port in url must be between 1 and 65535 (got {match.group(3)})")
        return value

    @field_validator("topic_prefix")
    @classmethod
    def _check_topic_prefix(cls, value: str) -> str:
        if not value or value.startswith("/") or value.endswith("/") or "//" in value:
            raise rule_error(f"topic_prefix must be topic levels like 'crosspatch' (got '{value}')")
        if any(char in value for char in "+#\0"):
            raise rule_error(f"topic_prefix may not contain the wildcards + or # (got '{value}')")
        return value

    @field_validator("protocol", mode="before")
    @classmethod
    def _protocol_as_text(cls, value: Any) -> Any:
        # `protocol: 5` is read by YAML as a number.
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @model_validator(mode="after")
    def _check_client_certificate(self) -> MqttSettings:
        problems = RuleProblems()
        if (self.cert_file is None) != (self.key_file is None):
            missing = "key_file" if self.key_file is None else "cert_file"
            problems.add((missing,), "a client certificate needs both cert_file and key_file")
        problems.raise_if_any(type(self).__name__)
        return self

    @property
    def tls(self) -> bool:
        return self.url.startswith("mqtts:")

    @property
    def host(self) -> str:
        match = _MQTT_URL_RE.fullmatch(self.url)
        assert match is not None  # checked by the validator
        return match.group(2).strip("[]")

    @property
    def port(self) -> int:
        match = _MQTT_URL_RE.fullmatch(self.url)
        assert match is not None  # checked by the validator
        if match.group(3) is not None:
            return int(match.group(3))
        return 8883 if self.tls else 1883


class RecordingSettings(StrictModel):
    dir: ConfigPath
    format: Literal["wav", "mp3", "opus"] = "wav"
    keep_days: int | None = Field(default=None, gt=0)


# --- the whole file ----------------------------------------------------------------------------


# sizeof(sockaddr_un.sun_path) - 1 on Linux: a longer control socket path cannot be bound.
UNIX_SOCKET_PATH_MAX = 107


class GatewaySettings(StrictModel):
    id: Name
    frame_ms: Literal[10, 20, 40] = 20
    state_dir: ConfigPath = Path("/var/lib/crosspatch")
    control_socket: ConfigPath | None = None

    @model_validator(mode="after")
    def _check_socket_path(self) -> GatewaySettings:
        # `run` could not bind it: refused here, so that a config `check` accepts is one `run`
        # starts.
        path = self.control_socket_path
        size = len(os.fsencode(path))
        if size > UNIX_SOCKET_PATH_MAX:
            problems = RuleProblems()
            key = "control_socket" if self.control_socket is not None else "state_dir"
            problems.add(
                (key,),
                f"the control socket {path} is {size} bytes long; a Unix socket path has at "
                f"most {UNIX_SOCKET_PATH_MAX}: give gateway.control_socket a shorter path",
            )
            problems.raise_if_any(type(self).__name__)
        return self

    @property
    def control_socket_path(self) -> Path:
        """The control socket: as configured, else `control.sock` in the state directory."""
        return self.control_socket or self.state_dir / "control.sock"

    @property
    def samples_per_frame(self) -> int:
        return SAMPLE_RATE_HZ * self.frame_ms // 1000


class Config(StrictModel):
    """A whole gateway site; `gateway.config.load_config` builds it and checks its references."""

    gateway: GatewaySettings
    agencies: dict[Name, Agency]
    radios: dict[Name, Radio] = Field(default_factory=dict)
    links: dict[Name, Link] = Field(default_factory=dict)
    patches: dict[Name, Patch] = Field(default_factory=dict)
    access: Access = Field(default_factory=Access)
    mqtt: MqttSettings | None = None
    recording: RecordingSettings | None = None
    announcements: Announcements | None = None

    def talkgroup(self, ref: str) -> Talkgroup:
        """The talkgroup `agency/name`; raises KeyError if it is not defined."""
        agency, name = split_talkgroup_ref(ref)
        try:
            return self.agencies[agency].talkgroups[name]
        except KeyError:
            raise KeyError(f"talkgroup {ref!r} is not defined") from None

    def talkgroup_refs(self) -> list[str]:
        """Every talkgroup as `agency/name`, in config order."""
        return [
            f"{agency_name}/{talkgroup_name}"
            for agency_name, agency in self.agencies.items()
            for talkgroup_name in agency.talkgroups
        ]

    def ports(self) -> list[str]:
        """Every port name in config order: radios first, then links."""
        return [*self.radios, *self.links]

    def port(self, name: str) -> Radio | Link:
        """The radio or link called `name`; raises KeyError."""
        if name in self.radios:
            return self.radios[name]
        if name in self.links:
            return self.links[name]
        raise KeyError(f"port {name!r} is not defined")

    def port_talkgroup(self, name: str) -> str | None:
        """The talkgroup (`agency/name`) the port `name` always serves, None for a pool radio;
        raises KeyError."""
        return self.port(name).talkgroup

    def ports_of_talkgroup(self, ref: str) -> list[str]:
        """Dedicated ports (not pool radios) that serve talkgroup `ref`, in config order."""
        return [name for name in self.ports() if self.port_talkgroup(name) == ref]

    def pool_radios(self) -> list[str]:
        """Radios tuned on demand (`pool:`), in config order."""
        return [name for name, radio in self.radios.items() if radio.pool is not None]

    def pool_candidates(self, ref: str) -> list[str]:
        """Pool radios that can be tuned to talkgroup `ref`: their bands_mhz cover both its
        rx_mhz and tx_mhz. In config order; none for a talkgroup without frequencies. Raises
        KeyError if `ref` is not defined."""
        talkgroup = self.talkgroup(ref)
        rx, tx = talkgroup.rx_mhz, talkgroup.tx_mhz
        if rx is None or tx is None:
            return []
        return [
            name
            for name in self.pool_radios()
            if self.radios[name].in_bands(rx) and self.radios[name].in_bands(tx)
        ]
