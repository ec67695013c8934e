"""Reading a child process's output line by line with a time limit, so a child that prints
nothing (or does not flush) fails its test instead of hanging the run."""

from __future__ import annotations

import queue
import threading
from typing import IO


class ChildLines:
    """Lines of a child's text stream, read by a thread; `next()` waits at most `timeout_s`."""

    def __init__(self, stream: IO[str]) -> None:
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self._lines.put(line)
        self._lines.put(None)

    def next(self, timeout_s: float = 10.0) -> str:
        """The next line; AssertionError when none comes within `timeout_s` or the stream ends."""
        try:
            line = self._lines.get(timeout=timeout_s)
        except queue.Empty:
            raise AssertionError(f"no line from the child within {timeout_s} s") from None
        if line is None:
            raise AssertionError("the child's output ended")
        return line

    def rest(self, timeout_s: float = 10.0) -> str:
        """Everything after the lines already read, once the stream ends."""
        self._thread.join(timeout_s)
        assert not self._thread.is_alive(), f"the child's output did not end within {timeout_s} s"
        out: list[str] = []
        while (line := self._lines.get_nowait()) is not None:
            out.append(line)
        return "".join(out)
