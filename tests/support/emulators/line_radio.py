"""A radio wired to the modem lines of a serial port on a network device server (RFC 2217).

A pty has no modem lines, and pyserial's loop:// lives inside the process that opens it; a
gateway daemon in another process can only reach lines it can open by name. RFC 2217 (Telnet
COM port control, spoken by serial device servers and ser2net) gives it such a name:
`rfc2217://127.0.0.1:PORT`, which pyserial's client opens like any port. This server plays the
device server and, behind it, the radio interface on its serial port:

    with LineRadioServer() as radio:                  # listens on a free port of 127.0.0.1
        daemon opens radio.url ...
        radio.set_input("cts", True)                  # the radio's squelch opens (COS)
        radio.wait_for("rts", True, timeout=1.0)      # the gateway keyed the radio on RTS
        assert not any(level for _, line, level in radio.history if line == "dtr")
        radio.stop()                                  # the device server goes away
        radio.start()                                 # ... and comes back on the same port

`history` holds every level a client applied to RTS or DTR, as (time.monotonic(), line, level),
so a test can show a radio was never keyed. Levels the server starts with (`rts=`, `dtr=`) and
levels it keeps across `stop()` are the device server's, not a client's, and are not in it.

pyserial's `PortManager` speaks the protocol over each connection; the `RadioInterface` it
wraps stands in for the device server's serial port. The client learns of input changes only
through NOTIFY-MODEMSTATE messages, which `PortManager.check_modem_lines` sends: it runs at once
when a test changes an input and every `notify_s` besides, as a device server polls its port.
One client at a time, as most device servers allow: a second connection is closed at once.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Literal, Self, cast

import serial
from serial import rfc2217

OutputLine = Literal["rts", "dtr"]
InputLine = Literal["cts", "dsr", "ri", "cd", "dcd"]  # dcd: SerialLines' name for cd

_INPUTS: dict[str, str] = {"cts": "cts", "dsr": "dsr", "ri": "ri", "cd": "cd", "dcd": "cd"}


class RadioInterface:
    """The serial port behind the device server, as `PortManager` drives it.

    PortManager reads cts/dsr/ri/cd and sets rts/dtr and the framing attributes; rts/dtr
    assignments are the gateway's PTT and are recorded. All access goes through `cond`.
    """

    def __init__(self, *, rts: bool, dtr: bool) -> None:
        self.cond = threading.Condition()
        self._rts = rts
        self._dtr = dtr
        self.inputs: dict[str, bool] = {"cts": False, "dsr": False, "ri": False, "cd": False}
        self.history: list[tuple[float, str, bool]] = []
        # Framing and flow control, set by the client at open; kept for assertions only.
        self.baudrate = 9600
        self.bytesize = serial.EIGHTBITS
        self.parity = serial.PARITY_NONE
        self.stopbits: float = serial.STOPBITS_ONE
        self.xonxoff = False
        self.rtscts = False
        self.break_condition = False

    # --- outputs: set by the client (the gateway's PTT) -------------------------------------
    @property
    def rts(self) -> bool:
        return self._rts

    @rts.setter
    def rts(self, level: bool) -> None:
        self._apply("rts", level)

    @property
    def dtr(self) -> bool:
        return self._dtr

    @dtr.setter
    def dtr(self, level: bool) -> None:
        self._apply("dtr", level)

    def _apply(self, line: OutputLine, level: bool) -> None:
        with self.cond:
            if line == "rts":
                self._rts = bool(level)
            else:
                self._dtr = bool(level)
            self.history.append((time.monotonic(), line, bool(level)))
            self.cond.notify_all()

    # --- inputs: set by the test (the radio's squelch) --------------------------------------
    @property
    def cts(self) -> bool:
        return self.inputs["cts"]

    @property
    def dsr(self) -> bool:
        return self.inputs["dsr"]

    @property
    def ri(self) -> bool:
        return self.inputs["ri"]

    @property
    def cd(self) -> bool:
        return self.inputs["cd"]

    # --- data: a lines-only interface has nowhere to send it --------------------------------
    def reset_input_buffer(self) -> None:
        pass

    def reset_output_buffer(self) -> None:
        pass


class _Client:
    """One client connection: its socket, its PortManager and the thread reading it."""

    def __init__(
        self, sock: socket.socket, interface: RadioInterface, on_end: Callable[[_Client], None]
    ) -> None:
        self.sock = sock
        self._on_end = on_end
        self.received = bytearray()  # data bytes (not Telnet) the client sent
        self._send_lock = threading.Lock()
        # Every PortManager call (filter, check_modem_lines) runs under this lock: it keeps
        # state (last_modemstate, the Telnet parser) that the reader and the ticker share.
        self.lock = threading.Lock()
        with self.lock:
            # PortManager only reads and assigns the attributes RadioInterface has, and only
            # calls `write` on the connection.
            self.manager = rfc2217.PortManager(
                cast("rfc2217.Serial", interface), cast("rfc2217.Serial", self)
            )
        self.thread = threading.Thread(target=self._read, name="line radio client", daemon=True)

    def write(self, data: bytes) -> int:
        """PortManager's connection: Telnet bytes to the client (thread safe)."""
        with self._send_lock:
            try:
                self.sock.sendall(data)
            except OSError:
                return 0  # the client has gone; the reader notices and ends the connection
        return len(data)

    def check_modem_lines(self) -> None:
        with self.lock:
            self.manager.check_modem_lines()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the reader's recv
        self.sock.close()

    def _read(self) -> None:
        try:
            while chunk := self.sock.recv(4096):
                with self.lock:
                    self.received.extend(b"".join(self.manager.filter(chunk)))
        except OSError:
            pass
        finally:
            self._on_end(self)
            self.close()


