"""The daemon's local control channel: a Unix stream socket speaking JSON lines.

One JSON object per line (UTF-8, `\\n`-terminated) each way. A request is
`{"command": "patch.enable", "patch": "border-tac", "id": "optional"}`; its reply is
`{"id": ..., "ok": true, "result": {...}}` or `{"id": ..., "ok": false, "error": "one sentence"}`.
A connection may carry several requests; they are answered in order.

Who is asking comes from the kernel (SO_PEERCRED), not from the request, so a local user cannot
claim to be someone else; the socket's mode (0660) and group decide who may ask at all. Mapping
the caller to a dispatcher or technician is the handler's business, not this module's.

`ControlServer` runs on the daemon's asyncio loop; `request` is the synchronous client the CLI uses
(no event loop for a one-shot command).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import pwd
import socket
import stat
import struct
import time
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import orjson

from gateway.core.errors import UserError

log = logging.getLogger(__name__)

SOCKET_MODE = 0o660
MAX_LINE_BYTES = 64 * 1024  # a request line, without its newline
MAX_REPLY_BYTES = 16 * 1024 * 1024  # what the client accepts before calling the daemon broken
_READ_CHUNK = 64 * 1024
# sizeof(sockaddr_un.sun_path) - 1 on Linux (gateway.config.models.UNIX_SOCKET_PATH_MAX, not
# imported: the command-line client must start without pydantic). Checked here for --socket.
_SUN_PATH_MAX = 107
_PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


class ControlError(UserError):
    """Base of the control channel's errors; every message is one sentence for the user."""


class ControlSocketError(ControlError):
    """The server cannot take its socket (in use, not a socket, no permission, path too long)."""


class ControlUnavailable(ControlError):
    """The client cannot get an answer from the daemon."""


class ControlRefused(ControlError):
    """Raised by a handler to refuse a request; the message becomes the reply's `error`."""


@dataclass(frozen=True)
class ControlRequest:
    command: str
    args: dict[str, Any]  # every key of the request but `command` and `id`
    id: Any
    uid: int
    gid: int
    pid: int
    user: str  # the uid's login name, or `uid:1234` when the system does not know it


