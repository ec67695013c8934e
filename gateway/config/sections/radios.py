"""Radios, and the port settings links share with them: timing, traffic, audio, control, PTT and
squelch."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from gateway.config.sections.common import (
    DEFAULT_CM108_COS_BUTTON,
    DEFAULT_CM108_GPIO,
    DEFAULT_RIGCTLD_HOST,
    DEFAULT_RIGCTLD_PORT,
    DEFAULT_VOX_THRESHOLD_DBFS,
    DEVICE_RATES_HZ,
    SERIAL_PTT_METHODS,
    SERIAL_SQUELCH_METHODS,
    STANDARD_BAUDS,
    CatDriverName,
    Cm108Button,
    CtcssTone,
    Name,
    RuleProblems,
    StrictModel,
    TalkgroupRef,
    rule_error,
)
from gateway.core.timing import (
    DEFAULT_HANG_MS,
    DEFAULT_RX_INHIBIT_MS,
    DEFAULT_TIMEOUT_S,
    DEFAULT_TX_DELAY_MS,
    DEFAULT_VOX_ATTACK_MS,
    DEFAULT_VOX_HANG_MS,
)

# --- radios ------------------------------------------------------------------------------------


class Timing(StrictModel):
    """Per-port timing rules; see docs/design.md, "Timing rules per port"."""

    tx_delay_ms: int = Field(default=DEFAULT_TX_DELAY_MS, ge=0, le=2000)
    hang_ms: int = Field(default=DEFAULT_HANG_MS, ge=0, le=10000)
    timeout_s: float = Field(default=DEFAULT_TIMEOUT_S, gt=0, le=3600)
    rx_inhibit_ms: int = Field(default=DEFAULT_RX_INHIBIT_MS, ge=0, le=5000)


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

    driver: CatDriverName
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
