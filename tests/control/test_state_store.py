"""Persisted patch state and the run lock, on real files in a temp dir.

Faults that need another process (a second daemon, a file-size limit standing in for a full disk)
run in a real subprocess, so the test runner's own limits and locks are untouched.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from gateway.control.patch_control import PatchState
from gateway.control.state_store import (
    LOCK_FILE,
    STATE_FILE,
    PatchRecord,
    StateLockedError,
    StateStore,
    StateStoreError,
    acquire_lock,
)
from tests.support.child_lines import ChildLines

GATEWAY = "peace-arch"
KNOWN = ("border-tac", "county", "quiet")

SAVED = {
    "border-tac": PatchRecord("enabled", {"rcmp": "alice", "usbp": "bob"}),
    "county": PatchRecord("pending", {"usbp": "bob"}),
}


def python(code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def corrupt_files(state_dir: Path) -> list[Path]:
    return sorted(state_dir.glob(f"{STATE_FILE}.corrupt-*"))


# ---------------------------------------------------------------------------------- save / load
def test_round_trip(tmp_path: Path) -> None:
    store = StateStore(tmp_path, GATEWAY)
    store.save({**SAVED, "quiet": PatchRecord(str(PatchState.DISABLED), {})})
    loaded = store.load(KNOWN)
    assert loaded.warnings == []
    assert loaded.patches == SAVED

    document = json.loads((tmp_path / STATE_FILE).read_text())
    assert document["format"] == 1
    assert document["gateway"] == GATEWAY
    assert document["saved"].endswith("Z")
    assert "quiet" not in document["patches"]  # absent means disabled
    assert document["patches"]["county"] == {"state": "pending", "approved_by": {"usbp": "bob"}}


def test_states_from_the_command_layer_are_accepted(tmp_path: Path) -> None:
    store = StateStore(tmp_path, GATEWAY)
    store.save({"border-tac": PatchRecord(PatchState.ENABLED, {"*": "tech1"})})
    assert store.load(KNOWN).patches == {"border-tac": PatchRecord("enabled", {"*": "tech1"})}


def test_missing_file_is_an_empty_state(tmp_path: Path) -> None:
    loaded = StateStore(tmp_path, GATEWAY).load(KNOWN)
    assert loaded.patches == {}
    assert loaded.warnings == []


def test_save_replaces_and_leaves_no_temp_files(tmp_path: Path) -> None:
    store = StateStore(tmp_path, GATEWAY)
    store.save(SAVED)
    store.save({"county": PatchRecord("enabled", {"usbp": "bob"})})
    assert store.load(KNOWN).patches == {"county": PatchRecord("enabled", {"usbp": "bob"})}
    assert sorted(p.name for p in tmp_path.iterdir()) == [STATE_FILE]


def test_stray_temp_file_from_a_crash_is_ignored(tmp_path: Path) -> None:
    # A power cut between writing the temp file and the rename leaves both behind.
    store = StateStore(tmp_path, GATEWAY)
    store.save(SAVED)
    (tmp_path / f".{STATE_FILE}.k3j4h5.tmp").write_text('{"format": 1, "gateway": "peace-a')
    loaded = store.load(KNOWN)
    assert loaded.patches == SAVED
    assert loaded.warnings == []


def test_invalid_record_state_is_rejected_on_save(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="state 'maybe'"):
        StateStore(tmp_path, GATEWAY).save({"county": PatchRecord("maybe", {})})


# ---------------------------------------------------------------------------------- bad files
def _document(**changes: Any) -> bytes:
    document: dict[str, Any] = {
        "format": 1,
        "gateway": GATEWAY,
        "saved": "2026-01-01T00:00:00.000Z",
        "patches": {"county": {"state": "enabled", "approved_by": {}}},
    }
    document.update(changes)
    return json.dumps(document).encode()


CORRUPT = [
    pytest.param(b"", "is not JSON (Expecting value", id="empty"),
    pytest.param(b'{"format": 1, "gat', "is not JSON", id="truncated"),
    pytest.param(b"\xff\xfe\x00garbage", "is not UTF-8 text", id="binary"),
    pytest.param(b"[1, 2]", "is not a JSON object", id="array"),
    pytest.param(_document(format=2), "has format 2, and this crosspatch reads format 1", id="fmt"),
    pytest.param(_document(format="1"), 'has no "format" number', id="format-string"),
    pytest.param(_document(format=True), 'has no "format" number', id="format-bool"),
    pytest.param(
        _document(gateway="blaine"), "belongs to gateway 'blaine', not 'peace-arch'", id="gw"
    ),
    pytest.param(_document(patches=["county"]), 'has no "patches" object', id="patches-list"),
]


@pytest.mark.parametrize(("content", "problem"), CORRUPT)
def test_corrupt_file_is_set_aside_with_a_warning(
    tmp_path: Path, content: bytes, problem: str
) -> None:
    (tmp_path / STATE_FILE).write_bytes(content)
    store = StateStore(tmp_path, GATEWAY)
    loaded = store.load(KNOWN)

    assert loaded.patches == {}
    assert len(loaded.warnings) == 1
    warning = loaded.warnings[0]
    assert problem in warning
    assert "\n" not in warning
    (aside,) = corrupt_files(tmp_path)
    assert f"set aside as {aside.name} and patches start from the config" in warning
    assert aside.read_bytes() == content  # kept for a human, byte for byte
    assert not (tmp_path / STATE_FILE).exists()

    store.save(SAVED)  # and the store works again
    assert store.load(KNOWN) == type(loaded)(SAVED, [])


def test_unreadable_file_is_set_aside(tmp_path: Path) -> None:
    (tmp_path / STATE_FILE).mkdir()  # read fails (EISDIR) even for root, unlike a chmod
    loaded = StateStore(tmp_path, GATEWAY).load(KNOWN)
    assert loaded.patches == {}
    (warning,) = loaded.warnings
    assert "cannot be read (Is a directory)" in warning
    assert len(corrupt_files(tmp_path)) == 1


def test_files_set_aside_in_the_same_second_do_not_overwrite_each_other(tmp_path: Path) -> None:
    store = StateStore(tmp_path, GATEWAY)
    for content in (b"first", b"second", b"third"):
        (tmp_path / STATE_FILE).write_bytes(content)
        assert len(store.load(KNOWN).warnings) == 1
    assert sorted(p.read_bytes() for p in corrupt_files(tmp_path)) == [
        b"first",
        b"second",
        b"third",
    ]


def test_patches_removed_from_the_config_are_dropped(tmp_path: Path) -> None:
    store = StateStore(tmp_path, GATEWAY)
    store.save({**SAVED, "old-ops": PatchRecord("enabled", {}), "gone": PatchRecord("pending", {})})
    loaded = store.load(["county"])
    assert loaded.patches == {"county": SAVED["county"]}
    assert loaded.warnings == [
        "saved state dropped for patches no longer in the config: 'border-tac', 'gone', 'old-ops'"
    ]
    assert corrupt_files(tmp_path) == []


def test_invalid_records_are_dropped_and_the_rest_kept(tmp_path: Path) -> None:
    patches = {
        "border-tac": {"state": "maybe", "approved_by": {}},
        "county": "enabled",
        "quiet": {"state": "pending", "approved_by": {"rcmp": 7}},
        "fine": {"state": "enabled", "approved_by": {"rcmp": "alice"}},
        "no-approvals": {"state": "pending"},
    }
    (tmp_path / STATE_FILE).write_bytes(_document(patches=patches))
    loaded = StateStore(tmp_path, GATEWAY).load([*KNOWN, "fine", "no-approvals"])
    assert loaded.patches == {
        "fine": PatchRecord("enabled", {"rcmp": "alice"}),
        "no-approvals": PatchRecord("pending", {}),
    }
    assert len(loaded.warnings) == 3
    assert "patch 'border-tac'" in loaded.warnings[0] and "state 'maybe'" in loaded.warnings[0]
    assert "patch 'county'" in loaded.warnings[1] and "not an object" in loaded.warnings[1]
    assert "patch 'quiet'" in loaded.warnings[2] and '"approved_by"' in loaded.warnings[2]
    assert corrupt_files(tmp_path) == []


# ---------------------------------------------------------------------------------- write failures
def test_disk_full_keeps_the_old_file(tmp_path: Path) -> None:
    StateStore(tmp_path, GATEWAY).save(SAVED)
    before = (tmp_path / STATE_FILE).read_bytes()
    # A file-size limit makes write() fail (EFBIG) like a full disk; SIGXFSZ would kill instead.
    child = python(
        """
        import resource, signal, sys
        from pathlib import Path
        from gateway.control.state_store import PatchRecord, StateStore, StateStoreError
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (200, 200))
        patches = {f"patch-{i}": PatchRecord("enabled", {"rcmp": "alice"}) for i in range(50)}
        try:
            StateStore(Path(sys.argv[1]), "peace-arch").save(patches)
        except StateStoreError as exc:
            print(exc)
            sys.exit(3)
        """,
        str(tmp_path),
    )
    out, err = child.communicate(timeout=60)
    assert child.returncode == 3, err
    assert out.strip() == f"cannot save the patch state to {tmp_path / STATE_FILE}: File too large"
    assert (tmp_path / STATE_FILE).read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [STATE_FILE]


def test_fsync_failure_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = StateStore(tmp_path, GATEWAY)
    store.save(SAVED)
    before = (tmp_path / STATE_FILE).read_bytes()

    def failing_fsync(fd: int) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(StateStoreError, match="Input/output error"):
        store.save({"county": PatchRecord("enabled", {})})
    assert (tmp_path / STATE_FILE).read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [STATE_FILE]


def test_save_into_a_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "gone", GATEWAY)
    with pytest.raises(StateStoreError) as info:
        store.save(SAVED)
    assert str(info.value) == (
        f"cannot save the patch state to {tmp_path / 'gone' / STATE_FILE}: "
        "No such file or directory"
    )


# ---------------------------------------------------------------------------------- run lock
HOLD_LOCK = """
    import sys
    from pathlib import Path
    from gateway.control.state_store import StateLockedError, acquire_lock
    try:
        lock = acquire_lock(Path(sys.argv[1]))
    except StateLockedError as exc:
        print(exc, flush=True)
        sys.exit(4)
    print("locked", flush=True)
    sys.stdin.read()  # hold it until the test closes our stdin