ControlHandler = Callable[[ControlRequest], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class _Peer:
    uid: int
    gid: int
    pid: int
    user: str

    def __str__(self) -> str:
        return f"{self.user} (pid {self.pid})"


def _error(request_id: Any, message: str) -> dict[str, Any]:
    return {"id": request_id, "ok": False, "error": message}


# Keys that are not strings (numbers) are written as strings, as the json module does.
_REPLY_OPTIONS = orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS


def _encode(reply: dict[str, Any]) -> bytes:
    """The reply as one line; a result JSON cannot carry becomes an internal error instead of a
    dropped connection.

    orjson, not json: a `status` reply of a 64-port site is ~35 KB, and the standard encoder
    holds the interpreter lock for all of it (1-2.5 ms here), during which the engine thread
    cannot start its tick; orjson takes a tenth of that. It writes NaN and infinities as null."""
    try:
        return orjson.dumps(reply, option=_REPLY_OPTIONS)
    except TypeError as exc:  # orjson.JSONEncodeError: not JSON, or a string not UTF-8
        log.error("control reply cannot be encoded as JSON: %s (reply: %.200r)", exc, reply)
        fallback = _error(reply.get("id"), f"internal error: the reply is not JSON ({exc})")
        try:
            return orjson.dumps(fallback, option=_REPLY_OPTIONS)
        except TypeError:  # the id itself cannot be sent back
            fallback["id"] = None
            return orjson.dumps(fallback, option=_REPLY_OPTIONS)


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__


_NAME_CACHE_S = 60.0


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid:{uid}"


def _check_path_length(path: Path) -> None:
    if len(os.fsencode(path)) > _SUN_PATH_MAX:
        raise ControlSocketError(
            f"control socket path {path} is too long for a Unix socket (at most "
            f"{_SUN_PATH_MAX} bytes); choose a shorter gateway.control_socket or --socket"
        )


# ---------------------------------------------------------------------------------- server
class ControlServer:
    """Serves the control socket on the running asyncio loop.

    Each connection has its own task, so a slow or stuck client holds only itself up; a line
    half-sent and then left for `line_timeout` seconds, or a connection idle for `idle_timeout`,
    is closed so forgotten clients do not pile up.
    """

    def __init__(
        self,
        path: Path,
        handler: ControlHandler,
        *,
        line_timeout: float = 30.0,
        idle_timeout: float | None = 300.0,
        write_timeout: float = 30.0,
    ) -> None:
        self.path = path
        self._handler = handler
        self._line_timeout = line_timeout
        self._idle_timeout = idle_timeout
        self._write_timeout = write_timeout
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[Any]] = set()
        self._identity: tuple[int, int] | None = None  # (st_dev, st_ino) of the file we bound
        self._closing = False
        # User names may come through NSS from LDAP or similar: look them up off the loop, in a
        # thread of our own, so clients blocking the loop's shared executor cannot starve us.
        self._lookups: ThreadPoolExecutor | None = None
        self._names: dict[int, tuple[str, float]] = {}  # uid -> (user name, when looked up)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("the control server is already started")
        _check_path_length(self.path)
        await self._clear_path()
        sock = self._bind()
        self._closing = False
        self._lookups = ThreadPoolExecutor(max_workers=1, thread_name_prefix="control-peer")
        try:
            self._server = await asyncio.start_unix_server(self._on_connect, sock=sock)
        except BaseException:
            sock.close()
            self._remove_socket_file()
            self._lookups.shutdown(wait=False, cancel_futures=True)
            raise
        log.info("control socket listening on %s", self.path)

    async def close(self) -> None:
        """Stops listening, drops every connection and removes the socket file."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        # Python 3.11's Server.wait_closed does not wait for live connections: end them here.
        self._closing = True
        connections = list(self._connections)
        for task in connections:
            task.cancel()
        await asyncio.gather(*connections, return_exceptions=True)
        await server.wait_closed()
        if self._lookups is not None:
            self._lookups.shutdown(wait=False, cancel_futures=True)
            self._lookups = None
        self._remove_socket_file()
        log.info("control socket %s closed", self.path)

    # ------------------------------------------------------------------ taking the path
    async def _clear_path(self) -> None:
        """Creates the directory; removes a socket left by a dead daemon, never a live one's."""
        parent = self.path.parent
        try:
            parent.mkdir(mode=0o750, parents=True, exist_ok=True)
        except OSError as exc:
            raise ControlSocketError(
                f"cannot create the control socket's directory {parent}: {_reason(exc)}"
            ) from None
        try:
            mode = self.path.lstat().st_mode
        except FileNotFoundError:
            return
        except OSError as exc:
            raise ControlSocketError(f"cannot use {self.path}: {_reason(exc)}") from None
        if not stat.S_ISSOCK(mode):
            raise ControlSocketError(
                f"{self.path} exists and is not a socket; refusing to replace it "
                "(is gateway.control_socket right?)"
            )
        if await self._answers():
            raise ControlSocketError(
                f"another process is already listening on {self.path} "
                "(is another crosspatch daemon running?)"
            )
        log.warning("removing stale control socket %s left by a daemon that stopped", self.path)
        try:
            self.path.unlink(missing_ok=True)
        except OSError as exc:
            raise ControlSocketError(
                f"cannot remove the stale control socket {self.path}: {_reason(exc)}"
            ) from None

    async def _answers(self) -> bool:
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_unix_connection(os.fspath(self.path)), timeout=2.0
            )
        except (ConnectionRefusedError, FileNotFoundError):
            return False
        except TimeoutError:
            return True  # someone holds it, only too busy to accept right now
        except OSError as exc:
            raise ControlSocketError(
                f"cannot tell whether {self.path} is in use: {_reason(exc)}"
            ) from None
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return True

    def _bind(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        bound = False
        try:
            sock.bind(os.fspath(self.path))
            bound = True
            # chmod before listen(): until listen() every connect() is refused, so the moment the
            # file still has the umask's wider mode lets nobody in. (A umask around bind() would
            # be process-wide, and the engine and other threads create files too.)
            self.path.chmod(SOCKET_MODE)
            info = self.path.stat()
            self._identity = (info.st_dev, info.st_ino)
        except OSError as exc:
            sock.close()
            if bound:
                with contextlib.suppress(OSError):
                    self.path.unlink()
            raise ControlSocketError(
                f"cannot create the control socket {self.path}: {_reason(exc)}"
            ) from None
        return sock

    def _remove_socket_file(self) -> None:
        """Removes the socket file only if it is still ours: a daemon started after us (our
        socket was removed by hand) must keep its own."""
        identity, self._identity = self._identity, None
        if identity is None:
            return
        try:
            info = self.path.stat()
            if (info.st_dev, info.st_ino) == identity:
                self.path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("cannot remove the control socket %s: %s", self.path, _reason(exc))

    # ------------------------------------------------------------------ connections
    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        peer: _Peer | str = "a client"
        clean = True
        try:
            peer = await self._peer(writer)
            await self._converse(reader, writer, peer)
        except TimeoutError:
            log.info("control client %s does not read its replies; closing", peer)
            clean = False
        except OSError as exc:  # reset, broken pipe: the client left
            log.debug("control client %s went away: %s", peer, exc)
            clean = False
        except asyncio.CancelledError:
            clean = False
            # Ending quietly when close() cancelled us: 3.11's streams call task.exception() on
            # the finished connection task, which raises (and logs) for a cancelled one.
            if not self._closing:
                raise
        except Exception:  # a bug here must cost one connection, never the server
            log.exception("control connection of %s failed", peer)
            clean = False
        finally:
            if task is not None:
                self._connections.discard(task)
            if clean:
                writer.close()
            else:
                # A client that does not read would keep a graceful close waiting for ever.
                writer.transport.abort()

    async def _peer(self, writer: asyncio.StreamWriter) -> _Peer:
        sock = writer.get_extra_info("socket")
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
        pid, uid, gid = _PEERCRED.unpack(raw)
        cached = self._names.get(uid)
        if cached is not None and time.monotonic() - cached[1] < _NAME_CACHE_S:
            user = cached[0]
        else:
            # One lookup per user a minute, not one thread hop per connection: a dashboard
            # polling status must not add work that competes with the engine thread.
            loop = asyncio.get_running_loop()
            user = await loop.run_in_executor(self._lookups, _user_name, uid)
            self._names[uid] = (user, time.monotonic())
        return _Peer(uid=uid, gid=gid, pid=pid, user=user)

    async def _converse(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: _Peer
    ) -> None:
        # Our own framing rather than StreamReader.readuntil: it tells an idle connection from a
        # half-sent line (each has its own timeout) and bounds a line without losing the stream.
        buffer = bytearray()
        while True:
            newline = buffer.find(b"\n")
            if newline > MAX_LINE_BYTES or (newline < 0 and len(buffer) > MAX_LINE_BYTES):
                log.info("control client %s sent a line over %d bytes", peer, MAX_LINE_BYTES)
                await self._send(
                    writer,
                    _error(
                        None,
                        f"request line longer than {MAX_LINE_BYTES} bytes; closing the connection",
                    ),
                )
                return
            if newline >= 0:
                line = bytes(buffer[:newline])
                del buffer[: newline + 1]
                if line.strip():  # blank lines (a human at socat pressing Enter) ask nothing
                    await self._send(writer, await self._answer(line, peer))
                continue
            timeout = self._line_timeout if buffer else self._idle_timeout
            try:
                chunk = await asyncio.wait_for(reader.read(_READ_CHUNK), timeout)
            except TimeoutError:
                if buffer:
                    log.info("control client %s left a request half-sent; closing", peer)
                return
            if not chunk:
                if buffer.strip():
                    # A request without its newline is not a request: do not act on it.
                    log.info("control client %s disconnected in the middle of a request", peer)
                return
            buffer += chunk

    async def _answer(self, line: bytes, peer: _Peer) -> dict[str, Any]:
        # Imported by the server only: the CLI's `request` must not load the engine (numpy)
        # that the command layer brings in.
        from gateway.control.router import BadRequest, one_line, parse_request

        try:
            command, args, request_id = parse_request(line, "request")
        except BadRequest as bad:
            return _error(bad.request_id, str(bad))
        request = ControlRequest(
            command=command,
            args=args,
            id=request_id,
            uid=peer.uid,
            gid=peer.gid,
            pid=peer.pid,
            user=peer.user,
        )
        try:
            result = await self._handler(request)
        except ControlRefused as refusal:
            return _error(request_id, str(refusal) or f"'{command}' refused")
        except Exception as exc:
            log.exception("control command %s from %s failed", command, peer)
            return _error(request_id, f"internal error: {one_line(exc)}")
        if not isinstance(result, dict):
            log.error("control handler returned %s for %s, not a dict", type(result), command)
            return _error(request_id, "internal error: the handler's result is not an object")
        return {"id": request_id, "ok": True, "result": result}

    async def _send(self, writer: asyncio.StreamWriter, reply: dict[str, Any]) -> None:
        writer.write(_encode(reply))
        await asyncio.wait_for(writer.drain(), self._write_timeout)


# ---------------------------------------------------------------------------------- client
def request(
    path: Path,
    command: str,
    args: Mapping[str, Any] | None = None,
    timeout: float = 5.0,
) -> dict[str, Any]:
    """Sends one request to the daemon and returns its reply object (`ok` true or false).

    Raises `ControlUnavailable` with one helpful line when no answer can be had; `timeout` bounds
    the whole exchange, connect to reply.
    """
    message = {**(args or {}), "command": command}
    data = (json.dumps(message, ensure_ascii=False) + "\n").encode("utf-8")
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        try:
            sock.settimeout(timeout)
            sock.connect(os.fspath(path))
            sock.sendall(data)
            line = _read_line(sock, path, deadline)
        except TimeoutError:
            raise ControlUnavailable(
                f"the crosspatch daemon on {path} did not answer within {timeout:g} s"
            ) from None
        except (FileNotFoundError, NotADirectoryError):
            raise ControlUnavailable(
                f"no crosspatch daemon is listening on {path} "
                "(is `crosspatch run` running? is --socket right?)"
            ) from None
        except ConnectionRefusedError:
            raise ControlUnavailable(
                f"no crosspatch daemon is listening on {path}: the socket is left over from one "
                "that stopped (is `crosspatch run` running? is --socket right?)"
            ) from None
        except PermissionError:
            raise ControlUnavailable(
                f"permission denied on {path}: add your user to the crosspatch group"
            ) from None
        except (BrokenPipeError, ConnectionResetError):
            raise ControlUnavailable(
                f"the crosspatch daemon on {path} closed the connection without answering"
            ) from None
        except OSError as exc:
            raise ControlUnavailable(
                f"cannot reach the crosspatch daemon on {path}: {_reason(exc)}"
            ) from None
    try:
        reply = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        reply = None
    if not isinstance(reply, dict):
        raise ControlUnavailable(
            f"the process on {path} answered something that is not a crosspatch reply"
        )
    return reply


def _read_line(sock: socket.socket, path: Path, deadline: float) -> bytes:
    buffer = bytearray()
    while (newline := buffer.find(b"\n")) < 0:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        sock.settimeout(remaining)
        chunk = sock.recv(_READ_CHUNK)
        if not chunk:
            raise ControlUnavailable(
                f"the crosspatch daemon on {path} closed the connection without answering"
            )
        buffer += chunk
        if len(buffer) > MAX_REPLY_BYTES:
            raise ControlUnavailable(
                f"the reply from {path} is over {MAX_REPLY_BYTES} bytes; is it a crosspatch daemon?"
            )
    return bytes(buffer[:newline])
