"""Call recordings: what each call's source said, as patched, in one file per call.

The audio recorded is the source port's received frame as the engine routed it (after whatever
receive processing the port bank did), from the call's first tick to its last, so a recording
lasts the call's `duration_s`.

Two sides, two threads. The engine thread only hands things over, never touching the disk: a call
started (its path), one tick's audio of every call in progress, a call ended. A writer thread does
the rest: 8 kHz mono 16-bit WAV written as the call goes; for `mp3` and `opus`, once the call has
ended, the WAV is encoded through pydub and ffmpeg and removed; every hour (and at start) files
older than `keep_days` go.

Files: `DIR/YYYY-MM-DD/CALL_ID.EXT`, dated by the call's start (UTC, engine time). The path is
fixed when the call starts, so `call_end` names it although an MP3 or Opus file appears a moment
after the event (when the writer has encoded it). `recording` in `call_end` is null when the file
could not even be created (as the writer knows at the call's end: it tries within milliseconds of
the start, and a call lasts at least a frame; were it later, the alarm alone would tell). Any
later failure (a full disk mid-call, an encoding that failed) keeps the path. Every failure raises
an `alarm` `recording_failed` naming the call, is logged once per call, and never reaches the
engine thread. Without ffmpeg, `mp3` and `opus` fall back to WAV (an alarm at start says so): a
recording matters more than its size.

Overload: the writer must keep up with 8 kB/s per call. Should it fall more than
`MAX_BACKLOG_S` behind (a stalled disk), the engine thread drops the audio of further ticks
(counted in `stats.dropped_frames`) instead of queueing without bound, and the writer puts
silence in its place, so a recording keeps the call's timing; the call's end raises an alarm.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import re
import shutil
import threading
import time
import warnings
import wave
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from gateway.config.models import RecordingSettings
from gateway.core.engine import PatchEngine
from gateway.core.event_types import CallStart
from gateway.core.events import Event
from gateway.core.timing import SAMPLE_RATE
from gateway.dsp.signals import to_pcm16

log = logging.getLogger(__name__)

RecordingFormat = Literal["wav", "mp3", "opus"]

ALARM_KIND = "recording_failed"
# The writer may fall this far behind the engine before audio is dropped: beyond it, a disk has
# stalled, and queueing on would only grow memory (32 kB/s of float frames per call).
MAX_BACKLOG_S = 10.0
PRUNE_EVERY_S = 3600.0
CLOSE_TIMEOUT_S = 30.0  # encoding the last calls' MP3 or Opus at stop
FLUSH_BYTES = 2 * SAMPLE_RATE  # a WAV grows by a second of audio at a time: few small writes

# pydub's export arguments per format. Voice at 8 kHz needs little: MP3 at 8 kHz (MPEG-2.5) at
# 32 kbit/s; Ogg Opus through libopus at 16 kbit/s, tuned for speech.
_ENCODING: dict[str, dict[str, Any]] = {
    "mp3": {"format": "mp3", "codec": "libmp3lame", "bitrate": "32k"},
    "opus": {
        "format": "opus",
        "codec": "libopus",
        "bitrate": "16k",
        "parameters": ["-application", "voip"],
    },
}
# What retention may delete: our own files only (.part: an encoding cut short by a crash).
RECORDING_SUFFIXES = frozenset({".wav", ".mp3", ".opus", ".part"})
_DAY_DIR = re.compile(r"\d{4}-\d{2}-\d{2}")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def file_name(call_id: str) -> str:
    """A call id as a file name. Config names and the engine's compact times are already safe;
    an engine built from code may use any port name, so anything else becomes '_'."""
    return _UNSAFE.sub("_", call_id).lstrip(".") or "call"


@dataclass
class RecorderStats:
    calls: int = 0  # calls whose recording was started (engine thread)
    dropped_frames: int = 0  # frames of a call lost to an overloaded writer (engine thread)
    failed: int = 0  # calls whose recording failed (writer thread)


# ------------------------------------------------------------------ messages to the writer
@dataclass(frozen=True)
class _Start:
    call_id: str
    port: str
    path: Path


@dataclass(frozen=True)
class _Audio:
    call_ids: tuple[str, ...]
    block: npt.NDArray[np.float32]  # one row per call
    gaps: tuple[int, ...]  # samples of silence to write first (dropped audio), per call


@dataclass(frozen=True)
class _End:
    call_id: str
    gap: int


@dataclass(frozen=True)
class _Stop:
    pass


_Message = _Start | _Audio | _End | _Stop


@dataclass
class _Live:
    """A call in progress, as the engine thread sees it."""

    path: Path
    port: str
    gap: int = 0  # samples dropped since the last audio handed over
    lost: int = 0  # samples dropped in all


@dataclass
class _Recording:
    """A call in progress, as the writer sees it."""

    call_id: str
    port: str
    path: Path  # the final file
    wav_path: Path  # the path itself for WAV, a hidden temporary beside it for MP3 and Opus
    wav: wave.Wave_write | None = None
    pending: bytearray = field(default_factory=bytearray)
    failed: bool = False


def _reason(exc: Exception) -> str:
    """One line on why an operation failed (pydub's messages carry ffmpeg's whole output)."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _audio_segment() -> Any:
    """pydub's AudioSegment, imported when first needed (pydub has no type hints)."""
    with warnings.catch_warnings():
        # pydub imports audioop, deprecated in 3.11-3.12 (audioop-lts stands in from 3.13).
        warnings.simplefilter("ignore", DeprecationWarning)
        from pydub import AudioSegment  # type: ignore[import-untyped, unused-ignore]
    return AudioSegment


