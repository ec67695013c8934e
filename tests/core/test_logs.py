"""Log lines: `<N>component: message` on the journal stream, timestamped lines elsewhere."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import pytest

from gateway.core.logs import component, setup_logging, stream_is_journal, syslog_priority
from tests.support.paths import ROOT

PLAIN_LINE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (\w+) (\S+): (.*)")


def _journal_id(stream: TextIO) -> str:
    info = os.fstat(stream.fileno())
    return f"{info.st_dev}:{info.st_ino}"


@pytest.fixture
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


def _log_samples() -> None:
    logging.getLogger("gateway.engine").debug("tick 42")
    logging.getLogger("gateway.engine").info("patch border-tac enabled")
    logging.getLogger("gateway.hardware.serial").warning("radio wcso-1: no answer")
    logging.getLogger("gateway.daemon").error("control socket gone")
    logging.getLogger("aiomqtt").critical("broker lost")


def test_journal_stream_gets_priority_prefixes_and_no_timestamp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, restore_root_logger: None
) -> None:
    with (tmp_path / "journal").open("w+") as stream:
        monkeypatch.setenv("JOURNAL_STREAM", _journal_id(stream))
        setup_logging(verbose=True, stream=stream)
        _log_samples()
        stream.seek(0)
        lines = stream.read().splitlines()
    assert lines == [
        "<7>engine: tick 42",
        "<6>engine: patch border-tac enabled",
        "<4>hardware.serial: radio wcso-1: no answer",
        "<3>daemon: control socket gone",
        "<2>aiomqtt: broker lost",
    ]


def test_other_streams_get_utc_timestamps_and_level_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, restore_root_logger: None
) -> None:
    with (tmp_path / "other").open("w+") as other, (tmp_path / "log").open("w+") as stream:
        # The journal is some other stream: this one is not it.
        monkeypatch.setenv("JOURNAL_STREAM", _journal_id(other))
        setup_logging(stream=stream)  # not verbose: no debug
        _log_samples()
        stream.seek(0)
        lines = stream.read().splitlines()
    parsed = [PLAIN_LINE.fullmatch(line) for line in lines]
    assert all(parsed), lines
    assert [m.groups() for m in parsed if m] == [
        ("INFO", "engine", "patch border-tac enabled"),
        ("WARNING", "hardware.serial", "radio wcso-1: no answer"),
        ("ERROR", "daemon", "control socket gone"),
        ("CRITICAL", "aiomqtt", "broker lost"),
    ]


def test_tracebacks_stay_with_their_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, restore_root_logger: None
) -> None:
    with (tmp_path / "journal").open("w+") as stream:
        monkeypatch.setenv("JOURNAL_STREAM", _journal_id(stream))
        setup_logging(stream=stream)
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            logging.getLogger("gateway.engine").exception("engine failed")
        stream.seek(0)
        lines = stream.read().splitlines()
    assert lines[0] == "<3>engine: engine failed"
    assert len(lines) > 2
    assert all(line.startswith("<3>engine: ") for line in lines)
    assert lines[-1] == "<3>engine: RuntimeError: boom"


def test_setup_twice_replaces_the_handler(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, restore_root_logger: None
) -> None:
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    with (tmp_path / "log").open("w+") as stream:
        setup_logging(stream=stream)
        setup_logging(stream=stream)
        logging.getLogger("gateway.engine").info("once")
        stream.seek(0)
        assert len(stream.read().splitlines()) == 1


def test_real_stderr_connected_to_the_journal(tmp_path: Path) -> None:
    """The daemon's own stderr (not a test stream) is detected through JOURNAL_STREAM."""
    path = tmp_path / "stderr"
    script = (
        "import logging\n"
        "from gateway.core.logs import setup_logging\n"
        "setup_logging()\n"
        "logging.getLogger('gateway.daemon').warning('started')\n"
    )
    for journal in (True, False):
        with path.open("w") as stderr:
            env = {k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"}
            if journal:
                env["JOURNAL_STREAM"] = _journal_id(stderr)
            subprocess.run(
                [sys.executable, "-c", script],
                cwd=ROOT,
                env=env,
                stderr=stderr,
                check=True,
                timeout=60,
            )
        text = path.read_text()
        if journal:
            assert text == "<4>daemon: started\n"
        else:
            match = PLAIN_LINE.fullmatch(text.rstrip("\n"))
            assert match is not None, text
            assert match.groups() == ("WARNING", "daemon", "started")


def test_journal_detection_on_pipes(monkeypatch: pytest.MonkeyPatch) -> None:
    """journald hands the service a socket; any stream works the same: its dev:ino decides."""
    ends = [os.pipe(), os.pipe()]
    writers = [os.fdopen(write_end, "w") for _, write_end in ends]
    try:
        monkeypatch.setenv("JOURNAL_STREAM", _journal_id(writers[0]))
        assert stream_is_journal(writers[0])
        assert not stream_is_journal(writers[1])
        for garbage in ("", "12", "a:b", "1:2:3"):
            monkeypatch.setenv("JOURNAL_STREAM", garbage)
            assert not stream_is_journal(writers[0])
    finally:
        for writer in writers:
            writer.close()
        for read_end, _ in ends:
            os.close(read_end)


def test_names_and_priorities() -> None:
    assert component("gateway.core.engine") == "core.engine"
    assert component("gateway") == "gateway"
    assert component("gatewayish.thing") == "gatewayish.thing"
    assert component("root") == "root"
    assert syslog_priority(logging.WARNING + 5) == 4
    assert syslog_priority(5) == 7
