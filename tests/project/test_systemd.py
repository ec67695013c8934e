"""The systemd files: systemd's own tools accept them, and the safety settings a technician relies
on are there (unkey-all after every stop, notify + watchdog, restart, device groups, hardening).

The tools come from Debian's `systemd` package, which `scripts/setup` installs; a missing tool is a
failure, so these checks never vanish quietly.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.tools.unkey_all import DEFAULT_TIMEOUT_S
from tests.support.paths import ROOT

SYSTEMD = ROOT / "systemd"
UNIT = SYSTEMD / "crosspatch.service"
CROSSPATCH = "/usr/local/bin/crosspatch"
CONFIG = "/etc/crosspatch/crosspatch.yaml"


def parse_unit(path: Path) -> dict[str, list[tuple[str, str]]]:
    """Sections of a unit file as (key, value) lists: keys like DeviceAllow= repeat."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        assert current is not None, f"{path.name}: {line!r} is outside any section"
        assert not line.endswith("\\"), "continuation lines make this parser wrong; avoid them"
        key, equals, value = line.partition("=")
        assert equals, f"{path.name}: {line!r} is not key=value"
        current.append((key.strip(), value.strip()))
    return sections


def values(section: list[tuple[str, str]], key: str) -> list[str]:
    return [value for name, value in section if name == key]


def value(section: list[tuple[str, str]], key: str) -> str:
    found = values(section, key)
    assert len(found) == 1, f"{key}= appears {len(found)} times"
    return found[0]


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed (Debian package: systemd; run scripts/setup)")
    return path


# --- systemd's own checks -----------------------------------------------------------------------