class LineRadioServer:
    """An RFC 2217 device server on 127.0.0.1 with a radio wired to its port's modem lines.

    `port=0` picks a free port at the first `start()`; later starts reuse it, so a client's
    URL stays valid across `stop()`/`start()` (an unplugged and replugged device server).
    `rts`/`dtr` are the output levels before any client sets them. `notify_s` is the period
    of the unprompted modem-state check.
    """

    def __init__(
        self, port: int = 0, *, rts: bool = False, dtr: bool = False, notify_s: float = 0.05
    ) -> None:
        self.port = port
        self.notify_s = notify_s
        self.interface = RadioInterface(rts=rts, dtr=dtr)
        self.connections = 0  # clients accepted since construction
        self._listener: socket.socket | None = None
        self._client: _Client | None = None
        self._clients_lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # ------------------------------------------------------------------ life cycle
    @property
    def url(self) -> str:
        if self.port == 0:
            raise RuntimeError("the server has no port until it starts")
        return f"rfc2217://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._listener is not None

    def start(self) -> Self:
        if self._listener is not None:
            raise RuntimeError("the line radio server is running already")
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # A restart on the same port must not wait out TIME_WAIT of the previous connections.
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind(("127.0.0.1", self.port))
            listener.listen(4)
        except OSError:
            listener.close()
            raise
        self.port = listener.getsockname()[1]
        self._listener = listener
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._accept, name="line radio accept", daemon=True),
            threading.Thread(target=self._tick, name="line radio notify", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        """The device server goes away: the listener and any client connection close.

        Line levels are kept (the radio interface is still wired); clients see the connection
        closed (EOF), as when a device server is switched off or its service restarts.
        """
        listener, self._listener = self._listener, None
        if listener is None:
            return
        self._stop.set()
        listener.close()
        with self._clients_lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()
            client.thread.join(timeout=2)
        for thread in self._threads:
            thread.join(timeout=2)
        self._threads = []

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ the radio
    def set_input(self, line: InputLine, level: bool) -> float:
        """Sets an input line (the radio's COS) and notifies the client at once.

        Returns the time.monotonic() just before the notification went out, to measure
        latency against.
        """
        key = _INPUTS[line]
        with self.interface.cond:
            self.interface.inputs[key] = level
        at = time.monotonic()
        self._notify()
        return at

    def input(self, line: InputLine) -> bool:
        with self.interface.cond:
            return self.interface.inputs[_INPUTS[line]]

    @property
    def rts(self) -> bool:
        with self.interface.cond:
            return self.interface.rts

    @property
    def dtr(self) -> bool:
        with self.interface.cond:
            return self.interface.dtr

    @property
    def history(self) -> list[tuple[float, str, bool]]:
        """Every (time.monotonic(), "rts" | "dtr", level) a client applied, oldest first."""
        with self.interface.cond:
            return list(self.interface.history)

    def levels(self, line: OutputLine) -> list[bool]:
        """The levels clients applied to one output line, oldest first."""
        return [level for _, name, level in self.history if name == line]

    def wait_for(self, line: OutputLine, level: bool, timeout: float = 5.0) -> float:
        """Waits until `line` is at `level`; returns when it got there (time.monotonic()).

        A line already at `level` returns the time a client last applied it (or now, if no
        client ever did). Raises TimeoutError, naming the history, if it does not get there.
        """
        deadline = time.monotonic() + timeout
        with self.interface.cond:
            while getattr(self.interface, line) != level:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"{line.upper()} never went {level}; history: {self.interface.history}"
                    )
                self.interface.cond.wait(left)
            for at, name, applied in reversed(self.interface.history):
                if name == line:
                    return at if applied == level else time.monotonic()
            return time.monotonic()

    @property
    def connected(self) -> bool:
        with self._clients_lock:
            return self._client is not None

    @property
    def received(self) -> bytes:
        """Data bytes the current client sent (a lines-only port expects none)."""
        with self._clients_lock:
            return bytes(self._client.received) if self._client is not None else b""

    # ------------------------------------------------------------------ threads
    def _notify(self) -> None:
        with self._clients_lock:
            client = self._client
        if client is not None:
            client.check_modem_lines()

    def _accept(self) -> None:
        listener = self._listener
        assert listener is not None
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([listener], [], [], 0.05)
                if not ready:
                    continue
                sock, _ = listener.accept()
            except (OSError, ValueError):  # closed by stop()
                return
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._clients_lock:
                if self._client is not None or self._stop.is_set():
                    sock.close()  # the port is in use
                    continue
                client = _Client(sock, self.interface, self._ended)
                self._client = client
                self.connections += 1
            client.thread.start()

    def _ended(self, client: _Client) -> None:
        with self._clients_lock:
            if self._client is client:
                self._client = None

    def _tick(self) -> None:
        while not self._stop.wait(self.notify_s):
            self._notify()
