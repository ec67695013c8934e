"""Tone tables and tone helpers for the CAT drivers.

The 50 standard CTCSS tones and the 104 DCS codes live in `gateway.core.tones` (the configuration
checks channels against the same tables); this module re-exports them and adds the lookups the
drivers share, raising `CatError` / `CatProtocolError`. Each driver passes its own sentence, so
its messages stay its own.

Radios that number their tones (Kenwood `TN`/`CN`, the TM-D710's `FO` line, Yaesu `CN`) do so in
their own table and from their own first number, which differ between models of one family: a
driver learns the model from its probe and takes that model's `ToneTable`, so a tone number
read back is turned into Hz with the table of the radio that sent it.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.core.tones import CTCSS_TONES_HZ, DCS_CODES, DcsCode, nearest_ctcss_tone, parse_dcs
from gateway.hardware.cat.errors import CatError, CatProtocolError

__all__ = [
    "CTCSS_TONES_HZ",
    "DCS_CODES",
    "KENWOOD_38_TONES_HZ",
    "KENWOOD_42_TONES_HZ",
    "DcsCode",
    "ToneTable",
    "ctcss_at",
    "ctcss_index",
    "dcs_at",
    "dcs_code",
]

# Kenwood's 42 tones: the 50 standard ones without 159.8, 165.5, 171.3, 177.3, 183.5, 189.9,
# 196.6 and 199.5. Hamlib `kenwood42_ctcss_list` (rigs/kenwood/kenwood.c); CHIRP
# `chirp/drivers/kenwood_live.py` `KENWOOD_TONES` (the same removals from its 50).
KENWOOD_42_TONES_HZ: tuple[float, ...] = (
    67.0, 69.3, 71.9, 74.4, 77.0, 79.7, 82.5, 85.4, 88.5, 91.5,
    94.8, 97.4, 100.0, 103.5, 107.2, 110.9, 114.8, 118.8, 123.0, 127.3,
    131.8, 136.5, 141.3, 146.2, 151.4, 156.7, 162.2, 167.9, 173.8, 179.9,
    186.2, 192.8, 203.5, 206.5, 210.7, 218.1, 225.7, 229.1, 233.6, 241.8,
    250.3, 254.1,
)  # fmt: skip

# The TS-2000's 38: the 42 without 69.3, 206.5, 229.1 and 254.1. TS-2000 manual, computer
# control appendix (TN/CN 01 = 67.0 ... 38 = 250.3, 39 = 1750 Hz); Hamlib `ts2000_ctcss_list`
# (rigs/kenwood/ts2000.c) and `kenwood38_ctcss_list`.
KENWOOD_38_TONES_HZ: tuple[float, ...] = (
    67.0, 71.9, 74.4, 77.0, 79.7, 82.5, 85.4, 88.5, 91.5, 94.8,
    97.4, 100.0, 103.5, 107.2, 110.9, 114.8, 118.8, 123.0, 127.3, 131.8,
    136.5, 141.3, 146.2, 151.4, 156.7, 162.2, 167.9, 173.8, 179.9, 186.2,
    192.8, 203.5, 210.7, 218.1, 225.7, 233.6, 241.8, 250.3,
)  # fmt: skip


@dataclass(frozen=True)
class ToneTable:
    """One model's CTCSS tone numbers: `tones_hz` in the radio's order, the first numbered
    `first` (0 or 1). Only CTCSS tones: a 1750 Hz burst that some radios number after them is
    no channel tone, so a radio reporting its number is reported as outside the table."""

    tones_hz: tuple[float, ...]
    first: int = 0

    def number(self, hz: float, message: str) -> int:
        """The radio's number for `hz`; `CatError` with `message` and the nearest tone of the
        table if the table has no tone within 0.05 Hz of it."""
        return ctcss_index(hz, message, table=self.tones_hz) + self.first

    def hz(self, number: int, message: str) -> float:
        """The tone the radio means by `number`; `CatProtocolError(message)` outside the table."""
        return ctcss_at(number - self.first, message, table=self.tones_hz)


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
