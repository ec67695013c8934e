"""A real install, as a technician does it: the sdist and wheel a release ships, the wheel in a
clean venv without the development tools, and `scripts/install` into a staging root (DESTDIR),
twice, with the unit, sysusers, tmpfiles and udev files where systemd and udev look for them.

The venvs are filled by pip from the package registry this machine is configured for, as on a
gateway; PyAudio has no Linux wheel there and is built once (pip caches it).
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from email.parser import HeaderParser
from pathlib import Path

import pytest

from gateway.config import load_config
from gateway.hardware.cm108.gpio import ACCEPTED_USB_IDS
from tests.support.daemon_links import write_key
from tests.support.paths import ROOT

INSTALL = ROOT / "scripts" / "install"
SYSTEMD = ROOT / "systemd"
RULES = SYSTEMD / "70-crosspatch.rules"
# Filling a venv downloads or builds numpy, scipy, PyAudio...: generous, for a slow mirror.
PIP_TIMEOUT_S = 600
# Above the suite's 300 s: the staging fixture fills a venv and builds the wheel twice. A hang
# still fails, with every thread's traceback.
pytestmark = pytest.mark.timeout(2 * PIP_TIMEOUT_S + 300)
OPT = "opt/crosspatch"
DEV_TOOLS = ("pytest", "ruff", "mypy", "hypothesis", "selenium", "setuptools_scm", "build")


def run(
    command: list[str], *, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, check=False, env=env
    )


def source_copy(tmp: Path) -> Path:
    """The tree a release is built from: setuptools leaves build/ and *.egg-info beside it."""
    source = tmp / "source"
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(
            ".venv", ".git", "build", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis"
        ),
    )
    return source


# --- the sdist and the wheel --------------------------------------------------------------------


@dataclass(frozen=True)
class Release:
    wheel: Path
    sdist: Path


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Release:
    tmp = tmp_path_factory.mktemp("release")
    dist = tmp / "dist"
    # --no-isolation: the dev venv's setuptools and wheel, so the build needs no network.
    result = run(
        [
            sys.executable,
            "-m",
            "build",
            "--no-isolation",
            "--outdir",
            str(dist),
            str(source_copy(tmp)),
        ],
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    (wheel,) = dist.glob("crosspatch-*.whl")
    (sdist,) = dist.glob("crosspatch-*.tar.gz")
    return Release(wheel, sdist)


def test_the_wheel_carries_the_license(release: Release) -> None:
    with zipfile.ZipFile(release.wheel) as archive:
        names = set(archive.namelist())
        (metadata_name,) = (n for n in names if n.endswith(".dist-info/METADATA"))
        metadata = HeaderParser().parsestr(archive.read(metadata_name).decode())
        dist_info = metadata_name.rsplit("/", 1)[0]
        license_text = archive.read(f"{dist_info}/licenses/LICENSE").decode()
    assert metadata["License-Expression"] == "Apache-2.0"
    assert metadata.get_all("License-File") == ["LICENSE"]
    assert license_text == (ROOT / "LICENSE").read_text()
    assert "Apache License" in license_text and "Version 2.0, January 2004" in license_text
    assert "END OF TERMS AND CONDITIONS" in license_text  # the full text, not a notice


def test_the_sdist_carries_what_a_production_install_needs(release: Release) -> None:
    with tarfile.open(release.sdist) as archive:
        members = {
            member.name.split("/", 1)[1]: member
            for member in archive.getmembers()
            if "/" in member.name
        }
    for name in (
        "LICENSE",
        "README.md",
        "pyproject.toml",
        "scripts/install",
        "systemd/crosspatch.service",
        "systemd/crosspatch.sysusers",
        "systemd/crosspatch.tmpfiles",
        "systemd/70-crosspatch.rules",
        "config/skeleton.yaml",
        "config/example.yaml",
        "gateway/cli.py",
        "hardware/cm108/gpio.py",
        "codecs/g711.py",
    ):
        assert name in members, name
    assert members["scripts/install"].mode & stat.S_IXUSR


def test_the_wheel_in_a_clean_venv_checks_the_example_site(
    release: Release, tmp_path: Path
) -> None:
    """Installed as a user would, without the development extras: `check` runs on what the
    wheel declares, not on what the development venv happens to hold. (libopus0 is a Debian
    package that scripts/setup and scripts/install both install.)"""
    venv = tmp_path / "venv"
    result = run([sys.executable, "-m", "venv", str(venv)])
    assert result.returncode == 0, result.stderr
    python = venv / "bin" / "python"
    result = run(
        [str(python), "-m", "pip", "install", "-q", str(release.wheel)], timeout=PIP_TIMEOUT_S
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert not _dev_tools_in(venv)

    crosspatch = str(venv / "bin" / "crosspatch")
    # The example's SRTP key files, made where the test may write, as its comment says to.
    keys = tmp_path / "keys"
    keys.mkdir()
    for name in ("to-blaine", "what-comm"):
        write_key(keys / f"{name}.key")
    example = tmp_path / "example.yaml"
    example.write_text(
        (ROOT / "config" / "example.yaml").read_text().replace("/etc/crosspatch/keys/", f"{keys}/")
    )
    result = run([crosspatch, "check", str(ROOT / "config" / "skeleton.yaml")], timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(result.stdout.strip().splitlines()) == 1, result.stdout
    # The example's what-comm link speaks Opus: without the `opus` extra, one line says what to
    # install; with it (a run-time extra, as scripts/install installs it), the site checks.
    result = run([crosspatch, "check", str(example)], timeout=60)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "crosspatch check: link 'what-comm': opus: libopus is not installed "
        "(apt install libopus0; pip install opuslib)"
    ]
    result = run(
        [str(python), "-m", "pip", "install", "-q", f"{release.wheel}[opus]"],
        timeout=PIP_TIMEOUT_S,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    result = run([crosspatch, "check", str(example)], timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    (summary,) = result.stdout.strip().splitlines()
    assert summary.startswith(f"{example}: OK: peace-arch: "), summary
    assert not _dev_tools_in(venv)
    # A bad config is one line per error, no traceback.
    bad = tmp_path / "bad.yaml"
    bad.write_text("gateway: {id: x, frame_ms: 33}\nagencies: {}\n")
    result = run([crosspatch, "check", str(bad)], timeout=60)
    assert result.returncode == 1
    assert "frame_ms" in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def _dev_tools_in(venv: Path) -> list[str]:
    (site,) = venv.glob("lib/python3.*/site-packages")
    return [tool for tool in DEV_TOOLS if (site / tool).exists()]


# --- scripts/install into a staging root --------------------------------------------------------


Snapshot = dict[str, tuple[int, int, int, str]]


def snapshot(root: Path) -> Snapshot:
    """Every path under root with its mode, size, mtime and link target: what "changed" means."""
    found: Snapshot = {}
    for directory, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            path = Path(directory) / name
            info = path.lstat()
            target = str(path.readlink()) if path.is_symlink() else ""
            found[str(path.relative_to(root))] = (
                info.st_mode,
                info.st_size,
                info.st_mtime_ns,
                target,
            )
    return found


@dataclass(frozen=True)
class Staged:
    root: Path
    first: subprocess.CompletedProcess[str]
    second: subprocess.CompletedProcess[str]
    before_second: Snapshot
    after_second: Snapshot
    edited_config: str


EDIT = "# edited on site: scripts/install must keep this\n"


@pytest.fixture(scope="module")
def staged(tmp_path_factory: pytest.TempPathFactory) -> Staged:
    """scripts/install run twice into one staging root, with no wheel given: it builds the wheel
    from this source tree both times, as a technician re-running it in a checkout does."""
    root = tmp_path_factory.mktemp("staged") / "root"
    env = {**os.environ, "DESTDIR": str(root)}
    first = run([str(INSTALL)], env=env, timeout=PIP_TIMEOUT_S)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-3000:]
    config = root / "etc" / "crosspatch" / "crosspatch.yaml"
    edited = EDIT + config.read_text()
    config.write_text(edited)
    before = snapshot(root)
    second = run([str(INSTALL)], env=env, timeout=PIP_TIMEOUT_S)
    assert second.returncode == 0, second.stdout[-2000:] + second.stderr[-3000:]
    return Staged(root, first, second, before, snapshot(root), edited)


def test_install_puts_every_file_in_place_with_its_mode(staged: Staged) -> None:
    root = staged.root
    for source, installed in (
        (SYSTEMD / "crosspatch.service", "etc/systemd/system/crosspatch.service"),
        (SYSTEMD / "crosspatch.sysusers", "etc/sysusers.d/crosspatch.conf"),
        (SYSTEMD / "crosspatch.tmpfiles", "etc/tmpfiles.d/crosspatch.conf"),
        (RULES, "etc/udev/rules.d/70-crosspatch.rules"),
        (ROOT / "README.md", f"{OPT}/README.md"),  # the unit's Documentation=
        (ROOT / "LICENSE", f"{OPT}/LICENSE"),
    ):
        path = root / installed
        assert path.read_bytes() == source.read_bytes(), installed
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, installed
    config = root / "etc/crosspatch/crosspatch.yaml"
    # Root's, readable by the daemon's group only: it may name key files and users.
    assert stat.S_IMODE(config.stat().st_mode) == 0o640
    assert (root / "usr/local/bin/crosspatch").readlink() == Path(
        "/opt/crosspatch/venv/bin/crosspatch"
    )
    assert "libportaudio2" in staged.first.stderr  # the run-time Debian packages, listed


def test_the_staged_venv_runs_from_its_final_place_without_dev_tools(staged: Staged) -> None:
    venv = staged.root / "opt/crosspatch/venv"
    script = venv / "bin" / "crosspatch"
    assert script.read_text().splitlines()[0] == "#!/opt/crosspatch/venv/bin/python"
    for path in [*(venv / "bin").iterdir(), venv / "pyvenv.cfg"]:
        if path.is_file() and not path.is_symlink():
            assert str(staged.root) not in path.read_text(errors="replace"), path
    assert not _dev_tools_in(venv)
    # The staged script, run by the staged interpreter (its shebang names the final path), checks
    # the skeleton it installed: a fresh install is valid before anyone edits it.
    result = run(
        [
            str(venv / "bin" / "python"),
            str(script),
            "check",
            str(staged.root / "etc/crosspatch/crosspatch.yaml"),
        ],
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_second_install_changes_nothing_and_keeps_the_config(staged: Staged) -> None:
    assert staged.after_second == staged.before_second
    said = staged.second.stderr
    for word in ("installed", "linked", "created"):
        assert word not in said, said
    config = staged.root / "etc/crosspatch/crosspatch.yaml"
    assert config.read_text() == staged.edited_config


def test_systemd_analyze_verify_accepts_the_installed_unit(staged: Staged, tmp_path: Path) -> None:
    """The installed unit, its crosspatch pointed at the staged one (the live path is absent)."""
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing (Debian package systemd; run scripts/setup)"
    unit = tmp_path / "crosspatch.service"
    staged_crosspatch = staged.root / "opt/crosspatch/venv/bin/crosspatch"
    text = (staged.root / "etc/systemd/system/crosspatch.service").read_text()
    unit.write_text(text.replace("/usr/local/bin/crosspatch", str(staged_crosspatch)))
    result = run([analyze, "--man=no", "verify", str(unit)], timeout=60)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert [line for line in output.splitlines() if unit.name in line] == [], output


def test_a_gateway_without_network_installs_from_built_wheels_and_upgrades(
    tmp_path: Path,
) -> None:
    """--build-wheels on a development machine, --wheels on the gateway: no registry is asked
    (an unreachable one is configured), and a newer crosspatch wheel in the folder upgrades the
    venv in place while the config stays as it was."""
    wheels = tmp_path / "wheels"
    result = run([str(INSTALL), "--build-wheels", str(wheels)], timeout=PIP_TIMEOUT_S)
    assert result.returncode == 0, result.stderr[-3000:]
    names = {path.name.split("-")[0].lower() for path in wheels.glob("*.whl")}
    assert {"crosspatch", "numpy", "pyaudio", "opuslib"} <= names, names
    assert not names & set(DEV_TOOLS)

    root = tmp_path / "root"
    offline = {
        **os.environ,
        "DESTDIR": str(root),
        "PIP_INDEX_URL": "http://127.0.0.1:9/simple",
        "PIP_EXTRA_INDEX_URL": "http://127.0.0.1:9/simple",
        "PIP_FIND_LINKS": "",
    }
    result = run([str(INSTALL), "--wheels", str(wheels)], env=offline, timeout=PIP_TIMEOUT_S)
    assert result.returncode == 0, result.stderr[-3000:]
    (site,) = (root / OPT / "venv").glob("lib/python3.*/site-packages")
    assert [p.name for p in site.glob("crosspatch-*.dist-info")] == ["crosspatch-0.1.0.dist-info"]
    config = root / "etc/crosspatch/crosspatch.yaml"
    config.write_text(EDIT + config.read_text())
    edited = config.read_text()

    source = source_copy(tmp_path)
    pyproject = source / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('version = "0.1.0"', 'version = "0.1.1"', 1))
    built = run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(wheels),
            str(source),
        ],
        timeout=300,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    result = run([str(INSTALL), "--wheels", str(wheels)], env=offline, timeout=PIP_TIMEOUT_S)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "installing crosspatch-0.1.1-py3-none-any.whl" in result.stderr
    assert [p.name for p in site.glob("crosspatch-*.dist-info")] == ["crosspatch-0.1.1.dist-info"]
    assert config.read_text() == edited


def test_install_refuses_bad_arguments_in_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "DESTDIR": str(tmp_path / "root")}
    not_a_wheel = tmp_path / "crosspatch-0.1.0-py3-none-any.whl"
    not_a_wheel.write_text("not a zip\n")
    for arguments, code, message in (
        (["--frobnicate"], 2, "unknown option --frobnicate"),
        ([str(tmp_path / "missing.whl")], 1, "no such wheel"),
        ([str(not_a_wheel)], 1, "is not a wheel"),
        (["--wheels", str(tmp_path / "nowhere")], 1, "no such directory"),
    ):
        result = run([str(INSTALL), *arguments], env=env)
        assert result.returncode == code, (arguments, result.stderr)
        assert message in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) <= 2, result.stderr  # message and usage
    # Nothing was installed on the way to the refusal.
    assert not (tmp_path / "root" / "opt").exists()


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root")
def test_install_on_the_live_system_needs_root() -> None:
    env = {key: value for key, value in os.environ.items() if key != "DESTDIR"}
    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    # A copy nobody can read: the checkout may be under /root (as in a fresh Debian root).
    folder = Path(tempfile.mkdtemp(prefix="crosspatch-install-"))
    try:
        folder.chmod(0o755)
        script = folder / "install"
        shutil.copy(INSTALL, script)
        script.chmod(0o755)
        result = run([*nobody, str(script)], env=env)
    finally:
        shutil.rmtree(folder)
    assert result.returncode == 1
    assert result.stderr == "install: run it as root (or with DESTDIR=/staging/root)\n"


# --- the config skeleton -----------------------------------------------------------------------


def test_the_config_skeleton_is_valid_as_is_and_once_its_wiring_is_uncommented(
    tmp_path: Path,
) -> None:
    """A fresh install starts from it, and a technician starts wiring from its comments."""
    skeleton = ROOT / "config" / "skeleton.yaml"
    cfg = load_config(skeleton, for_run=True)
    assert cfg.gateway.state_dir == Path("/var/lib/crosspatch")  # the unit's StateDirectory
    assert cfg.gateway.control_socket == Path("/run/crosspatch/control.sock")
    assert not any(patch.enabled for patch in cfg.patches.values())

    lines = skeleton.read_text().splitlines()
    start = lines.index("radios:")
    wired = lines[:start]
    for line in lines[start:]:
        if line == "    simulated: {}":
            continue
        if line == "patches: {}":
            line = "patches:"
        elif line.startswith(("    # ", "#  ")) and ":" in line:
            line = line.replace("# ", "", 1) if line.startswith("    ") else line[1:]
        wired.append(line)
    path = tmp_path / "crosspatch.yaml"
    path.write_text("\n".join(wired) + "\n")
    cfg = load_config(path, for_run=True)
    assert cfg.radios["a-1"].simulated is None
    assert cfg.radios["a-1"].control is not None
    assert cfg.radios["a-1"].control.port == "/dev/crosspatch/serial-pci-0000:00:14.0-usb-0:1.2:1.0"
    assert list(cfg.patches) == ["a-b"]


# --- the udev rule ------------------------------------------------------------------------------

# KEY, KEY{attribute}, operator, "value": udev(7)'s grammar for one key of a rule.
TOKEN = re.compile(r'\s*([A-Z]+)(\{[^}]+\})?\s*(==|!=|\+=|-=|:=|=)\s*"([^"]*)"\s*(,|$)')
MATCH_KEYS = {"ACTION", "SUBSYSTEM", "SUBSYSTEMS", "KERNEL", "ATTRS", "ENV"}
ASSIGN_KEYS = {"GROUP", "MODE", "SYMLINK", "IMPORT", "GOTO", "LABEL", "ENV"}


def rules() -> Iterator[list[tuple[str, str, str, str]]]:
    """Each rule as (key, attribute, operator, value) tuples; fails on anything udev would not
    parse the same way."""
    for number, raw in enumerate(RULES.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        assert not line.endswith("\\"), f"line {number}: no continuation lines"
        tokens: list[tuple[str, str, str, str]] = []
        position = 0
        while position < len(line):
            found = TOKEN.match(line, position)
            assert found, f"line {number}: cannot parse {line[position:]!r}"
            key, attribute, operator, value, _ = found.groups()
            tokens.append((key, (attribute or "")[1:-1], operator, value))
            position = found.end()
        for key, _, operator, _ in tokens:
            allowed = MATCH_KEYS if operator in ("==", "!=") else ASSIGN_KEYS
            assert key in allowed, f"line {number}: {key}{operator} is not a valid use"
        yield tokens


def test_udev_rule_parses_and_every_goto_has_its_label() -> None:
    parsed = list(rules())
    labels = {value for rule in parsed for key, _, _, value in rule if key == "LABEL"}
    gotos = {value for rule in parsed for key, _, _, value in rule if key == "GOTO"}
    assert gotos <= labels, gotos - labels
    # Debian 13's udevadm (systemd >= 254) checks the file itself; Debian 12's has no `verify`.
    udevadm = shutil.which("udevadm")
    if udevadm and run([udevadm, "verify", "--help"]).returncode == 0:
        result = run([udevadm, "verify", "--resolve-names=never", str(RULES)])
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("unshare"), reason="a private mount namespace needs root"
)
def test_udev_loads_the_rule_without_complaint(tmp_path: Path) -> None:
    """udev's own parser on the file, with no `udevadm verify` (systemd < 254): `udevadm test`
    reads every rules file, and in a private mount namespace /etc/udev/rules.d holds only this
    one, so the live system's rules stay as they are. It names each key it cannot use."""
    udevadm = shutil.which("udevadm")
    assert udevadm, "udevadm is missing (Debian package udev)"
    if run([udevadm, "verify", "--help"]).returncode == 0:
        # systemd >= 254 (Debian 13) checks the file itself, and a chroot may not allow the
        # private mount namespace below.
        result = run([udevadm, "verify", "--resolve-names=never", str(RULES)])
        assert result.returncode == 0, result.stdout + result.stderr
        return
    rules_dir = tmp_path / "rules.d"
    rules_dir.mkdir()
    shutil.copy(RULES, rules_dir / RULES.name)
    script = (
        f"mount --bind {rules_dir} /etc/udev/rules.d && "
        f"{udevadm} test --action=add /sys/class/mem/null"
    )
    result = run(["unshare", "-m", "--propagation", "private", "sh", "-c", script])
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    about = [line for line in output.splitlines() if RULES.name in line]
    assert about[0] == f"Reading rules file: /etc/udev/rules.d/{RULES.name}", output
    # The group exists once systemd-sysusers made it; on a test machine it may not.
    unknown_group = "Unknown group 'crosspatch', ignoring"
    assert [line for line in about[1:] if not line.endswith(unknown_group)] == [], about


