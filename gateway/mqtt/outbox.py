"""The durable outbox: every MQTT message the gateway must deliver, on disk until the broker has it.

Events are written here before they are published (QoS 1) and deleted only when the broker
acknowledged them, so a broker outage, a network cut or a gateway crash (kill -9 included) loses
no call record: at the next start the queue drains, oldest first.

SQLite in WAL mode with `synchronous=NORMAL`: a commit is in the operating system's hands at
once (a killed process loses nothing committed; only a power cut can take the last commits),
and a commit costs tens of microseconds instead of an fsync's milliseconds, which is what lets a
flood of thousands of events a second through.

A disk budget bounds the file. When the queued messages reach it, the outbox is `full`: the
caller raises `alarm outbox_full` and, from then on, only records that must never be lost (calls,
audit, alarms, patch changes) are still queued; the high-rate, low-value ones (ptt and carrier
changes) are counted as dropped, never silently. The budget is the point where that starts, not a
hard cap on call records.

The last `seq` stamped on an event is kept here too, in the same transaction as the event, so
`seq` goes on increasing across restarts and a gap on the broker always means a loss.

A full disk must not cost a record either, nor silence the alarm that says so. The writer's side
(`reserve=True`, the daemon) keeps RESERVE_BYTES of the disk in a file beside the outbox; when a
write fails for want of space, the reserve is given back to the disk and the write tried again,
so the outbox goes on (thousands of events, the `disk_full` alarm first among them) while a
technician frees space. Once the reserve is spent, what cannot be written is held in memory (up
to HELD_MESSAGES, the oldest ptt/carrier changes dropped first, counted) and written with the
next put that succeeds; `put` raises `OutboxError` saying how many are held. The reserve is made
again once the disk has room for it twice over.

Each `Outbox` is one connection, used only by the thread that made it (SQLite's rule). In the
daemon there are two, in two processes (WAL lets them work at once): the daemon's asyncio loop
queues each tick's events in one transaction (`put`; the engine thread never touches the
outbox), and the MQTT publisher process (`gateway.mqtt.publisher`) reads them (`peek`) and deletes
what the broker acknowledged (`ack`). Each side keeps `count` and `bytes` in memory and learns
of the other's writes from the publisher's messages: `queued_elsewhere` in the publisher,
`released` in the daemon.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

DEFAULT_BUDGET_BYTES = 256 * 1024 * 1024
RESERVE_BYTES = 8 * 1024 * 1024  # about 8,000 events written on a full disk
RESERVE_CHECK_S = 5.0  # how often a spent reserve looks for room to be made again
HELD_MESSAGES = 20_000  # held in memory at most while nothing can be written
# Kept even when the outbox is full: the records an agency must be able to audit afterwards.
ESSENTIAL_TYPES = frozenset({"call_start", "call_end", "audit", "alarm", "patch"})


@dataclass(frozen=True)
class OutMessage:
    topic: str
    payload: bytes
    retain: bool = False
    essential: bool = True  # False: may be dropped (counted) once the outbox is full
    seq: int | None = None  # the event's seq, remembered as the last one stamped


@dataclass(frozen=True)
class QueuedMessage:
    id: int
    topic: str
    payload: bytes
    retain: bool


@dataclass(frozen=True)
class PutResult:
    queued: int
    dropped: int
    became_full: bool  # this put crossed the budget: raise the alarm once
    last_id: int = 0  # the id of the last message queued (0: none)
    queued_bytes: int = 0  # what the queued messages count against the budget
    reserve_spent: str | None = None  # why this put gave the reserve back (alarm disk_full)
    reserve_back: bool = False  # the reserve was made again: the disk has room


class OutboxError(Exception):
    """Nothing could be written; the message says how many messages are held in memory."""


class Outbox:
    """The queue on disk (see the module doc)."""

    def __init__(
        self, path: Path, budget_bytes: int = DEFAULT_BUDGET_BYTES, *, reserve: bool = False
    ) -> None:
        self.path = path
        self.budget_bytes = budget_bytes
        path.parent.mkdir(parents=True, exist_ok=True)
        self.reserve_path: Path | None = path.with_name(path.name + ".reserve") if reserve else None
        self.on_reserve = False  # the reserve was given back to a full disk
        self._reserve_checked = 0.0
        self._held: list[OutMessage] = []
        if self.reserve_path is not None:
            self.on_reserve = not self._make_reserve()
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS messages (id INTEGER PRIMARY KEY AUTOINCREMENT, "
            "topic TEXT NOT NULL, payload BLOB NOT NULL, retain INTEGER NOT NULL)"
        )
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)"
        )
        self.dropped = self._meta("dropped")
        self.count = self.bytes = 0
        self.full = False
        self._opened_upto = self.recount()  # messages up to this id were counted at the opening
        # Acknowledged since the opening: messages and bytes (what `released` gets elsewhere).
        self.acked_count = self.acked_bytes = 0

    def recount(self) -> int:
        """Counts the queued messages and their bytes afresh from the file (after another
        connection deleted some it could not report: a publisher process that was killed);
        returns the highest id queued."""
        # One statement, so one snapshot even while another process writes.
        row = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(LENGTH(topic) + LENGTH(payload)), 0), "
            "COALESCE(MAX(id), 0) FROM messages"
        ).fetchone()
        self.count, self.bytes = int(row[0]), int(row[1])
        if self.bytes >= self.budget_bytes:
            self.full = True
        else:
            self._check_room()
        return int(row[2])

    def _meta(self, key: str) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return int(row[0]) if row else 0

    @property
    def last_seq(self) -> int:
        """The seq of the last event ever queued (0 on a new gateway)."""
        return self._meta("last_seq")

    @property
    def held(self) -> int:
        """Messages held in memory because the disk had no room for them."""
        return len(self._held)

    def put(self, messages: Sequence[OutMessage]) -> PutResult:
        """Queues messages in one transaction (in order), after any held ones; see the module
        doc for a full outbox and a full disk. Raises `OutboxError` if nothing could be
        written (the messages are then held)."""
        pending = [*self._held, *messages] if self._held else list(messages)
        spent: str | None = None
        try:
            result = self._put(pending)
        except sqlite3.Error as exc:
            if self.reserve_path is None or self.on_reserve:
                self._hold(pending)
                raise OutboxError(self._held_message(exc)) from None
            spent = str(exc)
            self._spend_reserve()
            try:
                result = self._put(pending)
            except sqlite3.Error as again:
                self._hold(pending)
                raise OutboxError(self._held_message(again)) from None
        self._held = []
        back = self._reserve_again()
        if spent is not None or back:
            result = dataclasses.replace(result, reserve_spent=spent, reserve_back=back)
        return result

    def _held_message(self, exc: sqlite3.Error) -> str:
        return (
            f"the outbox {self.path} cannot be written ({exc}): {len(self._held)} message(s) "
            f"held in memory until it can, {self.dropped} ptt/carrier change(s) dropped so far"
        )

    def _hold(self, pending: list[OutMessage]) -> None:
        """Keeps what could not be written, dropping the oldest non-essential ones (then the
        oldest of all) beyond HELD_MESSAGES, counted."""
        excess = len(pending) - HELD_MESSAGES
        if excess > 0:
            kept: list[OutMessage] = []
            for m in pending:
                if excess > 0 and not m.essential:
                    excess -= 1
                    self.dropped += 1
                    continue
                kept.append(m)
            if excess > 0:
                self.dropped += excess
                kept = kept[excess:]
            pending = kept
        self._held = pending

    def _make_reserve(self) -> bool:
        assert self.reserve_path is not None
        try:
            fd = os.open(self.reserve_path, os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                os.posix_fallocate(fd, 0, RESERVE_BYTES)
            finally:
                os.close(fd)
        except OSError:
            with contextlib.suppress(OSError):
                self.reserve_path.unlink()
            return False
        return True

    def _spend_reserve(self) -> None:
        assert self.reserve_path is not None
        with contextlib.suppress(OSError):
            self.reserve_path.unlink()
        self.on_reserve = True
        self._reserve_checked = time.monotonic()

    def _reserve_again(self) -> bool:
        """Makes the reserve again once the disk has room for it twice over (checked every
        RESERVE_CHECK_S); True when it did."""
        if not self.on_reserve or self.reserve_path is None:
            return False
        now = time.monotonic()
        if now - self._reserve_checked < RESERVE_CHECK_S:
            return False
        self._reserve_checked = now
        try:
            free = shutil.disk_usage(self.path.parent).free
        except OSError:
            return False
        if free < 2 * RESERVE_BYTES or not self._make_reserve():
            return False
        self.on_reserve = False
        return True

    def _put(self, messages: Sequence[OutMessage]) -> PutResult:
        rows: list[tuple[str, bytes, int]] = []
        dropped = 0
        size = self.bytes
        became_full = False
        last_seq = None
        for m in messages:
            if m.seq is not None:
                last_seq = m.seq
            if size >= self.budget_bytes:
                if not self.full:
                    self.full = became_full = True
                if not m.essential:
                    dropped += 1
                    continue
            rows.append((m.topic, m.payload, int(m.retain)))
            size += len(m.topic.encode()) + len(m.payload)
        if size >= self.budget_bytes and not self.full:
            self.full = became_full = True
        last_id = 0
        with self._transaction():
            self._db.executemany(
                "INSERT INTO messages (topic, payload, retain) VALUES (?, ?, ?)", rows
            )
            if rows:
                last_id = int(self._db.execute("SELECT last_insert_rowid()").fetchone()[0])
            if last_seq is not None:
                self._set_meta("last_seq", last_seq)
            if dropped:
                self._set_meta("dropped", self.dropped + dropped)
        added, self.bytes = size - self.bytes, size
        self.count += len(rows)
        self.dropped += dropped
        return PutResult(len(rows), dropped, became_full, last_id, added)

    def peek(self, limit: int, after: int = 0) -> list[QueuedMessage]:
        """The oldest `limit` messages with an id above `after`, oldest first."""
        rows = self._db.execute(
            "SELECT id, topic, payload, retain FROM messages WHERE id > ? ORDER BY id LIMIT ?",
            (after, limit),
        ).fetchall()
        return [QueuedMessage(int(i), str(t), bytes(p), bool(r)) for i, t, p, r in rows]

    def ack(self, ids: Sequence[int]) -> None:
        """Deletes messages the broker acknowledged."""
        if not ids:
            return
        with self._transaction():
            freed = 0
            for chunk_start in range(0, len(ids), 500):
                chunk = list(ids[chunk_start : chunk_start + 500])
                marks = ",".join("?" * len(chunk))
                row = self._db.execute(
                    "SELECT COUNT(*), COALESCE(SUM(LENGTH(topic) + LENGTH(payload)), 0) "
                    f"FROM messages WHERE id IN ({marks})",
                    chunk,
                ).fetchone()
                self._db.execute(f"DELETE FROM messages WHERE id IN ({marks})", chunk)
                self.count -= int(row[0])
                self.acked_count += int(row[0])
                freed += int(row[1])
        self.bytes -= freed
        self.acked_bytes += freed
        self._check_room()

    def released(self, count: int, nbytes: int) -> None:
        """Messages another connection (the publisher process) acknowledged and deleted."""
        self.count -= count
        self.bytes -= nbytes
        self._check_room()

    def queued_elsewhere(self, count: int, nbytes: int, last_id: int) -> None:
        """Messages another connection (the daemon) queued, up to id `last_id`; those this
        connection already counted when it opened are not counted twice (one `put` is one
        transaction: the opening saw all of it or none)."""
        if last_id > self._opened_upto:
            self.count += count
            self.bytes += nbytes

    def _check_room(self) -> None:
        if self.full and self.bytes < self.budget_bytes * 0.9:
            self.full = False  # some room again (10 % below the budget, so it does not flap)

    def _set_meta(self, key: str, value: int) -> None:
        self._db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)

    def close(self) -> None:
        self._db.close()


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self._db.execute("ROLLBACK" if exc_type is not None else "COMMIT")
