"""The durable outbox: order, acknowledgement, survival across reopening, the disk budget."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import gateway.mqtt.outbox as outbox_module
from gateway.mqtt.outbox import RESERVE_BYTES, Outbox, OutboxError, OutMessage
from tests.support.full_disk import fill, small_tmpfs


def message(seq: int, kind: str = "call_end", size: int = 100) -> OutMessage:
    payload = f'{{"type":"{kind}","seq":{seq},"pad":"{"x" * size}"}}'.encode()
    return OutMessage("crosspatch/gw/calls", payload, essential=kind != "ptt", seq=seq)


def test_messages_come_out_oldest_first_and_leave_only_when_acknowledged(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "outbox.sqlite3")
    box.put([message(1), message(2)])
    box.put([message(3)])
    first = box.peek(2)
    assert [m.payload for m in first] == [message(1).payload, message(2).payload]
    box.ack([first[0].id])
    assert [m.payload for m in box.peek(10)] == [message(2).payload, message(3).payload]
    assert box.count == 2 and box.last_seq == 3
    box.ack([m.id for m in box.peek(10)])
    assert box.peek(10) == [] and box.count == 0 and box.bytes == 0


def test_what_was_queued_survives_a_reopen_and_seq_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    box = Outbox(path)
    box.put([message(i) for i in range(1, 11)])
    box.ack([m.id for m in box.peek(4)])
    box.close()
    again = Outbox(path)
    assert again.count == 6 and again.last_seq == 10
    assert [m.payload for m in again.peek(1)] == [message(5).payload]
    assert again.bytes == sum(len(m.topic) + len(m.payload) for m in again.peek(100))


def test_a_killed_writer_loses_nothing_it_committed(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    script = (
        "import os, sys\n"
        "from gateway.mqtt.outbox import Outbox, OutMessage\n"
        f"box = Outbox(__import__('pathlib').Path({str(path)!r}))\n"
        "for seq in range(1, 501):\n"
        "    box.put([OutMessage('t', b'x' * 50, seq=seq)])\n"
        "os.kill(os.getpid(), 9)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], check=False, env=os.environ, timeout=60)
    assert result.returncode == -9
    box = Outbox(path)
    assert box.count == 500 and box.last_seq == 500


def test_a_full_outbox_keeps_call_records_and_counts_what_it_drops(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "outbox.sqlite3", budget_bytes=5_000)
    filled = box.put([message(i) for i in range(1, 41)])  # ~150 bytes each: over the budget
    assert filled.became_full and box.full
    flood = box.put([message(100 + i, "ptt") for i in range(10)] + [message(200, "call_end")])
    assert flood.dropped == 10 and flood.queued == 1 and not flood.became_full
    assert box.dropped == 10
    payloads = [m.payload for m in box.peek(1000)]
    assert message(200).payload in payloads  # the call record is never dropped
    assert not [p for p in payloads if b'"ptt"' in p]
    box.ack([m.id for m in box.peek(1000)])
    assert not box.full  # room again
    assert box.put([message(300, "ptt")]).queued == 1
    box.close()
    assert Outbox(tmp_path / "outbox.sqlite3", budget_bytes=5_000).dropped == 10


def test_two_connections_keep_their_counts_and_a_recount_finds_unreported_deletes(
    tmp_path: Path,
) -> None:
    # The daemon queues on one connection; the publisher process drains on another.
    daemon = Outbox(tmp_path / "outbox.db")
    daemon.put([message(1), message(2)])
    publisher = Outbox(tmp_path / "outbox.db")
    assert publisher.count == 2  # counted at its opening
    result = daemon.put([message(3)])
    publisher.queued_elsewhere(result.queued, result.queued_bytes, result.last_id)
    assert publisher.count == 3
    publisher.queued_elsewhere(2, 200, 2)  # already counted at the opening: not twice
    assert publisher.count == 3
    acked = publisher.peek(2)
    publisher.ack([m.id for m in acked])
    daemon.released(publisher.acked_count, publisher.acked_bytes)
    assert daemon.count == publisher.count == 1
    assert daemon.bytes == publisher.bytes
    # A publisher killed after deleting a message, before it could tell the daemon.
    publisher.ack([publisher.peek(1)[0].id])
    publisher.close()
    assert daemon.count == 1
    daemon.recount()
    assert daemon.count == 0 and daemon.bytes == 0
    daemon.close()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    with small_tmpfs(tmp_path / "disk", "40m") as disk:
        yield disk


def test_a_full_disk_spends_the_reserve_then_holds_in_memory_and_loses_nothing(
    small_disk: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outbox_module, "RESERVE_CHECK_S", 0.0)
    box = Outbox(small_disk / "outbox.sqlite3", reserve=True)
    assert box.reserve_path is not None and box.reserve_path.stat().st_size == RESERVE_BYTES
    box.put([message(1)])
    filler = fill(small_disk)

    # The disk is full: the reserve goes back to it, the put goes on, and says so.
    result = box.put([message(2)])
    assert result.queued == 1 and result.reserve_spent is not None
    assert "full" in result.reserve_spent
    assert box.on_reserve and not box.reserve_path.exists()
    # Thousands of events fit in the reserve; then nothing more can be written.
    seq = 3
    with pytest.raises(OutboxError) as caught:
        while seq < 100_000:
            assert box.put([message(seq, size=1000)]).reserve_spent is None
            seq += 1
    assert seq > 3000, seq
    assert "1 message(s) held in memory" in str(caught.value)
    for more in range(seq + 1, seq + 50):
        with pytest.raises(OutboxError):
            box.put([message(more, size=1000)])
    assert box.held == 50

    filler.unlink()  # room again: the held messages go first, in order, then the reserve
    result = box.put([message(seq + 50)])
    assert result.queued == 51 and result.reserve_back and box.held == 0
    assert not box.on_reserve and box.reserve_path.stat().st_size == RESERVE_BYTES
    seqs = [json.loads(m.payload)["seq"] for m in box.peek(200_000)]
    assert seqs == list(range(1, seq + 51))  # nothing lost, nothing out of order
    assert box.dropped == 0
