"""A real rigctld (Hamlib's dummy rig) on a free loopback port, started once it answers."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time

import pytest

RIGCTLD = shutil.which("rigctld")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_rigctld(*extra: str) -> tuple[subprocess.Popen[bytes], int]:
    assert RIGCTLD is not None
    port = free_port()
    proc = subprocess.Popen(
        [RIGCTLD, "-m", "1", "-T", "127.0.0.1", "-t", str(port), *extra],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        # Ready means answering a command, not just listening.
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as probe:
                probe.sendall(b"+\\get_freq\n")
                reply = b""
                while b"RPRT" not in reply and (chunk := probe.recv(1024)):
                    reply += chunk
            if b"RPRT 0" in reply:
                return proc, port
        except OSError:
            pass
        time.sleep(0.05)
    proc.kill()
    pytest.fail("rigctld did not start listening")
