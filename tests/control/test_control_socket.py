"""The control socket: a real server on a Unix socket in a temp dir, the real sync client.

The handler is each test's own small function (what the daemon plugs in is tested elsewhere);
raw clients speak bytes over asyncio streams to send what the real client never would.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import pwd
import shutil
import socket
import stat
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.control.control_socket import (
    MAX_LINE_BYTES,
    ControlRefused,
    ControlRequest,
    ControlServer,
    ControlSocketError,
    ControlUnavailable,
    request,
)


class Handler:
    """Echoes the request; `do` in the args picks a misbehaviour."""

    def __init__(self) -> None:
        self.calls: list[ControlRequest] = []

    async def __call__(self, req: ControlRequest) -> dict[str, Any]:
        self.calls.append(req)
        action = req.args.get("do")
        if action == "refuse":
            raise ControlRefused("'border-tac' is disabled, not pending: there is nothing to deny")
        if action == "crash":
            raise RuntimeError("boom\nsecond line of the message")
        if action == "unencodable":
            return {"value": object()}
        if action == "sleep":
            await asyncio.sleep(float(req.args["seconds"]))
        return {
            "command": req.command,
            "args": req.args,
            "uid": req.uid,
            "gid": req.gid,
            "pid": req.pid,
            "user": req.user,
        }


Body = Callable[[Path, Handler], Awaitable[None]]


def serve(tmp_path: Path, body: Body, **options: Any) -> None:
    """Runs `body` against a live server whose socket is in a directory that does not exist yet."""
    path = tmp_path / "run" / "control.sock"
    handler = Handler()

    async def main() -> None:
        async with ControlServer(path, handler, **options) as server:
            await asyncio.wait_for(body(server.path, handler), timeout=20)

    asyncio.run(main())
    assert not path.exists(), "close() must remove the socket file"


async def call(path: Path, command: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
    """The real (synchronous) client, off the loop so the server keeps running."""
    return await asyncio.to_thread(request, path, command, args)


async def exchange(path: Path, data: bytes, replies: int) -> list[dict[str, Any]]:
    # Replies may echo a whole request line back: read them with room to spare.
    reader, writer = await asyncio.open_unix_connection(os.fspath(path), limit=4 * MAX_LINE_BYTES)
    try:
        writer.write(data)
        await writer.drain()
        return [json.loads(await reader.readline()) for _ in range(replies)]
    finally:
        writer.close()


async def still_serving(path: Path) -> None:
    reply = await call(path, "status")
    assert reply["ok"] is True, reply


def stale_socket(path: Path) -> None:
    """A socket file nobody listens on: what a daemon killed with SIGKILL leaves behind."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(os.fspath(path))
    assert stat.S_ISSOCK(path.stat().st_mode)


# ---------------------------------------------------------------------------------- basics
def test_round_trip_with_peer_credentials(tmp_path: Path) -> None:
    async def body(path: Path, handler: Handler) -> None:
        reply = await call(path, "patch.enable", {"patch": "border-tac"})
        assert reply["ok"] is True
        assert reply["id"] is None
        result = reply["result"]
        assert result["command"] == "patch.enable"
        assert result["args"] == {"patch": "border-tac"}
        assert result["uid"] == os.getuid()
        assert result["gid"] == os.getgid()
        assert result["pid"] == os.getpid()
        assert result["user"] == pwd.getpwuid(os.getuid()).pw_name
        assert handler.calls[0].id is None

    serve(tmp_path, body)


def test_socket_is_mode_0660_in_a_created_directory(tmp_path: Path) -> None:
    async def body(path: Path, handler: Handler) -> None:
        mode = path.stat().st_mode
        assert stat.S_ISSOCK(mode)
        assert stat.S_IMODE(mode) == 0o660

    serve(tmp_path, body)


def test_id_is_echoed_on_success_and_on_errors(tmp_path: Path) -> None:
    async def body(path: Path, handler: Handler) -> None:
        for request_id in ["abc", 42, {"n": 1}, [1, "two"]]:
            line = json.dumps({"command": "status", "id": request_id}).encode() + b"\n"
            (ok,) = await exchange(path, line, 1)
            assert ok["id"] == request_id and ok["ok"] is True
            assert "id" not in ok["result"]["args"]
        (unknown,) = await exchange(path, b'{"command": "explode", "id": 9}\n', 1)
        assert unknown == {"id": 9, "ok": False, "error": unknown["error"]}
        (refused,) = await exchange(path, b'{"command": "status", "do": "refuse", "id": 3}\n', 1)
        assert refused["id"] == 3 and refused["ok"] is False

    serve(tmp_path, body)


