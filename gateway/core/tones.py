"""The standard CTCSS tones and DCS codes (docs/protocols.md, "CTCSS and DCS tones"), shared by the
configuration and the CAT drivers. Plain data and plain functions only: `gateway.config` imports
this module, so it must never import `gateway.hardware` (nor anything that does)."""

from __future__ import annotations

import re
from typing import NamedTuple

# The 50 standard CTCSS tones (Hamlib's `common_ctcss_list`), in Hz.
CTCSS_TONES_HZ: tuple[float, ...] = (
    67.0, 69.3, 71.9, 74.4, 77.0, 79.7, 82.5, 85.4, 88.5, 91.5,
    94.8, 97.4, 100.0, 103.5, 107.2, 110.9, 114.8, 118.8, 123.0, 127.3,
    131.8, 136.5, 141.3, 146.2, 151.4, 156.7, 159.8, 162.2, 165.5, 167.9,
    171.3, 173.8, 177.3, 179.9, 183.5, 186.2, 189.9, 192.8, 196.6, 199.5,
    203.5, 206.5, 210.7, 218.1, 225.7, 229.1, 233.6, 241.8, 250.3, 254.1,
)  # fmt: skip

# The 104 standard DCS codes (octal; Hamlib's `common_dcs_list`), each usable normal (N) or
# inverted (I). Radios that number DCS codes count positions in this order.
DCS_CODES: tuple[str, ...] = (
    "023", "025", "026", "031", "032", "036", "043", "047", "051", "053", "054", "065",
    "071", "072", "073", "074", "114", "115", "116", "122", "125", "131", "132", "134",
    "143", "145", "152", "155", "156", "162", "165", "172", "174", "205", "212", "223",
    "225", "226", "243", "244", "245", "246", "251", "252", "255", "261", "263", "265",
    "266", "271", "274", "306", "311", "315", "325", "331", "332", "343", "346", "351",
    "356", "364", "365", "371", "411", "412", "413", "423", "431", "432", "445", "446",
    "452", "454", "455", "462", "464", "465", "466", "503", "506", "516", "523", "526",
    "532", "546", "565", "606", "612", "624", "627", "631", "632", "654", "662", "664",
    "703", "712", "723", "731", "732", "734", "743", "754",
)  # fmt: skip

_DCS_RE = re.compile(r"([0-7]{3})([NI]?)")


class DcsCode(NamedTuple):
    digits: str  # the 3 octal digits, e.g. "023"
    inverted: bool


def nearest_ctcss_tone(hz: float, table: tuple[float, ...] = CTCSS_TONES_HZ) -> float:
    """The tone of `table` closest to `hz`."""
    return min(table, key=lambda tone: abs(tone - hz))


def parse_dcs(code: str) -> DcsCode:
    """Splits "023N" into DcsCode("023", inverted=False), "754I" into ("754", True); a code without
    its polarity letter ("023") is normal. Exactly that form (upper case, no spaces); anything else,
    or a code outside the 104 standard ones, raises ValueError."""
    match = _DCS_RE.fullmatch(code)
    if match is None or match.group(1) not in DCS_CODES:
        raise ValueError(f"{code!r} is not one of the 104 standard DCS codes (like 023N)")
    return DcsCode(match.group(1), match.group(2) == "I")
