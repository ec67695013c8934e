"""`crosspatch run` as a real subprocess for the daemon tests: `Daemon` collects its log lines and
the events in them; `Site` writes a site's config (the two-patch `SITE` unless a test writes its
own), starts daemons with a notify socket, waits for READY=1 and talks to the control socket."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

CROSSPATCH = [sys.executable, "-m", "gateway.cli"]


# Two independent patches. rcmp-1 and usbp-1 talk long bursts so a call is nearly always on the
# air in border-tac; county's members change in the reload test.
SITE = """\
gateway: {{id: test-gw, frame_ms: 20, state_dir: {state_dir}}}
agencies:
  rcmp:
    name: Royal Canadian Mounted Police
    country: CA
    talkgroups:
      tac2: {{rx_mhz: 142.470, ctcss_hz: 131.8}}
  usbp:
    name: U.S. Border Patrol
    country: US
    talkgroups:
      ch4: {{rx_mhz: 163.100, ctcss_hz: 100.0}}
  wcso:
    name: Whatcom County Sheriff
    country: US
    talkgroups:
      main: {{rx_mhz: 155.550}}
      tac: {{rx_mhz: 155.610}}
radios:
  rcmp-1:
    talkgroup: rcmp/tac2
    simulated: {{traffic: {{every_s: 9, talk_s: 8, seed: 1}}}}
    timing: {{tx_delay_ms: 100, hang_ms: 300}}
  usbp-1:
    talkgroup: usbp/ch4
    simulated: {{}}
  wcso-1:
    talkgroup: wcso/main
    simulated: {{traffic: {{every_s: 3, talk_s: 1, seed: 2}}}}
  wcso-2:
    talkgroup: wcso/tac
    simulated: {{}}
patches:
  border-tac:
    members: [rcmp/tac2, usbp/ch4]
    enabled: {border_enabled}
  county:
    members: [wcso/main, {county_second}]
access:
  dispatchers: {{alice: {{agency: rcmp}}}}
  technicians: [tech1]
"""


class Daemon:
    """A `crosspatch run` subprocess whose log lines (and the events in them) are collected."""

    def __init__(self, config: Path, env: dict[str, str]) -> None:
        self.config = config
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [*CROSSPATCH, "run", str(config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        found = []
        for line in list(self.lines):
            if " events: " in line:
                event = json.loads(line.split(" events: ", 1)[1])
                if kind is None or event["type"] == kind:
                    found.append(event)
        return found

    def wait_for(self, what: Callable[[], Any], timeout: float = 30.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = what()
            if value:
                return value
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited {self.proc.returncode}:\n" + self.log())
            time.sleep(0.05)
        raise AssertionError("timed out; daemon log:\n" + self.log())

    def log(self) -> str:
        return "\n".join(self.lines)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout)
        self._reader.join(timeout=5)
        return code


class Site:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.state_dir = tmp_path / "state"
        self.config = tmp_path / "crosspatch.yaml"
        self.socket = self.state_dir / "control.sock"
        self.write()
        self.notify_path = str(tmp_path / "notify.sock")
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(self.notify_path)
        self.notify.settimeout(0.2)
        self.daemons: list[Daemon] = []

    def write(self, border_enabled: bool = True, county_second: str = "wcso/tac") -> None:
        self.config.write_text(
            SITE.format(
                state_dir=self.state_dir,
                border_enabled=str(border_enabled).lower(),
                county_second=county_second,
            )
        )

    def start(self) -> Daemon:
        env = {**os.environ, "NOTIFY_SOCKET": self.notify_path}
        env.pop("JOURNAL_STREAM", None)
        daemon = Daemon(self.config, env)
        self.daemons.append(daemon)
        return daemon

    def wait_ready(self, daemon: Daemon, timeout: float = 60.0) -> list[str]:
        """The sd_notify messages up to READY=1 (a start-up on a busy machine is slow)."""
        messages: list[str] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                messages.append(self.notify.recv(4096).decode())
            except TimeoutError:
                if daemon.proc.poll() is not None:
                    raise AssertionError("daemon exited:\n" + daemon.log()) from None
                continue
            if any(line == "READY=1" for line in messages[-1].splitlines()):
                return messages
        raise AssertionError(f"no READY=1 (got {messages}):\n" + daemon.log())

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*CROSSPATCH, *args, "--socket", str(self.socket)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def close(self) -> None:
        """Kills any daemon still running (a failed test) and closes the notify socket."""
        for daemon in self.daemons:
            if daemon.proc.poll() is None:
                daemon.proc.kill()
                daemon.proc.wait(5)
        self.notify.close()

    def status(self) -> dict[str, Any]:
        result = self.cli("status", "--json")
        assert result.returncode == 0, result.stderr
        status: dict[str, Any] = json.loads(result.stdout)
        return status


def first_alarm(
    daemon: Daemon, kind: str, port: str | None = None, timeout: float = 15.0
) -> dict[str, Any]:
    """Waits for the first `alarm` of `kind` (on `port`, if given) in the daemon's log."""
    found = daemon.wait_for(
        lambda: [
            a
            for a in daemon.events("alarm")
            if a["kind"] == kind and (port is None or a["port"] == port)
        ],
        timeout=timeout,
    )
    alarm: dict[str, Any] = found[0]
    return alarm
