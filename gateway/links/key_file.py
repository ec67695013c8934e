"""SRTP key files: read and checked without the SRTP library, so the config loader can check
them (`crosspatch check`) exactly as a link reads them at start (`gateway.links.srtp`).

Key file format (`srtp_key_file` in a link's config): a text file holding one key, the 30 bytes
of SRTP master key (16) and master salt (14) in base64, exactly as in an SDES `inline:` key
(RFC 4568), with or without the `inline:` prefix. Blank lines and lines starting with `#` are
ignored; lifetime and MKI parameters (`|2^31|1:1`) are not supported. A file others can read is
used with a warning; a missing, unreadable, short, long or garbled file is a one-line
`KeyFileError`.
"""

from __future__ import annotations

import base64
import binascii
import logging
import stat
from pathlib import Path

from gateway.links import LinkError

log = logging.getLogger(__name__)

MASTER_KEY_BYTES = 16
MASTER_SALT_BYTES = 14
KEY_BYTES = MASTER_KEY_BYTES + MASTER_SALT_BYTES
PROFILE = "AES_CM_128_HMAC_SHA1_80"


class KeyFileError(LinkError):
    """A key file that cannot be used: says which file and what is wrong with it."""


def parse_key_text(text: str, source: str = "key") -> bytes:
    """The 30-byte key material in a key file's text; raises KeyFileError naming `source`."""
    lines = [
        line.strip()
        for line in text.splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    if not lines:
        raise KeyFileError(f"{source}: no key in it; it holds the base64 of {KEY_BYTES} bytes")
    if len(lines) > 1:
        raise KeyFileError(f"{source}: {len(lines)} lines; a key file holds one key")
    line = lines[0]
    if line.startswith("inline:"):
        line = line[len("inline:") :]
    if "|" in line:
        raise KeyFileError(f"{source}: lifetime and MKI parameters ('|...') are not supported")
    try:
        key = base64.b64decode(line, validate=True)
    except (binascii.Error, ValueError):
        raise KeyFileError(f"{source}: the key is not valid base64") from None
    if len(key) != KEY_BYTES:
        raise KeyFileError(
            f"{source}: the key is {len(key)} bytes; an {PROFILE} key is {KEY_BYTES} "
            f"({MASTER_KEY_BYTES}-byte master key + {MASTER_SALT_BYTES}-byte salt)"
        )
    if len(set(key)) == 1:
        raise KeyFileError(f"{source}: the key is one byte repeated; make a random one")
    return key


def read_key_file(path: Path) -> bytes:
    """The key in the file at `path`; raises KeyFileError in one line."""
    source = f"srtp_key_file {path}"
    try:
        text = path.read_text(encoding="ascii")
        mode = path.stat().st_mode
    except UnicodeDecodeError:
        raise KeyFileError(f"{source}: not a text file of base64") from None
    except OSError as exc:
        raise KeyFileError(f"{source}: {exc.strerror or exc}") from None
    key = parse_key_text(text, source)
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("%s can be read by others than its owner; chmod 600 it", path)
    return key