"""


def test_lock_creates_the_state_dir_and_records_the_pid(tmp_path: Path) -> None:
    state_dir = tmp_path / "var" / "crosspatch"
    lock = acquire_lock(state_dir)
    try:
        assert stat.S_IMODE(state_dir.stat().st_mode) == 0o750
        assert (state_dir / LOCK_FILE).read_text() == f"{os.getpid()}\n"
        assert lock.held
    finally:
        lock.release()
    assert not lock.held
    lock.release()  # twice is harmless
    with acquire_lock(state_dir):  # and it can be taken again
        pass


def test_lock_refused_while_another_process_holds_it(tmp_path: Path) -> None:
    holder = python(HOLD_LOCK, str(tmp_path))
    try:
        assert holder.stdout is not None
        assert ChildLines(holder.stdout).next(timeout_s=30).strip() == "locked"
        with pytest.raises(StateLockedError) as info:
            acquire_lock(tmp_path)
        assert str(info.value) == (
            f"another crosspatch daemon (pid {holder.pid}) is running on {tmp_path}"
        )
    finally:
        holder.communicate(timeout=30)  # closes its stdin: it exits, and the kernel drops the lock
    assert holder.returncode == 0
    with acquire_lock(tmp_path) as lock:
        assert lock.held


def test_second_process_is_refused_while_we_hold_the_lock(tmp_path: Path) -> None:
    with acquire_lock(tmp_path):
        second = python(HOLD_LOCK, str(tmp_path))
        out, _ = second.communicate(timeout=30)
        assert second.returncode == 4
        assert (
            out.strip() == f"another crosspatch daemon (pid {os.getpid()}) is running on {tmp_path}"
        )
    freed = python(HOLD_LOCK, str(tmp_path))
    out, _ = freed.communicate("", timeout=30)
    assert out.strip() == "locked"


def test_lock_is_exclusive_within_one_process_too(tmp_path: Path) -> None:
    with acquire_lock(tmp_path), pytest.raises(StateLockedError, match=f"pid {os.getpid()}"):
        acquire_lock(tmp_path)


def test_state_dir_that_cannot_be_created(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StateStoreError) as info:
        acquire_lock(blocker / "state")
    assert (
        str(info.value) == f"cannot create the state directory {blocker / 'state'}: Not a directory"
    )
    with pytest.raises(StateStoreError, match="exists and is not a directory"):
        acquire_lock(blocker)
