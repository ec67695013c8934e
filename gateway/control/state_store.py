"""Persisted runtime state, so a dispatcher's patch survives a power cut, and the run lock.

`state_dir/patches.json` holds which patches are enabled or pending and who approved them:
    {"format": 1, "gateway": "peace-arch", "saved": "2026-01-01T00:00:00.000Z",
     "patches": {"border-tac": {"state": "enabled", "approved_by": {"rcmp": "alice"}}}}
A disabled patch is not stored: absent means disabled.

Saving is atomic and durable (temp file, fsync, rename, fsync of the directory): after a power
cut the file is the old state or the new one, never half of each. Loading never fails: a file
that cannot be used is set aside under a `.corrupt-<time>` name for a human to look at, the
daemon starts from the config, and the warnings say what happened.

`acquire_lock` keeps a second daemon off the same state directory: two daemons would key the same
radios and overwrite each other's state.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import tempfile
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from gateway.core.errors import UserError
from gateway.core.events import iso_time

FORMAT = 1
STATE_FILE = "patches.json"
LOCK_FILE = "crosspatch.lock"
STORED_STATES = ("enabled", "pending")
STATE_DIR_MODE = 0o750


class StateStoreError(UserError):
    """The state directory or file cannot be used; the message says which and why."""


class StateLockedError(StateStoreError):
    """Another daemon holds the state directory."""


@dataclass
class PatchRecord:
    state: str  # "enabled" | "pending"
    approved_by: dict[str, str] = field(default_factory=dict)  # agency -> principal name


@dataclass
class LoadedState:
    patches: dict[str, PatchRecord]
    warnings: list[str]  # one sentence each, for the log


class _Unusable(Exception):
    """The state file as a whole cannot be used; the message says why."""


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__


class StateStore:
    def __init__(self, state_dir: Path, gateway_id: str) -> None:
        self.state_dir = state_dir
        self.gateway_id = gateway_id
        self.path = state_dir / STATE_FILE

    # ------------------------------------------------------------------ load
    def load(self, known_patches: Collection[str]) -> LoadedState:
        """The saved patches that still exist in the config; never raises for a bad file."""
        warnings: list[str] = []
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return LoadedState({}, warnings)
        except OSError as exc:
            warnings.append(self._set_aside(f"cannot be read ({_reason(exc)})"))
            return LoadedState({}, warnings)
        try:
            entries = self._parse(raw)
        except _Unusable as problem:
            warnings.append(self._set_aside(str(problem)))
            return LoadedState({}, warnings)

        patches: dict[str, PatchRecord] = {}
        removed: list[str] = []
        for name, entry in entries.items():
            if name not in known_patches:
                removed.append(name)
                continue
            record = _record(entry)
            if record is None:
                warnings.append(
                    f"the saved state of patch '{name}' in {self.path} is not valid "
                    f"({_describe(entry)}); it starts from the config"
                )
                continue
            patches[name] = record
        if removed:
            names = ", ".join(f"'{name}'" for name in sorted(removed))
            warnings.append(f"saved state dropped for patches no longer in the config: {names}")
        return LoadedState(patches, warnings)

    def _parse(self, raw: bytes) -> dict[str, Any]:
        try:
            document = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise _Unusable("is not UTF-8 text") from None
        except RecursionError:
            raise _Unusable("is not JSON (nested too deeply)") from None
        except ValueError as exc:
            raise _Unusable(f"is not JSON ({exc})") from None
        if not isinstance(document, dict):
            raise _Unusable("is not a JSON object")
        version = document.get("format")
        if type(version) is not int:  # `type is` because True == 1 would pass isinstance
            raise _Unusable('has no "format" number')
        if version != FORMAT:
            raise _Unusable(f"has format {version}, and this crosspatch reads format {FORMAT}")
        owner = document.get("gateway")
        if owner != self.gateway_id:
            raise _Unusable(f"belongs to gateway {owner!r}, not {self.gateway_id!r}")
        entries = document.get("patches")
        if not isinstance(entries, dict):
            raise _Unusable('has no "patches" object')
        return entries

    def _set_aside(self, problem: str) -> str:
        """Renames the bad file out of the way (kept for a human, never deleted) and returns
        the warning."""
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        target = self.path.with_name(f"{STATE_FILE}.corrupt-{stamp}")
        suffix = 1
        while target.exists():  # two bad starts within a second must not overwrite each other
            target = self.path.with_name(f"{STATE_FILE}.corrupt-{stamp}-{suffix}")
            suffix += 1
        try:
            self.path.rename(target)
        except OSError as exc:
            return (
                f"the saved patch state {self.path} {problem} and could not be set aside "
                f"({_reason(exc)}); patches start from the config"
            )
        return (
            f"the saved patch state {self.path} {problem}; it was set aside as {target.name} "
            "and patches start from the config"
        )

    # ------------------------------------------------------------------ save
    def save(self, patches: Mapping[str, PatchRecord]) -> None:
        """Writes the state atomically and durably; on failure raises `StateStoreError` and the
        previous file stays as it was. Records in state "disabled" are left out."""
        stored: dict[str, Any] = {}
        for name, record in sorted(patches.items()):
            state = str(record.state)
            if state == "disabled":
                continue
            if state not in STORED_STATES:
                raise ValueError(f"patch '{name}' has state {state!r}, not enabled or pending")
            stored[name] = {"state": state, "approved_by": dict(record.approved_by)}
        document = {
            "format": FORMAT,
            "gateway": self.gateway_id,
            "saved": iso_time(datetime.now(UTC)),
            "patches": stored,
        }
        data = (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode("utf-8")

        try:
            # Same directory as the target, so os.replace is a rename within one filesystem.
            fd, temp_name = tempfile.mkstemp(
                prefix=f".{STATE_FILE}.", suffix=".tmp", dir=self.state_dir
            )
        except OSError as exc:
            raise self._save_error(exc) from None
        temp = Path(temp_name)
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            temp.replace(self.path)
        except BaseException as exc:
            with contextlib.suppress(OSError):
                temp.unlink()
            if isinstance(exc, OSError):
                raise self._save_error(exc) from None
            raise
        try:
            _fsync_directory(self.state_dir)
        except OSError as exc:
            raise self._save_error(exc) from None

    def _save_error(self, exc: OSError) -> StateStoreError:
        return StateStoreError(f"cannot save the patch state to {self.path}: {_reason(exc)}")


def _record(entry: Any) -> PatchRecord | None:
    if not isinstance(entry, dict):
        return None
    state = entry.get("state")
    approved = entry.get("approved_by", {})
    if state not in STORED_STATES or not isinstance(approved, dict):
        return None
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in approved.items()):
        return None
    return PatchRecord(state=state, approved_by=dict(approved))


def _describe(entry: Any) -> str:
    if isinstance(entry, dict) and entry.get("state") not in STORED_STATES:
        return f"state {entry.get('state')!r}"
    if isinstance(entry, dict):
        return '"approved_by" is not an object of agency to name'
    return "not an object"


def _fsync_directory(directory: Path) -> None:
    """Makes the rename itself durable: without it a power cut can bring back the old entry."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno != errno.EINVAL:  # some filesystems cannot sync a directory; nothing to do
            raise
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------------- run lock
class RunLock:
    """An exclusive flock on `state_dir/crosspatch.lock`; the kernel drops it when the process
    dies, so a crash never leaves a lock behind."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        # The file stays: unlinking a lock file lets a third process lock a new inode while a
        # second still waits on the old one.
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()


def acquire_lock(state_dir: Path) -> RunLock:
    """Takes the state directory for this process, creating it (0750) if missing.

    Raises `StateLockedError` if another daemon holds it, `StateStoreError` if the directory
    cannot be created or written.
    """
    try:
        state_dir.mkdir(mode=STATE_DIR_MODE, parents=True, exist_ok=True)
    except FileExistsError:
        raise StateStoreError(
            f"state directory {state_dir} exists and is not a directory"
        ) from None
    except OSError as exc:
        raise StateStoreError(
            f"cannot create the state directory {state_dir}: {_reason(exc)}"
        ) from None
    path = state_dir / LOCK_FILE
    try:
        # O_CLOEXEC: a helper the daemon starts (rigctld, say) must not inherit the lock and keep
        # it after the daemon died.
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o640)
    except OSError as exc:
        raise StateStoreError(
            f"cannot write the state directory {state_dir}: {_reason(exc)}"
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _read_pid(fd)
        os.close(fd)
        raise StateLockedError(
            f"another crosspatch daemon (pid {holder}) is running on {state_dir}"
        ) from None
    except OSError as exc:
        os.close(fd)
        raise StateStoreError(f"cannot lock {path}: {_reason(exc)}") from None
    lock = RunLock(path, fd)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        _probe_writable(state_dir)
    except OSError as exc:
        lock.release()
        raise StateStoreError(
            f"cannot write the state directory {state_dir}: {_reason(exc)}"
        ) from None
    return lock


def _probe_writable(state_dir: Path) -> None:
    """Fails now, at start, rather than at the first dispatcher's command: the lock file may be
    writable while the directory (where saves create their temp files) is not."""
    with tempfile.TemporaryFile(dir=state_dir):
        pass


def _read_pid(fd: int) -> str:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return "unknown"
    return text if text.isdigit() else "unknown"