def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    """`verify` loads the unit as systemd would, and checks that every Exec*= program exists.

    It needs no running systemd (it builds its own manager in test mode, so it works in
    containers), but it does need the programs: the copy points ExecStart/ExecStopPost at this
    environment's crosspatch. `--man=no` skips checking Documentation= man pages. Unknown keys and
    unparsable values are only warnings (exit 0), so any output about the unit fails too.
    """
    analyze = tool("systemd-analyze")
    venv_crosspatch = Path(sys.executable).parent / "crosspatch"
    stand_in = str(venv_crosspatch) if os.access(venv_crosspatch, os.X_OK) else "/bin/true"
    copy = tmp_path / UNIT.name
    text = UNIT.read_text()
    assert text.count(CROSSPATCH) == 2
    copy.write_text(text.replace(CROSSPATCH, stand_in))
    result = subprocess.run(
        [analyze, "--man=no", "verify", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    about_unit = [line for line in output.splitlines() if UNIT.name in line]
    assert about_unit == [], output


def test_systemd_analyze_security_rates_the_unit_ok(tmp_path: Path) -> None:
    analyze = tool("systemd-analyze")
    copy = tmp_path / UNIT.name
    copy.write_text(UNIT.read_text().replace(CROSSPATCH, "/bin/true"))
    # Exposure 0.0 (locked down) .. 10.0 (nothing); 3.0 would still rate "OK". Today: 2.2.
    result = subprocess.run(
        [analyze, "security", "--offline=yes", "--threshold=30", "--no-pager", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-600:] + result.stderr


def test_systemd_sysusers_creates_the_user_in_its_groups(tmp_path: Path) -> None:
    sysusers = tool("systemd-sysusers")
    (tmp_path / "etc").mkdir()
    result = subprocess.run(
        [sysusers, f"--root={tmp_path}", str(SYSTEMD / "crosspatch.sysusers")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    users = {line.split(":")[0]: line.split(":") for line in _lines(tmp_path / "etc" / "passwd")}
    groups = {line.split(":")[0]: line.split(":") for line in _lines(tmp_path / "etc" / "group")}
    assert users["crosspatch"][5] == "/var/lib/crosspatch"
    assert users["crosspatch"][6].endswith("nologin")
    for group in ("dialout", "audio"):
        assert "crosspatch" in groups[group][3].split(","), groups[group]


@pytest.mark.skipif(os.geteuid() != 0, reason="systemd-tmpfiles chowns: needs root")
def test_systemd_tmpfiles_creates_the_directories(tmp_path: Path) -> None:
    sysusers, tmpfiles = tool("systemd-sysusers"), tool("systemd-tmpfiles")
    (tmp_path / "etc").mkdir()
    for command in (
        [sysusers, f"--root={tmp_path}", str(SYSTEMD / "crosspatch.sysusers")],
        [tmpfiles, "--create", f"--root={tmp_path}", str(SYSTEMD / "crosspatch.tmpfiles")],
    ):
        result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        assert result.returncode == 0, result.stderr
    uid = int(
        next(
            line for line in _lines(tmp_path / "etc/passwd") if line.startswith("crosspatch:")
        ).split(":")[2]
    )
    for path in ("var/lib/crosspatch", "run/crosspatch"):
        info = (tmp_path / path).stat()
        assert (info.st_mode & 0o7777, info.st_uid, info.st_gid) == (0o750, uid, uid)


def _lines(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line]


# --- what a technician relies on ----------------------------------------------------------------


def test_every_stop_releases_the_transmitters() -> None:
    service = parse_unit(UNIT)["Service"]
    start = shlex.split(value(service, "ExecStart"))
    stop_post = shlex.split(value(service, "ExecStopPost"))
    assert start == [CROSSPATCH, "run", CONFIG]
    # The same program and, above all, the same config: unkey-all releases what `run` keyed.
    assert stop_post == [CROSSPATCH, "unkey-all", CONFIG]
    # unkey-all gives up on a hung device after DEFAULT_TIMEOUT_S; systemd must wait longer.
    assert float(value(service, "TimeoutStopSec")) >= DEFAULT_TIMEOUT_S + 2


def test_notify_watchdog_and_restart() -> None:
    service = parse_unit(UNIT)["Service"]
    assert value(service, "Type") == "notify"
    assert value(service, "NotifyAccess") == "main"
    assert 0 < float(value(service, "WatchdogSec")) <= 30
    assert value(service, "Restart") == "on-failure"
    assert float(value(service, "RestartSec")) > 0
    assert value(service, "ExecReload") == "/bin/kill -HUP $MAINPID"


def test_user_groups_and_directories() -> None:
    service = parse_unit(UNIT)["Service"]
    assert value(service, "User") == "crosspatch"
    assert value(service, "Group") == "crosspatch"
    assert {"dialout", "audio"} <= set(value(service, "SupplementaryGroups").split())
    assert value(service, "StateDirectory") == "crosspatch"
    assert value(service, "StateDirectoryMode") == "0750"
    assert value(service, "RuntimeDirectory") == "crosspatch"
    assert value(service, "RuntimeDirectoryMode") == "0750"
    assert value(service, "ConfigurationDirectory") == "crosspatch"
    assert value(service, "UMask") == "0027"
    assert "multi-user.target" in value(parse_unit(UNIT)["Install"], "WantedBy").split()


def test_hardening() -> None:
    service = parse_unit(UNIT)["Service"]
    expected = {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "DevicePolicy": "closed",
        "ProtectKernelTunables": "yes",
        "ProtectKernelModules": "yes",
        "ProtectControlGroups": "yes",
        "ProtectClock": "yes",
        "ProtectHostname": "yes",
        "LockPersonality": "yes",
        "RestrictNamespaces": "yes",
        "RestrictSUIDSGID": "yes",
        "SystemCallArchitectures": "native",
        "SystemCallFilter": "@system-service",
        # The one capability: the engine thread's priority above the control plane.
        "CapabilityBoundingSet": "CAP_SYS_NICE",
        "AmbientCapabilities": "CAP_SYS_NICE",
    }
    assert {key: value(service, key) for key in expected} == expected
    families = set(value(service, "RestrictAddressFamilies").split())
    assert families == {"AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK"}
    allowed = set(values(service, "DeviceAllow"))
    assert {"char-ttyUSB rw", "char-ttyACM rw", "char-alsa rw", "char-hidraw rw"} <= allowed


def test_sysusers_file() -> None:
    entries = [shlex.split(line) for line in _config_lines(SYSTEMD / "crosspatch.sysusers")]
    assert ["u", "crosspatch", "-", "crosspatch radio gateway", "/var/lib/crosspatch"] in entries
    assert ["m", "crosspatch", "dialout"] in entries
    assert ["m", "crosspatch", "audio"] in entries


def test_tmpfiles_file() -> None:
    entries = [line.split() for line in _config_lines(SYSTEMD / "crosspatch.tmpfiles")]
    assert entries == [
        ["d", "/var/lib/crosspatch", "0750", "crosspatch", "crosspatch", "-"],
        ["d", "/run/crosspatch", "0750", "crosspatch", "crosspatch", "-"],
    ]


def _config_lines(path: Path) -> list[str]:
    return [
        line
        for line in (raw.strip() for raw in path.read_text().splitlines())
        if line and not line.startswith("#")
    ]