def test_udev_rule_covers_every_cm108_the_driver_accepts() -> None:
    hidraw: dict[int, set[int]] = {}
    for rule in rules():
        keys = {(key, attribute): value for key, attribute, _, value in rule}
        if keys.get(("GOTO", "")) == "crosspatch_hidraw":
            vendor = int(keys[("ATTRS", "idVendor")], 16)
            products = {int(p, 16) for p in keys[("ATTRS", "idProduct")].split("|")}
            hidraw.setdefault(vendor, set()).update(products)
    assert hidraw == {vendor: set(products) for vendor, products in ACCEPTED_USB_IDS.items()}


def test_udev_rule_gives_the_interfaces_to_crosspatch_with_names_by_usb_socket() -> None:
    text = RULES.read_text()
    parsed = list(rules())
    serial_vendors = next(
        value
        for rule in parsed
        for key, attribute, _, value in rule
        if key == "ATTRS" and attribute == "idVendor" and "0403" in value
    )
    # FTDI, CP210x, CH340, PL2303.
    assert set(serial_vendors.split("|")) == {"0403", "10c4", "1a86", "067b"}
    assert 'KERNEL!="ttyUSB[0-9]*|ttyACM[0-9]*"' in text
    grants = [
        {key: value for key, _, _, value in rule}
        for rule in parsed
        if any(key == "GROUP" for key, *_ in rule)
    ]
    assert grants == [{"GROUP": "crosspatch", "MODE": "0660"}] * 2
    symlinks = [value for rule in parsed for key, _, _, value in rule if key == "SYMLINK"]
    assert symlinks == [
        "crosspatch/serial-$env{ID_PATH}",
        "crosspatch/serial-$env{ID_PATH}-port$env{.CROSSPATCH_PORT}",
        "crosspatch/hidraw-$env{ID_PATH}",
    ]
