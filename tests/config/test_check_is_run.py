"""`crosspatch check` is exactly as strict as `crosspatch run`.

Sites are generated at random (simulated radios, RTP and USRP links with every codec, patches
enabled at start), half of them good and the others with one or two faults drawn from `FAULTS`.
Each is checked as `check` checks it, then started as a
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
from gateway.core.errors import UnsupportedHardwareError
from gateway.run.daemon import require_supported_ports

CROSSPATCH = [sys.executable, "-m", "gateway.cli"]
PORT_SLOTS = 4  # a site has at most this many links

# What can be wrong with a site, each drawn now and then; most sites have none of it, so that
# both "accepted and started" and "refused by both" are met often.
FAULTS = (
    "undefined_talkgroup",  # a radio, link or patch names a talkgroup nobody defined
    "out_of_band",  # a radio would receive outside the land-mobile bands
    "no_frequency",  # a radio serves a talkgroup without frequencies
    "unserved",  # a talkgroup with no port
    "port_clash",  # two links on one local port
    "frame_size",  # 10 or 40 ms frames with a network link
    "long_socket",  # a control socket path too long to bind
    "enabled_clash",  # two patches enabled at start share a port
)


@st.composite
def sites(draw: st.DrawFn) -> dict[str, Any]:
    """A site as data; `{state_dir}` and `{port N}` are filled in when it is written."""
    faults = draw(st.sets(st.sampled_from(FAULTS), max_size=2)) if draw(st.booleans()) else set()
    agencies: dict[str, Any] = {}
    refs: list[str] = []
    for a in range(draw(st.integers(1, 2))):
        talkgroups: dict[str, Any] = {}
        for t in range(draw(st.integers(1, 2))):
            talkgroups[f"t{t}"] = {"rx_mhz": draw(st.sampled_from([142.47, 163.1, 155.55, 453.1]))}
            if draw(st.booleans()):
                talkgroups[f"t{t}"]["id"] = draw(st.integers(1, 2**32 - 1))
        agencies[f"ag{a}"] = {"name": f"Agency {a}", "country": "CA" if a else "US"}
        agencies[f"ag{a}"]["talkgroups"] = talkgroups
        refs += [f"ag{a}/{name}" for name in talkgroups]
    radios: dict[str, Any] = {}
    links: dict[str, Any] = {}
    for i, ref in enumerate(refs):  # every talkgroup served, by a radio or by a link
        if i == 0 and "unserved" in faults:
            continue
        if draw(st.integers(0, 2)):
            radios[f"r{i}"] = {"talkgroup": ref, "simulated": {}}
            continue
        protocol = draw(st.sampled_from(["rtp", "usrp"]))
        slot = len(links) % 2 if "port_clash" in faults else len(links)
        link: dict[str, Any] = {
            "protocol": protocol,
            "talkgroup": ref,
            "local": f"127.0.0.1:{{port {slot}}}",
            "remote": "127.0.0.1:9",
        }
        if protocol == "rtp":
            link["insecure"] = True
            link["codec"] = draw(st.sampled_from(["pcmu", "pcma", "dvi4", "opus"]))
        if draw(st.integers(0, 3)) == 0:
            link["simulated"] = {}
        links[f"l{i}"] = link
    talkgroup_0 = agencies["ag0"]["talkgroups"]["t0"]
    if "out_of_band" in faults:
        talkgroup_0["rx_mhz"] = draw(st.sampled_from([0.001, 600.0, 1e4]))
    if "no_frequency" in faults:
        del talkgroup_0["rx_mhz"]
    if "undefined_talkgroup" in faults:
        radios["stray"] = {"talkgroup": "ag9/none", "simulated": {}}
    patches = {
        f"p{i}": {
            "members": draw(st.lists(st.sampled_from(refs), min_size=1, max_size=3, unique=True)),
            "enabled": draw(st.booleans()),
        }
        for i in range(draw(st.integers(0, 2)))
    }
    if "enabled_clash" in faults:
        patches["c1"] = {"members": [refs[-1]], "enabled": True}
        patches["c2"] = {"members": [refs[-1]], "enabled": True}
    gateway: dict[str, Any] = {
        "id": "gen",
        "frame_ms": draw(st.sampled_from([10, 40])) if "frame_size" in faults else 20,
        "state_dir": "{state_dir}" + ("/x" * 60 if "long_socket" in faults else ""),
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
    except UnsupportedHardwareError as error:
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