def test_several_requests_on_one_connection_are_answered_in_order(tmp_path: Path) -> None:
    async def body(path: Path, handler: Handler) -> None:
        lines = [
            {"command": "patch.enable", "patch": "a", "id": 1},
            {"command": "status", "do": "sleep", "seconds": 0.05, "id": 2},
            {"command": "bogus", "id": 3},
            {"command": "patch.disable", "patch": "a", "id": 4},
        ]
        # One write holding every line, plus a blank line and CRLF, as a script might send them.
        data = b"".join(json.dumps(line).encode() + b"\n" for line in lines[:2])
        data += b"\n" + json.dumps(lines[2]).encode() + b"\r\n" + json.dumps(lines[3]).encode()
        data += b"\n"
        replies = await exchange(path, data, 4)
        assert [reply["id"] for reply in replies] == [1, 2, 3, 4]
        assert [reply["ok"] for reply in replies] == [True, True, False, True]
        assert replies[3]["result"]["args"] == {"patch": "a"}

    serve(tmp_path, body)


def test_many_clients_at_once(tmp_path: Path) -> None:
    async def body(path: Path, handler: Handler) -> None:
        replies = await asyncio.gather(
            *(call(path, "patch.approve", {"patch": f"p{i}"}) for i in range(24))
        )
        assert [reply["result"]["args"]["patch"] for reply in replies] == [
            f"p{i}" for i in range(24)
        ]

    serve(tmp_path, body)


# ---------------------------------------------------------------------------------- bad input
BAD_LINES = [
    pytest.param(b"not json at all\n", "the request is not JSON (Expecting value", id="not-json"),
    pytest.param(b"[1, 2]\n", "the request must be a JSON object, not an array", id="array"),
    pytest.param(b'"status"\n', "must be a JSON object, not a string", id="string"),
    pytest.param(b'{"id": 7}\n', 'the request has no "command" (known: status,', id="no-command"),
    pytest.param(b'{"command": 5}\n', '"command" must be a string, not a number', id="number"),
    pytest.param(
        b'{"command": "explode"}\n',
        "unknown command 'explode'; known: status, patch.list, patch.enable, patch.disable, "
        "patch.approve, patch.deny, port.key_test, reload",
        id="unknown-command",
    ),
    pytest.param(
        b'\xff{"command": "status"}\n', "not valid UTF-8 (bad byte at offset 0)", id="utf8"
    ),
    pytest.param(b"[" * 60000 + b"\n", "not JSON (it is nested too deeply)", id="deep"),
    pytest.param(b'{"command": "patch.enable"}\n', "'patch.enable' needs \"patch\"", id="no-patch"),
    pytest.param(
        b'{"command": "patch.deny", "patch": 3}\n', "'patch.deny' needs \"patch\"", id="bad-patch"
    ),
    pytest.param(
        b'{"command": "patch.deny", "patch": "border-tac", "do": "refuse"}\n',
        "'border-tac' is disabled, not pending: there is nothing to deny",
        id="refused",
    ),
    pytest.param(
        b'{"command": "status", "do": "unencodable"}\n',
        "internal error: the reply is not JSON",
        id="unencodable-result",
    ),
    pytest.param(
        # Valid JSON, but a lone UTF-16 surrogate is not text: refused before anything is run.
        b'{"command": "status", "id": "\\ud800", "patch": "\\udfff"}\n',
        "holds a lone UTF-16 surrogate",
        id="lone-surrogate",
    ),
    # A transport's own notes (an oversized payload, a rate-limit count) travel out of band: the
    # bytes a client sends can never pass for one, however they begin.
    pytest.param(
        b"\x00rate-limited:junk\n", "not JSON (Expecting value", id="forged-rate-limit-note"
    ),
    pytest.param(
        b"\x00oversized:\xff\n", "not valid UTF-8 (bad byte at offset 11)", id="forged-size"
    ),
]


@pytest.mark.parametrize(("line", "error"), BAD_LINES)
def test_bad_input_gets_an_error_and_the_server_carries_on(
    tmp_path: Path, line: bytes, error: str
) -> None:
    async def body(path: Path, handler: Handler) -> None:
        # The bad line, then a good one on the same connection: the connection survives too.
        replies = await exchange(path, line + b'{"command": "status", "id": "next"}\n', 2)
        assert replies[0]["ok"] is False
        assert error in replies[0]["error"]
        assert "\n" not in replies[0]["error"]
        assert replies[1]["id"] == "next" and replies[1]["ok"] is True
        await still_serving(path)

    serve(tmp_path, body)