class _Writer:
    """The disk side: every file operation of the recorder, on one thread."""

    def __init__(
        self,
        directory: Path,
        fmt: RecordingFormat,
        keep_days: int | None,
        problems: deque[tuple[str | None, str]],
        stats: RecorderStats,
    ) -> None:
        self.directory = directory
        self.fmt = fmt
        self.keep_days = keep_days
        self.problems = problems
        self.stats = stats
        self.recordings: dict[str, _Recording] = {}
        # Inline recorders (simulate) encode after the run, in parallel: `encode_deferred`.
        self.defer_encoding = False
        self.deferred: list[_Recording] = []
        # Calls whose file could not be created, until their end is handled: the engine thread
        # reads it (GIL-atomic membership) to report `recording: null`.
        self.unopened: set[str] = set()
        self.audio_done = 0  # _Audio messages handled; only this thread writes it

    # ------------------------------------------------------------------ messages
    def handle(self, message: _Message) -> None:
        try:
            if isinstance(message, _Audio):
                self._audio(message)
            elif isinstance(message, _Start):
                self._start(message)
            elif isinstance(message, _End):
                self._end(message)
        except Exception:  # a bug here must cost a recording, never the writer thread
            log.exception("recorder: %s failed", type(message).__name__)
        finally:
            if isinstance(message, _Audio):
                self.audio_done += 1

    def _start(self, message: _Start) -> None:
        path = message.path
        wav_path = path if self.fmt == "wav" else path.with_name(f".{path.name}.wav")
        rec = _Recording(message.call_id, message.port, path, wav_path)
        self.recordings[message.call_id] = rec
        try:
            wav_path.parent.mkdir(parents=True, exist_ok=True)
            wav = wave.open(str(wav_path), "wb")  # noqa: SIM115 - closed at the call's end
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(SAMPLE_RATE)
            rec.wav = wav
        except OSError as exc:
            self.unopened.add(message.call_id)
            self._fail(rec, f"cannot create {wav_path}: {_reason(exc)}")

    def _audio(self, message: _Audio) -> None:
        for call_id, row, gap in zip(message.call_ids, message.block, message.gaps, strict=True):
            rec = self.recordings.get(call_id)
            if rec is None or rec.failed:
                continue
            if gap:
                rec.pending += bytes(2 * gap)
            rec.pending += to_pcm16(row).tobytes()
            if len(rec.pending) >= FLUSH_BYTES:
                self._flush(rec)

    def _end(self, message: _End) -> None:
        self.unopened.discard(message.call_id)
        rec = self.recordings.pop(message.call_id, None)
        if rec is None:
            return
        if message.gap and not rec.failed:
            rec.pending += bytes(2 * message.gap)
        self._finish(rec)

    def _finish(self, rec: _Recording) -> None:
        self._flush(rec)
        self._close(rec)
        if self.fmt == "wav":
            return
        if self.defer_encoding and not rec.failed:
            self.deferred.append(rec)
            return
        try:
            if not rec.failed:
                self._encode(rec)
        finally:
            with contextlib.suppress(OSError):
                rec.wav_path.unlink(missing_ok=True)

    def encode_deferred(self, workers: int) -> int:
        """Encodes the recordings `defer_encoding` kept as WAV, `workers` ffmpeg children at a
        time; failures are reported in the order the calls ended, as inline encoding would.
        Returns how many were encoded."""
        recs, self.deferred = self.deferred, []
        if not recs:
            return 0
        with contextlib.suppress(Exception):  # imported once here: its warning filter is global
            _audio_segment()
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            failures = list(pool.map(self._encode_file, recs))
        for rec, failure in zip(recs, failures, strict=True):
            with contextlib.suppress(OSError):
                rec.wav_path.unlink(missing_ok=True)
            if failure is not None:
                self._fail(rec, failure)
        return len(recs)

    def _flush(self, rec: _Recording) -> None:
        if rec.wav is None or rec.failed or not rec.pending:
            return
        try:
            rec.wav.writeframes(bytes(rec.pending))  # also brings the header's lengths up to date
        except OSError as exc:
            self._fail(rec, f"writing {rec.wav_path} failed: {_reason(exc)}")
        rec.pending.clear()

    def _close(self, rec: _Recording) -> None:
        wav, rec.wav = rec.wav, None
        if wav is None:
            return
        try:
            wav.close()
        except OSError as exc:
            self._fail(rec, f"closing {rec.wav_path} failed: {_reason(exc)}")

    def _encode(self, rec: _Recording) -> None:
        failure = self._encode_file(rec)
        if failure is not None:
            self._fail(rec, failure)

    def _encode_file(self, rec: _Recording) -> str | None:
        """Encodes one call's WAV into its format; the failure, in one line, or None. Touches
        nothing but the call's own files (it runs on several threads at once)."""
        # Encoded beside the final name, then renamed: a file under the final name is complete.
        part = rec.path.with_name(rec.path.name + ".part")
        try:
            segment = _audio_segment().from_wav(str(rec.wav_path))
            segment.export(str(part), **_ENCODING[self.fmt]).close()
            part.replace(rec.path)
        except Exception as exc:  # pydub raises its own errors (ffmpeg's output), or OSError
            log.debug("recorder: encoding %s: %s", rec.path, exc)
            with contextlib.suppress(OSError):
                part.unlink(missing_ok=True)
            return f"encoding {rec.path} failed: {_reason(exc)}"
        return None

    def _fail(self, rec: _Recording, detail: str) -> None:
        """First failure of a call: logged and raised as an alarm; the call records no more."""
        if rec.failed:
            return
        rec.failed = True
        self.stats.failed += 1
        message = f"call {rec.call_id}: recording failed: {detail}"
        log.error("%s", message)
        self.problems.append((rec.port, message))
        if rec.wav is not None:
            with contextlib.suppress(OSError):
                rec.wav.close()  # closes the file even when patching the header fails
            rec.wav = None

    # ------------------------------------------------------------------ start, stop, retention
    def check_directory(self) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            message = (
                f"recording directory {self.directory} cannot be created "
                f"({_reason(exc)}); calls are not recorded until it can"
            )
            log.error("%s", message)
            self.problems.append((None, message))

    def finish_all(self) -> None:
        """At stop: calls still open (the engine never ended them) get complete files."""
        for call_id in list(self.recordings):
            self._end(_End(call_id, 0))

    def prune(self) -> None:
        """Deletes recordings whose file is older than keep_days (by mtime), and the date
        folders that leaves empty. Only date folders and our own file types are touched, so a
        `dir` that also holds other files loses none of them."""
        if self.keep_days is None:
            return
        cutoff = time.time() - self.keep_days * 86400
        busy = {rec.wav_path for rec in self.recordings.values()}
        removed = 0
        try:
            days = [d for d in self.directory.iterdir() if _DAY_DIR.fullmatch(d.name)]
            for day in days:
                if not day.is_dir():
                    continue
                left = False
                for item in day.iterdir():
                    old = (
                        item.suffix in RECORDING_SUFFIXES
                        and item not in busy
                        and item.is_file()
                        and item.stat().st_mtime < cutoff
                    )
                    if old:
                        item.unlink()
                        removed += 1
                    else:
                        left = True
                if not left:
                    day.rmdir()
        except FileNotFoundError:
            pass  # no recordings yet, or a file gone meanwhile: the next run sees the rest
        except OSError as exc:
            log.warning("recordings: deleting old files failed: %s", exc)
        if removed:
            log.info("recordings: deleted %d file(s) older than %d days", removed, self.keep_days)


