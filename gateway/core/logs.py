"""Log lines on stderr in the form the place they end up keeps best.

Under systemd, stderr is a stream into journald (which sets `JOURNAL_STREAM` to that stream's
`device:inode`). journald stamps each line itself and reads a leading `<N>` as the line's syslog
priority, so there a line is `<3>engine: message`: `journalctl -p warning` then filters by level
and no second timestamp clutters the journal. Anywhere else (a terminal, a file, a pipe) a line
carries its own UTC timestamp: `2026-01-01T00:00:00.123Z WARNING engine: message`.

No colour, even on a terminal: plain text is what technicians paste into tickets.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Mapping
from typing import TextIO

# syslog priorities (RFC 5424) journald understands in a `<N>` prefix.
_SYSLOG_PRIORITY = (
    (logging.CRITICAL, 2),
    (logging.ERROR, 3),
    (logging.WARNING, 4),
    (logging.INFO, 6),
)
_DEBUG_PRIORITY = 7

_PREFIX = "gateway."

# `extra={EACH_LINE: True}`: a record whose message is several log lines of their own (a batch of
# events, one JSON object a line, logged at once): each line gets the full head, as if it were a
# record of its own, instead of being indented as a continuation. One record for a batch costs
# the logging machinery (record, formatting, write, flush) once instead of once per line.
EACH_LINE = "each_line"


def syslog_priority(levelno: int) -> int:
    """The syslog priority of a logging level (custom levels fall to the next standard one down)."""
    for level, priority in _SYSLOG_PRIORITY:
        if levelno >= level:
            return priority
    return _DEBUG_PRIORITY


def component(logger_name: str) -> str:
    """`gateway.core.engine` -> `engine`; other loggers (third-party, root) keep their names."""
    return logger_name.removeprefix(_PREFIX) if logger_name.startswith(_PREFIX) else logger_name


def stream_is_journal(stream: TextIO, environ: Mapping[str, str] | None = None) -> bool:
    """True if `stream` is the journald stream systemd connected (JOURNAL_STREAM=dev:ino)."""
    value = (os.environ if environ is None else environ).get("JOURNAL_STREAM", "")
    device, colon, inode = value.partition(":")
    if not colon:
        return False
    try:
        # A replaced stream (pytest capture, io.StringIO) has no descriptor: not the journal.
        info = os.fstat(stream.fileno())
        return (info.st_dev, info.st_ino) == (int(device), int(inode))
    except (OSError, ValueError, AttributeError):
        # io.UnsupportedOperation is both an OSError and a ValueError.
        return False


class JournalFormatter(logging.Formatter):
    """`<N>component: message`; every line of a multi-line record (a traceback) gets the prefix,
    because journald stores each line as its own entry with its own priority."""

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{syslog_priority(record.levelno)}>{component(record.name)}: "
        if getattr(record, EACH_LINE, False):
            return "\n".join(prefix + line for line in record.getMessage().split("\n"))
        return "\n".join(prefix + line for line in _message_lines(self, record))


class PlainFormatter(logging.Formatter):
    """`2026-01-01T00:00:00.123Z LEVEL component: message`, in UTC."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        head = f"{stamp}.{int(record.msecs):03d}Z {record.levelname} {component(record.name)}: "
        if getattr(record, EACH_LINE, False):  # split on newlines only, as they were joined
            return "\n".join(head + line for line in record.getMessage().split("\n"))
        lines = _message_lines(self, record)
        # Continuation lines are indented, so each record still starts with a timestamp.
        return "\n".join([head + lines[0], *("    " + line for line in lines[1:])])


def _message_lines(formatter: logging.Formatter, record: logging.LogRecord) -> list[str]:
    text = record.getMessage()
    if record.exc_info:
        text = f"{text}\n{formatter.formatException(record.exc_info)}"
    if record.stack_info:
        text = f"{text}\n{formatter.formatStack(record.stack_info)}"
    return text.splitlines() or [""]


class _Handler(logging.StreamHandler[TextIO]):
    """Marks the handler `setup_logging` installed, so calling it again replaces it."""


def setup_logging(verbose: bool = False, *, stream: TextIO | None = None) -> None:
    """Send every log record at INFO (DEBUG with `verbose`) and above to stderr.

    `stream` replaces stderr (for tests). The format is chosen once, here: journald's when the
    stream is the journal stream systemd set up, else timestamped lines.
    """
    target = sys.stderr if stream is None else stream
    handler = _Handler(target)
    handler.setFormatter(JournalFormatter() if stream_is_journal(target) else PlainFormatter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
