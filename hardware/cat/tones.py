"""Tone tables and tone helpers for the CAT drivers.

The 50 standard CTCSS tones and the 104 DCS codes live in `gateway.tones` (the configuration
checks channels against the same tables); this module re-exports them and adds the lookups the
drivers share, raising `CatError` / `CatProtocolError`. Each driver passes its own sentence, so
its messages stay its own. Radios that index a smaller tone list (the Kenwood 38- and 42-tone
tables) keep that list in their driver and pass it as `table`.
"""

from __future__ import annotations

from gateway.hardware.cat.errors import CatError, CatProtocolError
from gateway.tones import CTCSS_TONES_HZ, DCS_CODES, DcsCode, nearest_ctcss_tone, parse_dcs

__all__ = [
    "CTCSS_TONES_HZ",
    "DCS_CODES",
    "DcsCode",
    "ctcss_at",
    "ctcss_index",
    "dcs_at",
    "dcs_code",
]


def ctcss_index(
    hz: float,
    message: str,
    *,
    table: tuple[float, ...] = CTCSS_TONES_HZ,
    tolerance_hz: float = 0.05,
) -> int:
    """The position in `table` of the tone within `tolerance_hz` of `hz`; otherwise a `CatError`
    with `message` (what the driver says about it) and the nearest tone of `table`."""
    for index, tone in enumerate(table):
        if abs(tone - hz) < tolerance_hz:
            return index
    raise CatError(f"{message}; the nearest is {nearest_ctcss_tone(hz, table):.1f} Hz")


def ctcss_at(index: int, message: str, *, table: tuple[float, ...] = CTCSS_TONES_HZ) -> float:
    """The tone at `index` of `table` (a radio's answer); `CatProtocolError(message)` if the
    index is outside it."""
    if not 0 <= index < len(table):
        raise CatProtocolError(message)
    return table[index]


def dcs_code(code: str, message: str) -> DcsCode:
    """`code` ("023N", "023I" or "023") as (digits, inverted); `CatError(message)` if it is not
    one of the 104 standard codes written that way. Polarity rules are the driver's."""
    try:
        return parse_dcs(code)
    except ValueError:
        raise CatError(message) from None


def dcs_at(index: int, message: str) -> str:
    """The DCS code (3 digits) at `index` of `DCS_CODES` (a radio's answer);
    `CatProtocolError(message)` if the index is outside it."""
    if not 0 <= index < len(DCS_CODES):
        raise CatProtocolError(message)
    return DCS_CODES[index]
