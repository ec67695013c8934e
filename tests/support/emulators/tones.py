"""The CTCSS tone lists the emulated radios number their tones in: the 50 standard tones
(docs/protocols.md, "CTCSS and DCS tones") and the shorter lists Kenwood radios number."""

from __future__ import annotations

STANDARD_TONES = (
    67.0, 69.3, 71.9, 74.4, 77.0, 79.7, 82.5, 85.4, 88.5, 91.5, 94.8, 97.4, 100.0, 103.5,
    107.2, 110.9, 114.8, 118.8, 123.0, 127.3, 131.8, 136.5, 141.3, 146.2, 151.4, 156.7, 159.8,
    162.2, 165.5, 167.9, 171.3, 173.8, 177.3, 179.9, 183.5, 186.2, 189.9, 192.8, 196.6, 199.5,
    203.5, 206.5, 210.7, 218.1, 225.7, 229.1, 233.6, 241.8, 250.3, 254.1,
)  # fmt: skip

# Kenwood's 42: the standard ones without eight interstitial tones; the TS-2000's 38: the 42
# without four more.
KENWOOD_42 = tuple(
    t for t in STANDARD_TONES if t not in (159.8, 165.5, 171.3, 177.3, 183.5, 189.9, 196.6, 199.5)
)
KENWOOD_38 = tuple(t for t in KENWOOD_42 if t not in (69.3, 206.5, 229.1, 254.1))
