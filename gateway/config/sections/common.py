"""Shared by every section: device and driver constants, rule errors, names and
references, tones and frequencies, paths, and the strict base model."""

from __future__ import annotations

import re
from bisect import bisect_left
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

# The 50 standard CTCSS tones and 104 DCS codes, shared with the CAT drivers (re-exported).
from gateway.core.tones import CTCSS_TONES_HZ as CTCSS_TONES_HZ
from gateway.core.tones import DCS_CODES as DCS_CODES
from gateway.core.tones import nearest_ctcss_tone as nearest_ctcss_tone

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
# The `control.driver` names a config accepts; `gateway.hardware.cat.registry` maps each to its
# class (a test holds the two lists equal).
CatDriverName = Literal["kenwood", "kenwood-tm", "yaesu-legacy", "yaesu", "icom", "rigctld"]
CAT_DRIVER_NAMES: tuple[str, ...] = get_args(CatDriverName)
SERIAL_DRIVERS = frozenset(CAT_DRIVER_NAMES) - {"rigctld"}  # rigctld is reached over TCP
SERIAL_PTT_METHODS = frozenset({"rts", "dtr"})
SERIAL_SQUELCH_METHODS = frozenset({"cts", "dsr", "dcd", "ri"})
DEFAULT_RIGCTLD_HOST = "localhost"
DEFAULT_RIGCTLD_PORT = 4532
# Dire Wolf's default: most CM108/CM119 interfaces key the radio from GPIO 3.
DEFAULT_CM108_GPIO = 3
DEFAULT_VOX_THRESHOLD_DBFS = -30.0
# app_rpt's default COS input (carrierfrom=usb): the VOLDN button input of a CM108/CM119, where
# the DMK URI and most modified fobs wire the radio's COS (VOLUP carries a CTCSS decoder).
Cm108Button = Literal["volup", "voldn"]
DEFAULT_CM108_COS_BUTTON: Cm108Button = "voldn"
# Rates a sound card is opened at; the engine itself always runs at
# gateway.core.timing.SAMPLE_RATE.
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