def test_handler_crash_is_logged_with_traceback_and_answered(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def body(path: Path, handler: Handler) -> None:
        reply = await call(path, "reload", {"do": "crash"})
        assert reply == {"id": None, "ok": False, "error": "internal error: boom"}
        await still_serving(path)

    with caplog.at_level(logging.ERROR, logger="gateway.control.control_socket"):
        serve(tmp_path, body)
    crashes = [r for r in caplog.records if r.levelno == logging.ERROR and r.exc_info]
    assert len(crashes) == 1
    assert "reload" in crashes[0].getMessage()


@pytest.mark.parametrize("with_newline", [False, True], ids=["unterminated", "terminated"])
def test_overlong_line_is_answered_and_its_connection_closed(
    tmp_path: Path, with_newline: bool
) -> None:
    async def body(path: Path, handler: Handler) -> None:
        reader, writer = await asyncio.open_unix_connection(os.fspath(path))
        writer.write(b'{"command": "status", "pad": "' + b"x" * (MAX_LINE_BYTES + 100))
        if with_newline:
            writer.write(b'"}\n')
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        reply = json.loads(await reader.readline())
        assert reply["ok"] is False
        assert reply["error"] == "request line longer than 65536 bytes; closing the connection"
        assert await reader.read() == b""  # closed by the server
        writer.close()
        assert handler.calls == []
        await still_serving(path)

    serve(tmp_path, body)


def test_line_of_exactly_the_limit_is_accepted(tmp_path: Path) -> None:
    async def body(path: Path, handler: Handler) -> None:
        head = b'{"command": "status", "pad": "'
        line = head + b"x" * (MAX_LINE_BYTES - len(head) - 2) + b'"}'
        assert len(line) == MAX_LINE_BYTES
        (reply,) = await exchange(path, line + b"\n", 1)
        assert reply["ok"] is True

    serve(tmp_path, body)


def test_client_disconnecting_mid_line_is_not_acted_on(tmp_path: Path) -> None:
    async def body(path: Path, handler: Handler) -> None:
        _, writer = await asyncio.open_unix_connection(os.fspath(path))
        writer.write(b'{"command": "patch.enable", "patch": "border-tac"}')  # no newline
        await writer.drain()
        writer.close()
        await writer.wait_closed()
        await still_serving(path)
        assert [c.command for c in handler.calls] == ["status"]

    serve(tmp_path, body)


def test_stuck_clients_do_not_block_others_and_half_lines_time_out(tmp_path: Path) -> None:
    async def body(path: Path, handler: Handler) -> None:
        # One client sends half a line and stalls; another waits on a slow command.
        half_reader, half_writer = await asyncio.open_unix_connection(os.fspath(path))
        half_writer.write(b'{"command": "sta')
        await half_writer.drain()
        slow = asyncio.create_task(call(path, "status", {"do": "sleep", "seconds": 1.0}))
        started = time.monotonic()
        await still_serving(path)
        assert time.monotonic() - started < 0.5
        # The half-sent line is given up after line_timeout: the server closes that connection.
        assert await asyncio.wait_for(half_reader.read(), timeout=5) == b""
        half_writer.close()
        assert (await slow)["ok"] is True

    serve(tmp_path, body, line_timeout=0.3)


def test_idle_connection_is_closed_after_idle_timeout(tmp_path: Path) -> None:
    async def body(path: Path, handler: Handler) -> None:
        reader, writer = await asyncio.open_unix_connection(os.fspath(path))
        writer.write(b'{"command": "status"}\n')
        assert json.loads(await reader.readline())["ok"] is True
        assert await asyncio.wait_for(reader.read(), timeout=5) == b""
        writer.close()

    serve(tmp_path, body, idle_timeout=0.3)


def test_close_ends_open_connections(tmp_path: Path) -> None:
    path = tmp_path / "control.sock"

    async def main() -> None:
        server = ControlServer(path, Handler())
        await server.start()
        reader, writer = await asyncio.open_unix_connection(os.fspath(path))
        writer.write(b'{"command": "sta')  # a half line, so the connection is mid-request
        await writer.drain()
        await asyncio.sleep(0.05)
        await asyncio.wait_for(server.close(), timeout=5)
        assert await asyncio.wait_for(reader.read(), timeout=5) == b""
        writer.close()
        await server.close()  # a second close is harmless

    asyncio.run(main())
    assert not path.exists()


# ---------------------------------------------------------------------------------- the path
def test_stale_socket_is_replaced(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "run").mkdir()
    stale_socket(tmp_path / "run" / "control.sock")

    async def body(path: Path, handler: Handler) -> None:
        await still_serving(path)

    with caplog.at_level(logging.WARNING, logger="gateway.control.control_socket"):
        serve(tmp_path, body)
    assert any("stale control socket" in r.getMessage() for r in caplog.records)


def test_second_server_on_a_live_socket_is_refused(tmp_path: Path) -> None:
    async def body(path: Path, handler: Handler) -> None:
        second = ControlServer(path, Handler())
        with pytest.raises(ControlSocketError, match="another process is already listening on"):
            await second.start()
        await second.close()  # never started: nothing to do, and the first socket stays
        assert path.exists()
        await still_serving(path)

    serve(tmp_path, body)


def test_a_file_that_is_not_a_socket_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "control.sock"
    path.write_text("precious\n")

    async def main() -> None:
        with pytest.raises(ControlSocketError, match="exists and is not a socket"):
            await ControlServer(path, Handler()).start()

    asyncio.run(main())
    assert path.read_text() == "precious\n"


def test_socket_path_too_long_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / ("x" * 120) / "control.sock"

    async def main() -> None:
        with pytest.raises(ControlSocketError, match="too long for a Unix socket"):
            await ControlServer(path, Handler()).start()

    asyncio.run(main())


def test_close_leaves_a_socket_that_replaced_ours(tmp_path: Path) -> None:
    path = tmp_path / "control.sock"

    async def main() -> None:
        server = ControlServer(path, Handler())
        await server.start()
        path.unlink()  # someone removed ours and another daemon bound the path since
        stale_socket(path)
        await server.close()

    asyncio.run(main())
    assert path.exists()


# ---------------------------------------------------------------------------------- client errors
def test_client_without_a_socket(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "control.sock"
    with pytest.raises(ControlUnavailable) as info:
        request(path, "status")
    assert str(info.value) == (
        f"no crosspatch daemon is listening on {path} "
        "(is `crosspatch run` running? is --socket right?)"
    )


def test_client_on_a_stale_socket(tmp_path: Path) -> None:
    path = tmp_path / "control.sock"
    stale_socket(path)
    with pytest.raises(ControlUnavailable, match="left over from one that stopped"):
        request(path, "status")


def test_client_times_out_on_a_server_that_never_answers(tmp_path: Path) -> None:
    path = tmp_path / "control.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(os.fspath(path))
        listener.listen()  # connections queue in the backlog and are never accepted
        started = time.monotonic()
        with pytest.raises(ControlUnavailable) as info:
            request(path, "status", timeout=0.3)
        assert time.monotonic() - started < 2
    assert str(info.value) == f"the crosspatch daemon on {path} did not answer within 0.3 s"


def test_client_when_the_server_hangs_up_without_answering(tmp_path: Path) -> None:
    path = tmp_path / "control.sock"

    async def main() -> None:
        async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readline()
            writer.close()

        server = await asyncio.start_unix_server(hang_up, path=os.fspath(path))
        async with server:
            with pytest.raises(ControlUnavailable, match="closed the connection without answer"):
                await asyncio.to_thread(request, path, "status")

    asyncio.run(main())


@contextlib.contextmanager
def _world_traversable_dir() -> Iterator[Path]:
    # pytest's tmp_path sits in a 0700 directory; the socket's own mode must be what refuses.
    directory = Path(tempfile.mkdtemp(prefix="crosspatch-test-", dir="/tmp"))
    try:
        directory.chmod(0o755)
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def test_client_without_permission(tmp_path: Path) -> None:
    with (
        _world_traversable_dir() as directory,
        socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener,
    ):
        path = directory / "control.sock"
        listener.bind(os.fspath(path))
        listener.listen()
        expected = f"permission denied on {path}: add your user to the crosspatch group"
        if os.geteuid() != 0:
            path.chmod(0o000)
            with pytest.raises(ControlUnavailable) as info:
                request(path, "status")
            assert str(info.value) == expected
            return
        # root passes every permission check: ask as `nobody`, in a forked child.
        path.chmod(0o660)
        assert _message_as_nobody(path) == expected


def _message_as_nobody(path: Path) -> str:
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        message = "no error"
        try:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            request(path, "status", timeout=2)
        except ControlUnavailable as exc:
            message = str(exc)
        except BaseException as exc:
            message = f"unexpected {exc!r}"
        finally:
            os.write(write_end, message.encode())
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        message = pipe.read().decode()
    os.waitpid(child, 0)
    return message
