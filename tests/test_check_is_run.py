"""`crosspatch check` is exactly as strict as `crosspatch run`.

Sites are generated at random (frame sizes, talkgroups with and without frequencies, simulated
radios, RTP and USRP links sharing or not sharing ports, codecs, patches enabled at start,
control socket paths of every length). Each is checked as `check` checks it, then started as a
real `crosspatch run` subprocess: a site `check` accepts must come up (READY=1) and stop cleanly;
a site it refuses must be refused by `run` too, with the same first line.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.config import ConfigError, load_config
from gateway.daemon import require_supported_ports
from gateway.simulate import SimulationError

CROSSPATCH = [sys.executable, "-m", "gateway.cli"]
PORT_SLOTS = 3  # links draw their local port from these, so that some of them clash

_FREQUENCIES = st.sampled_from([142.47, 163.1, 155.55, 450.0, 600.0, 1e-3, None])


@st.composite
def _talkgroup(draw: st.DrawFn) -> dict[str, Any]:
    talkgroup: dict[str, Any] = {}
    rx = draw(_FREQUENCIES)
    if rx is not None:
        talkgroup["rx_mhz"] = rx
        if draw(st.booleans()):
            talkgroup["tx_mhz"] = draw(_FREQUENCIES.filter(lambda f: f is not None))
    if draw(st.booleans()):
        talkgroup["id"] = draw(st.integers(1, 2**33))
    return talkgroup


@st.composite
def sites(draw: st.DrawFn) -> dict[str, Any]:
    """A site as data; `{state_dir}` and `{port N}` are filled in when it is written."""
    agencies: dict[str, Any] = {}
    refs: list[str] = []
    for a in range(draw(st.integers(1, 2))):
        talkgroups = {f"t{t}": draw(_talkgroup()) for t in range(draw(st.integers(1, 2)))}
        agencies[f"ag{a}"] = {"name": f"Agency {a}", "country": "CA" if a else "US"}
        agencies[f"ag{a}"]["talkgroups"] = talkgroups
        refs += [f"ag{a}/{name}" for name in talkgroups]
    any_ref = st.sampled_from([*refs, "ag9/none"])
    radios = {
        f"r{i}": {"talkgroup": draw(any_ref), "simulated": {}}
        for i in range(draw(st.integers(0, 3)))
    }
    links: dict[str, Any] = {}
    for i in range(draw(st.integers(0, 2))):
        protocol = draw(st.sampled_from(["rtp", "usrp"]))
        link: dict[str, Any] = {
            "protocol": protocol,
            "talkgroup": draw(any_ref),
            "local": f"127.0.0.1:{{port {draw(st.integers(0, PORT_SLOTS - 1))}}}",
            "remote": "127.0.0.1:9",
        }
        if protocol == "rtp":
            link["insecure"] = True
            link["codec"] = draw(st.sampled_from(["pcmu", "pcma", "dvi4", "opus"]))
        if draw(st.integers(0, 3)) == 0:
            link["simulated"] = {}
        links[f"l{i}"] = link
    patches = {
        f"p{i}": {
            "members": draw(st.lists(any_ref, min_size=1, max_size=3, unique=True)),
            "enabled": draw(st.booleans()),
        }
        for i in range(draw(st.integers(0, 2)))
    }
    gateway: dict[str, Any] = {
        "id": "gen",
        "frame_ms": draw(st.sampled_from([10, 20, 40])),
        "state_dir": "{state_dir}" + "/x" * draw(st.sampled_from([0, 0, 60])),
    }
    return {
        "gateway": gateway,
        "agencies": agencies,
        "radios": radios,
        "links": links,
        "patches": patches,
    }


def _free_udp_ports(count: int) -> list[int]:
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _write(site: dict[str, Any], directory: Path) -> Path:
    text = yaml.safe_dump(site, sort_keys=False).replace("{state_dir}", str(directory / "state"))
    for slot, port in enumerate(_free_udp_ports(PORT_SLOTS)):
        text = text.replace(f"{{port {slot}}}", str(port))
    path = directory / "site.yaml"
    path.write_text(text)
    return path


def _check(path: Path) -> str | None:
    """What `crosspatch check` does: None if it accepts the file, else its first error line."""
    try:
        require_supported_ports(load_config(path, for_run=True))
    except ConfigError as error:
        return str(error.issues[0])
    except SimulationError as error:
        return str(error)
    return None


def _run_until_ready(path: Path, directory: Path) -> tuple[int, str]:
    """Starts `crosspatch run`; once it says READY=1 (or exits), stops it. (exit code, log)"""
    notify_path = directory / "notify.sock"
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(notify_path))
    notify.settimeout(0.2)
    env = {**os.environ, "NOTIFY_SOCKET": str(notify_path)}
    with (
        notify,
        subprocess.Popen(
            [*CROSSPATCH, "run", str(path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        ) as proc,
    ):
        deadline = time.monotonic() + 60
        ready = False
        while not ready and proc.poll() is None and time.monotonic() < deadline:
            try:
                ready = "READY=1" in notify.recv(4096).decode().splitlines()
            except TimeoutError:
                continue
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            output, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            output, _ = proc.communicate()
            return -1, output
        return (proc.returncode if ready or proc.returncode else -2), output


# Each example starts a daemon (a second or two): a fiftieth of the profile's count, 12 at least.
@settings(max_examples=max(12, settings().max_examples // 50))
@given(sites())
def test_a_site_check_accepts_is_one_run_starts_and_one_it_refuses_run_refuses(
    site: dict[str, Any],
) -> None:
    with tempfile.TemporaryDirectory(prefix="xp-") as name:
        directory = Path(name)
        path = _write(site, directory)
        refusal = _check(path)
        code, output = _run_until_ready(path, directory)
        assert "Traceback" not in output, output
        if refusal is None:
            assert code == 0, f"check accepted it, run said (exit {code}):\n{output}"
        else:
            assert code == 1, f"check refused it ({refusal}), run said (exit {code}):\n{output}"
            assert refusal in output, output