class CallRecorder:
    """Records every call's source audio; see the module's docstring.

    Engine thread: `on_events` (before stamping: it fills `recording` of `call_end`), `on_tick`
    (after the tick, with the rx frames the engine was given) and `take_alarms`. Around them,
    `start` and `close` (or `with`). `threaded=False` does the disk work inline instead, for
    `crosspatch simulate`, whose outputs must be the same on every run; with `encode_workers`
    it keeps WAV files during the run and encodes them at `close`, that many at a time, so
    ffmpeg does not slow the run down.
    """

    def __init__(
        self,
        directory: Path,
        fmt: RecordingFormat = "wav",
        *,
        keep_days: int | None = None,
        threaded: bool = True,
        encode_workers: int = 0,
    ) -> None:
        self.directory = Path(directory)
        self.format: RecordingFormat = fmt
        self.keep_days = keep_days
        self.stats = RecorderStats()
        self._problems: deque[tuple[str | None, str]] = deque()
        self._writer = _Writer(self.directory, fmt, keep_days, self._problems, self.stats)
        self._threaded = threaded
        # Inline only: keep WAV during the run and encode at `close`, this many at a time.
        self._encode_workers = encode_workers
        self._writer.defer_encoding = not threaded and encode_workers > 0
        # Unbounded as a queue, bounded in effect: audio is refused past MAX_BACKLOG_S (see
        # on_tick); starts and ends are few and never refused (a lost end would leave a file
        # open for good).
        self._queue: queue.SimpleQueue[_Message] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._live: dict[str, _Live] = {}
        self._audio_sent = 0
        self._max_backlog = 0  # in ticks; set from the first frame's size
        self._overloaded = False
        self._closed = False

    @classmethod
    def from_settings(cls, settings: RecordingSettings) -> CallRecorder:
        """The recorder a config's `recording:` section asks for."""
        return cls(settings.dir, settings.format, keep_days=settings.keep_days)

    # ------------------------------------------------------------------ life cycle
    def start(self) -> None:
        if self._thread is not None or self._closed:
            return
        if self.format != "wav" and shutil.which("ffmpeg") is None:
            message = f"recording.format {self.format} needs ffmpeg, which is not installed; "
            message += "calls are recorded as WAV"
            log.error("%s", message)
            self._problems.append((None, message))
            self.format = self._writer.fmt = "wav"
        if not self._threaded:
            self._writer.check_directory()
            self._writer.prune()
            return
        self._thread = threading.Thread(target=self._run, name="recorder", daemon=True)
        self._thread.start()

    def close(self, timeout: float = CLOSE_TIMEOUT_S) -> bool:
        """Finishes every file (the engine's last call_end must have been handed over) and
        stops the writer; False if it did not finish within `timeout` seconds."""
        if self._closed:
            return True
        self._closed = True
        if self._thread is None:  # inline, or never started: what was handed over is written
            while not self._queue.empty():
                self._writer.handle(self._queue.get_nowait())
            self._writer.finish_all()
            self._writer.encode_deferred(self._encode_workers)
            return True
        self._queue.put(_Stop())
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.error("recorder: the writer did not finish within %.0f s", timeout)
            return False
        return True

    def __enter__(self) -> CallRecorder:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _run(self) -> None:
        writer = self._writer
        writer.check_directory()
        next_prune = time.monotonic()
        while True:
            timeout: float | None = None
            if self.keep_days is not None:
                if time.monotonic() >= next_prune:
                    writer.prune()
                    next_prune = time.monotonic() + PRUNE_EVERY_S
                timeout = max(0.0, next_prune - time.monotonic())
            try:
                message = self._queue.get(timeout=timeout)
            except queue.Empty:
                continue
            if isinstance(message, _Stop):
                break
            writer.handle(message)
        writer.finish_all()

    def _post(self, message: _Message) -> None:
        if self._closed:
            return  # a hung engine thread outliving close(): nothing more is written
        if self._threaded:
            self._queue.put(message)
        else:
            self._writer.handle(message)

    # ------------------------------------------------------------------ engine thread
    def path_for(self, call_id: str, start_time: str) -> Path:
        """Where a call's recording goes: `start_time` is its ISO start (UTC)."""
        return self.directory / start_time[:10] / f"{file_name(call_id)}.{self.format}"

    def on_events(self, events: Sequence[Event]) -> None:
        """Starts and ends recordings as calls start and end; fills `recording` of call_end."""
        for event in events:
            if event["type"] == "call_start":
                self._start(event)
            elif event["type"] == "call_end":
                event["recording"] = self._end(event["call_id"])

    def _start(self, event: CallStart) -> None:
        call_id: str = event["call_id"]
        port: str = event["source"]["port"]
        path = self.path_for(call_id, event["time"])
        self._live[call_id] = _Live(path, port)
        self.stats.calls += 1
        self._post(_Start(call_id, port, path))

    def _end(self, call_id: str) -> str | None:
        live = self._live.pop(call_id, None)
        if live is None:
            return None
        # Read before posting the end: handling it forgets the call (at once when inline).
        opened = call_id not in self._writer.unopened
        self._post(_End(call_id, live.gap))
        if live.lost:
            message = (
                f"call {call_id}: the recorder fell behind; {live.lost / SAMPLE_RATE:.1f} s of "
                "its audio are silence in the recording"
            )
            log.error("%s", message)
            self._problems.append((live.port, message))
        return str(live.path) if opened else None

    def on_tick(self, engine: PatchEngine, rx: npt.NDArray[np.float32]) -> None:
        """Hands over this tick's received audio of every call's source."""
        if not self._live:
            return
        calls = [(c, row) for c, row in engine.active_call_sources() if c in self._live]
        if not calls:
            return
        frame = rx.shape[1]
        if not self._max_backlog:
            self._max_backlog = max(1, round(MAX_BACKLOG_S * SAMPLE_RATE / frame))
        # Ticks handed over and not yet written: each counter has one writer thread, so no lock.
        if self._audio_sent - self._writer.audio_done >= self._max_backlog:
            for call_id, _ in calls:
                live = self._live[call_id]
                live.gap += frame
                live.lost += frame
            self.stats.dropped_frames += len(calls)
            if not self._overloaded:
                log.error("recorder: the writer is %.0f s behind; dropping audio", MAX_BACKLOG_S)
                self._overloaded = True
            return
        self._overloaded = False
        gaps = []
        for call_id, _ in calls:
            live = self._live[call_id]
            gaps.append(live.gap)
            live.gap = 0
        block = rx[[row for _, row in calls]]  # a copy: the port bank may reuse its array
        self._audio_sent += 1
        self._post(_Audio(tuple(c for c, _ in calls), block, tuple(gaps)))

    def take_alarms(self, engine: PatchEngine) -> list[Event]:
        """`recording_failed` alarms for failures reported since the last call."""
        alarms: list[Event] = []
        while self._problems:
            port, detail = self._problems.popleft()
            alarms.append(engine.alarm(ALARM_KIND, detail, port=port))
        return alarms
