"""The config loader: the shipped configs load, defaults are right, and every problem is reported
at its line and key path with a message that says what to do."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from gateway.config import (
    Config,
    ConfigError,
    ConfigIssue,
    config_json_schema,
    config_summary,
    load_config,
    parse_config_text,
)
from gateway.config.models import CAT_DRIVER_NAMES, CTCSS_TONES_HZ, DCS_CODES
from tests.support import paths
from tests.support.paths import ROOT

DATA = paths.DATA / "configs"

MINIMAL = """\
gateway: {id: test}
agencies:
  ca:
    name: Canadian agency
    country: CA
    talkgroups:
      tac: {rx_mhz: 142.47, ctcss_hz: 131.8}
  us:
    name: US agency
    country: US
    talkgroups:
      ch4: {rx_mhz: 163.1, tx_mhz: 163.1}
radios:
  ca-1: {talkgroup: ca/tac, simulated: {}}
  us-1: {talkgroup: us/ch4, simulated: {}}
patches:
  cross: {members: [ca/tac, us/ch4]}
"""

# Two hardware radios on one stereo card, for device-sharing cases.
HARDWARE = """\
gateway: {id: test}
agencies:
  ca:
    name: Canadian agency
    country: CA
    talkgroups:
      tac: {rx_mhz: 142.47}
      ops: {rx_mhz: 142.29}
radios:
  r1:
    talkgroup: ca/tac
    audio: {input: card, output: card, channel: left}
    control: {driver: kenwood, port: /dev/ttyUSB0}
  r2:
    talkgroup: ca/ops
    audio: {input: card, output: card, channel: right}
    control: {driver: icom, port: /dev/ttyUSB1, civ_address: 0x94}
"""


# Pool radios, tuned on demand inside their bands; config order is not name order.
POOLS = """\
gateway: {id: test}
agencies:
  ca:
    name: Canadian agency
    country: CA
    talkgroups:
      tac: {rx_mhz: 142.47}
      uhf: {rx_mhz: 453.1, tx_mhz: 458.1}
      split: {rx_mhz: 150.0, tx_mhz: 453.0}
  us:
    name: US agency
    country: US
    talkgroups:
      ch4: {rx_mhz: 163.1}
      net: {id: 7}
radios:
  ca-1: {talkgroup: ca/tac, simulated: {}}
  zz-vhf:
    pool: spares
    simulated: {}
    bands_mhz: [[136, 174]]
  aa-uhf:
    pool: spares
    simulated: {}
    bands_mhz: [[400, 470]]
  mm-dual:
    pool: spares
    simulated: {}
    bands_mhz: [[136, 174], [400, 470]]
links:
  net: {protocol: usrp, local: 127.0.0.1:34001, remote: 127.0.0.1:32001, talkgroup: us/net}
patches:
  cross: {members: [ca/tac, us/ch4], enabled: true}
  second: {members: [ca/uhf, us/ch4], enabled: true}
"""


def issues_of(text: str) -> list[ConfigIssue]:
    with pytest.raises(ConfigError) as caught:
        parse_config_text(text, filename="site.yaml")
    return caught.value.issues


def only_issue(text: str) -> ConfigIssue:
    issues = issues_of(text)
    assert len(issues) == 1, "\n".join(map(str, issues))
    return issues[0]


def line_of(text: str, needle: str, occurrence: int = 1) -> int:
    """1-based line of the `occurrence`-th line containing `needle`."""
    lines = [number for number, line in enumerate(text.splitlines(), 1) if needle in line]
    return lines[occurrence - 1]


def edit(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, old
    return text.replace(old, new)


# --- the shipped configs ---------------------------------------------------------------------


def test_example_config_loads() -> None:
    cfg = load_config(ROOT / "config" / "example.yaml")
    assert cfg.gateway.id == "peace-arch"
    assert config_summary(cfg) == (
        "peace-arch: 6 agencies, 13 talkgroups, 11 radios, 2 links, 4 patches (1 enabled)"
    )
    hardware = [name for name, radio in cfg.radios.items() if not radio.is_simulated]
    assert hardware == ["rcmp-1", "wcso-1"]
    kenwood = cfg.radios["rcmp-1"]
    assert kenwood.ptt is not None and kenwood.ptt.method == "cat"
    assert kenwood.squelch is not None and kenwood.squelch.port == "/dev/ttyUSB0"
    icom = cfg.radios["wcso-1"]
    assert icom.control is not None and icom.control.civ_address == 0x94
    assert cfg.talkgroup("interop/utac41").tx_mhz == 458.4625
    assert cfg.patches["border-tac"].consent_agencies(cfg) == ["rcmp", "usbp"]
    assert cfg.port_talkgroup("to-blaine") == "usbp/ops"
    assert cfg.announcements is not None and cfg.announcements.patch_id is not None
    assert cfg.announcements.patch_id.every_s == 600
    assert [name for name, patch in cfg.patches.items() if not patch.announce] == ["calling"]


def test_demo_config_loads_and_is_all_simulated() -> None:
    link = ROOT / "config" / "demo.yaml"
    assert link.is_symlink() and link.readlink() == Path("../gateway/data/demo.yaml")
    cfg = load_config(link)
    assert all(radio.is_simulated for radio in cfg.radios.values())
    assert 6 <= len(cfg.radios) <= 8
    assert all(
        radio.simulated is not None and radio.simulated.traffic is not None
        for radio in cfg.radios.values()
    )
    countries = [agency.country for agency in cfg.agencies.values()]
    assert countries.count("CA") >= 2 and countries.count("US") >= 2
    enabled = [name for name, patch in cfg.patches.items() if patch.enabled]
    assert len(enabled) == 2 and len(cfg.patches) == 3
    assert cfg.access.technicians


def test_minimal_config_defaults() -> None:
    cfg = parse_config_text(MINIMAL)
    assert isinstance(cfg, Config)
    assert cfg.gateway.frame_ms == 20
    assert cfg.gateway.samples_per_frame == 160
    assert cfg.gateway.state_dir == Path("/var/lib/crosspatch")
    assert cfg.gateway.control_socket_path == Path("/var/lib/crosspatch/control.sock")
    tac = cfg.talkgroup("ca/tac")
    assert (tac.rx_mhz, tac.tx_mhz, tac.mode, tac.dcs) == (142.47, 142.47, None, None)
    radio = cfg.radios["ca-1"]
    assert (radio.duplex, radio.audio, radio.ptt, radio.bands_mhz) == ("half", None, None, None)
    timing = radio.timing
    assert (timing.tx_delay_ms, timing.hang_ms, timing.timeout_s, timing.rx_inhibit_ms) == (
        150,
        800,
        180.0,
        100,
    )
    patch = cfg.patches["cross"]
    assert (patch.floor, patch.enabled, patch.consent) == ("first", False, None)
    assert [(m.talkgroup, m.mode, m.priority) for m in patch.members] == [
        ("ca/tac", "talk+listen", 0),
        ("us/ch4", "talk+listen", 0),
    ]
    assert patch.consent_agencies(cfg) == ["ca", "us"]
    assert (cfg.access.dispatchers, cfg.access.technicians) == ({}, [])
    assert (cfg.mqtt, cfg.recording, cfg.links) == (None, None, {})
    assert cfg.ports() == ["ca-1", "us-1"]
    assert cfg.port_talkgroup("us-1") == "us/ch4"
    with pytest.raises(KeyError):
        cfg.talkgroup("ca/nope")


def test_link_and_hardware_defaults() -> None:
    text = (
        edit(
            HARDWARE,
            "      ops: {rx_mhz: 142.29}\n",
            "      ops: {rx_mhz: 142.29}\n      net: {}\n",
        )
        + """\
    ptt: {method: dtr}
    squelch: {method: dsr}
links:
  peer:
    protocol: rtp
    local: 0.0.0.0:40000
    remote: "[fd00::7]:40000"
    talkgroup: ca/net
    insecure: true
    timing: {hang_ms: 200}
  usrp: {protocol: usrp, local: 127.0.0.1:34001, remote: 127.0.0.1:32001, talkgroup: ca/net}
"""
    )
    cfg = parse_config_text(text)
    r1, r2 = cfg.radios["r1"], cfg.radios["r2"]
    assert r1.ptt is not None and r1.ptt.method == "cat"
    assert r1.squelch is not None and r1.squelch.method == "cat"
    # An explicit modem-line PTT or squelch defaults to the radio's CAT port.
    assert r2.ptt is not None and (r2.ptt.method, r2.ptt.port) == ("dtr", "/dev/ttyUSB1")
    assert r2.squelch is not None and r2.squelch.port == "/dev/ttyUSB1"
    link = cfg.links["peer"]
    assert (link.codec, link.duplex, link.remote_address) == (
        "pcmu",
        "full",
        ("fd00::7", 40000),
    )
    # A partial link timing keeps the link defaults for the rest.
    assert (link.timing.tx_delay_ms, link.timing.hang_ms, link.timing.rx_inhibit_ms) == (0, 200, 0)
    assert cfg.ports() == ["r1", "r2", "peer", "usrp"]


def test_rigctld_and_cm108_defaults() -> None:
    text = HARDWARE.replace(
        "    control: {driver: icom, port: /dev/ttyUSB1, civ_address: 0x94}\n",
        "    control: {driver: rigctld}\n    ptt: {method: cm108}\n    squelch: {method: vox}\n",
    )
    radio = parse_config_text(text).radios["r2"]
    assert radio.control is not None
    assert (radio.control.host, radio.control.tcp_port) == ("localhost", 4532)
    assert radio.ptt is not None and radio.ptt.gpio == 3
    assert radio.squelch is not None and radio.squelch.vox_threshold_dbfs == -30.0


def test_the_config_accepts_exactly_the_registrys_cat_drivers() -> None:
    from gateway.hardware.cat.registry import DRIVERS, driver_class

    assert tuple(DRIVERS) == CAT_DRIVER_NAMES
    for name in CAT_DRIVER_NAMES:
        assert driver_class(name).name == name
        where = {"icom": "port: /dev/ttyUSB1, civ_address: 0x94", "rigctld": "host: localhost"}
        text = HARDWARE.replace(
            "control: {driver: icom, port: /dev/ttyUSB1, civ_address: 0x94}",
            f"control: {{driver: {name}, {where.get(name, 'port: /dev/ttyUSB1')}}}",
        )
        control = parse_config_text(text).radios["r2"].control
        assert control is not None and control.driver == name


def test_pool_radios_load() -> None:
    cfg = parse_config_text(POOLS)
    assert cfg.pool_radios() == ["zz-vhf", "aa-uhf", "mm-dual"]
    spare = cfg.radios["zz-vhf"]
    assert (spare.pool, spare.talkgroup, spare.is_pool) == ("spares", None, True)
    assert cfg.radios["ca-1"].is_pool is False
    assert cfg.port_talkgroup("zz-vhf") is None
    assert cfg.port_talkgroup("ca-1") == "ca/tac"
    # Pool radios serve nothing until a patch takes one: they are no talkgroup's dedicated port.
    assert cfg.ports_of_talkgroup("ca/tac") == ["ca-1"]
    assert cfg.ports_of_talkgroup("us/ch4") == []


def test_pool_candidates_cover_rx_and_tx_in_config_order() -> None:
    cfg = parse_config_text(POOLS)
    assert cfg.pool_candidates("ca/tac") == ["zz-vhf", "mm-dual"]
    assert cfg.pool_candidates("ca/uhf") == ["aa-uhf", "mm-dual"]
    # Receive on VHF, transmit on UHF: zz-vhf covers only rx and aa-uhf only tx.
    assert cfg.pool_candidates("ca/split") == ["mm-dual"]
    # A network talkgroup has no frequencies to tune to.
    assert cfg.pool_candidates("us/net") == []
    with pytest.raises(KeyError):
        cfg.pool_candidates("ca/nope")


def test_pool_band_edges_are_inside() -> None:
    text = edit(POOLS, "[[400, 470]]\n", "[[453.1, 458.1]]\n")
    assert parse_config_text(text).pool_candidates("ca/uhf") == ["aa-uhf", "mm-dual"]
    text = edit(POOLS, "[[400, 470]]\n", "[[453.1, 458.0]]\n")
    assert parse_config_text(text).pool_candidates("ca/uhf") == ["mm-dual"]


def test_talkgroup_served_only_by_a_pool() -> None:
    # us/ch4 has no dedicated radio; two enabled patches may both name it (pool radios are
    # assigned at run time, so they are no shared port).
    cfg = parse_config_text(POOLS)
    assert [name for name, patch in cfg.patches.items() if patch.enabled] == ["cross", "second"]
    text = edit(POOLS, "      ch4: {rx_mhz: 163.1}", "      ch4: {rx_mhz: 183.1}")
    issue = only_issue(text)
    assert (issue.line, issue.path) == (line_of(text, "ch4:"), "agencies.us.talkgroups.ch4")
    assert "or a pool radio whose bands_mhz cover it" in issue.message


def test_pool_radio_may_have_hardware() -> None:
    text = edit(
        POOLS,
        "  aa-uhf:\n    pool: spares\n    simulated: {}\n",
        "  aa-uhf:\n    pool: spares\n    audio: {input: card, output: card}\n"
        "    control: {driver: kenwood, port: /dev/ttyUSB0}\n",
    )
    radio = parse_config_text(text).radios["aa-uhf"]
    assert radio.ptt is not None and radio.ptt.method == "cat"
    assert not radio.is_simulated and radio.is_pool


def test_simulated_radio_with_real_control_gets_cat_defaults() -> None:
    text = edit(
        MINIMAL,
        "  us-1: {talkgroup: us/ch4, simulated: {}}",
        "  us-1:\n    talkgroup: us/ch4\n    simulated: {}\n"
        "    control: {driver: kenwood, port: /dev/ttyUSB0}",
    )
    cfg = parse_config_text(text)
    radio = cfg.radios["us-1"]
    assert radio.is_simulated and radio.audio is None
    assert radio.ptt is not None and radio.ptt.method == "cat"
    assert radio.squelch is not None and radio.squelch.method == "cat"
    assert radio.has_hardware_control
    assert not cfg.radios["ca-1"].has_hardware_control


def test_simulated_radio_lines_default_to_its_cat_port() -> None:
    text = edit(
        MINIMAL,
        "  us-1: {talkgroup: us/ch4, simulated: {}}",
        "  us-1:\n    talkgroup: us/ch4\n    simulated: {}\n"
        "    control: {driver: kenwood, port: /dev/ttyUSB0}\n"
        "    ptt: {method: rts}\n    squelch: {method: dcd}",
    )
    radio = parse_config_text(text).radios["us-1"]
    assert radio.ptt is not None and (radio.ptt.method, radio.ptt.port) == ("rts", "/dev/ttyUSB0")
    assert radio.squelch is not None and radio.squelch.port == "/dev/ttyUSB0"


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ("    ptt: {method: none}\n", False),
        ("    ptt: {method: dtr, port: /dev/ttyS0}\n", True),
        ("    squelch: {method: cts, port: /dev/ttyS0}\n", True),
        ("    ptt: {method: cm108, port: /dev/hidraw0}\n", True),
    ],
    ids=["ptt-none", "ptt-line", "squelch-line", "ptt-cm108"],
)
def test_simulated_radio_with_lines_only(settings: str, expected: bool) -> None:
    # Without control, a simulated radio needs neither ptt nor squelch, and gets no CAT defaults.
    text = edit(
        MINIMAL,
        "  us-1: {talkgroup: us/ch4, simulated: {}}",
        "  us-1:\n    talkgroup: us/ch4\n    simulated: {}\n" + settings.rstrip("\n"),
    )
    radio = parse_config_text(text).radios["us-1"]
    assert radio.control is None
    assert radio.has_hardware_control is expected
    assert (radio.ptt is None) == ("ptt" not in settings)
    assert (radio.squelch is None) == ("squelch" not in settings)


def test_simulated_cm108_ptt_shares_no_gpio() -> None:
    text = edit(
        MINIMAL,
        "  ca-1: {talkgroup: ca/tac, simulated: {}}\n  us-1: {talkgroup: us/ch4, simulated: {}}",
        "  ca-1:\n    talkgroup: ca/tac\n    simulated: {}\n"
        "    ptt: {method: cm108, port: /dev/hidraw0}\n"
        "  us-1:\n    talkgroup: us/ch4\n    simulated: {}\n"
        "    ptt: {method: cm108, port: /dev/hidraw0}",
    )
    issue = only_issue(text)
    assert (issue.line, issue.path) == (
        line_of(text, "ptt: {method: cm108", 2),
        "radios.us-1.ptt",  # gpio 3 is the default, not written: the path stops at ptt
    )
    assert "CM108 GPIO 3 of '/dev/hidraw0' already keys radio 'ca-1'" in issue.message


def test_tone_tables() -> None:
    assert len(CTCSS_TONES_HZ) == 50 and len(set(CTCSS_TONES_HZ)) == 50
    assert len(DCS_CODES) == 104 and len(set(DCS_CODES)) == 104


def test_yaml_merge_keys_and_aliases() -> None:
    text = edit(
        MINIMAL,
        "  ca-1: {talkgroup: ca/tac, simulated: {}}",
        "  ca-1: &base {talkgroup: ca/tac, simulated: {}, timing: {hang_ms: 2000}}\n"
        "  ca-2: {<<: *base, duplex: full}",
    )
    cfg = parse_config_text(text)
    assert cfg.radios["ca-2"].timing.hang_ms == 2000
    assert cfg.radios["ca-2"].duplex == "full"
    assert cfg.radios["ca-1"].duplex == "half"


def test_json_schema() -> None:
    schema = config_json_schema()
    assert set(schema["properties"]) == {
        "gateway",
        "agencies",
        "radios",
        "links",
        "patches",
        "access",
        "mqtt",
        "recording",
        "announcements",
        "metrics",
    }
    assert schema["additionalProperties"] is False
    radio, link = schema["$defs"]["Radio"], schema["$defs"]["Link"]
    assert "pool" in radio["properties"] and "talkgroup" in radio["properties"]
    assert "talkgroup" not in radio.get("required", [])
    assert "talkgroup" in link["required"]
    json.dumps(schema)


# --- whole-file problems ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("", 1, "the file is empty"),
        ("# only a comment\n", 1, "the file is empty"),
        ("- gateway\n- agencies\n", 1, "must be a mapping of sections such as gateway"),
        ("just text\n", 1, "not 'just text'"),
        ("gateway: {id: x\nagencies: {}\n", 2, "invalid YAML at column"),
        ("gateway:\n\tid: x\n", 2, "YAML indents with spaces, not tabs"),
        ("a: 1\n---\nb: 2\n", 2, "expected a single document"),
        ("gateway: !include other.yaml\n", 1, "could not determine a constructor"),
    ],
    ids=[
        "empty",
        "comment-only",
        "top-level-list",
        "top-level-scalar",
        "syntax",
        "tab",
        "two-docs",
        "tag",
    ],
)
def test_whole_file_problems(text: str, line: int, message: str) -> None:
    issue = only_issue(text)
    assert issue.line == line
    assert message in issue.message


def test_missing_file_directory_and_not_utf8(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "nope.yaml")
    assert str(caught.value) == f"{tmp_path / 'nope.yaml'}: no such file"
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path)
    assert str(caught.value) == f"{tmp_path}: is a directory, not a YAML file"
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes(b"gateway: {id: x}\nagencies:\n  # Qu\xe9bec\n")
    with pytest.raises(ConfigError) as caught:
        load_config(latin1)
    assert str(caught.value) == (
        f"{latin1}:3: the file is not UTF-8 text (byte 0xe9); save it as UTF-8"
    )


def test_only_a_regular_file_of_bounded_size_is_read(tmp_path: Path) -> None:
    # /dev/zero would be read until memory runs out; a FIFO would block `check` for ever.
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    for path in (Path("/dev/zero"), fifo):
        with pytest.raises(ConfigError) as caught:
            load_config(path)
        assert str(caught.value) == (
            f"{path}: is not a regular file (a device, a FIFO or a socket): name a YAML file"
        )
    huge = tmp_path / "huge.yaml"
    huge.write_text("gateway: {id: x}\n" + "# padding\n" * 300_000)
    started = time.monotonic()
    with pytest.raises(ConfigError) as caught:
        load_config(huge)
    assert str(caught.value) == (
        f"{huge}: is larger than 2 MiB, far more than any site needs: is it the right file?"
    )
    assert time.monotonic() - started < 5  # refused without parsing it
    with pytest.raises(ConfigError) as caught:
        load_config("")
    assert str(caught.value) == "'': an empty path names no file"


def test_nesting_too_deep_is_reported_at_its_line() -> None:
    # Deep enough for the parser's recursion to give up: the line is still named.
    text = MINIMAL + "deep: " + "[" * 5000 + "]" * 5000 + "\n"
    issue = only_issue(text)
    assert issue.message == "invalid YAML: nested more than 100 levels deep"
    assert issue.line == len(MINIMAL.splitlines()) + 1


def test_a_receive_frequency_outside_every_band_is_refused() -> None:
    issue = only_issue(
        edit(MINIMAL, "{rx_mhz: 163.1, tx_mhz: 163.1}", "{rx_mhz: 16.31, tx_mhz: 163.1}")
    )
    assert issue.message == (
        "radio 'us-1' would receive on 16.31 MHz (us/ch4), outside the land-mobile bands "
        "(29.7-50, 136-174, 220-225, 380-512, 757-870, 896-941 MHz); check rx_mhz, or give "
        "the radio its bands_mhz"
    )
    bands = edit(
        MINIMAL,
        "us-1: {talkgroup: us/ch4, simulated: {}}",
        "us-1: {talkgroup: us/ch4, simulated: {}, bands_mhz: [[136, 174]]}",
    )
    issue = only_issue(
        edit(bands, "{rx_mhz: 163.1, tx_mhz: 163.1}", "{rx_mhz: 453.1, tx_mhz: 163.1}")
    )
    assert issue.message == (
        "radio 'us-1' would receive on 453.1 MHz (us/ch4), outside its bands_mhz 136-174 MHz"
    )


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ('mqtt: {url: "mqtts://broker:8883", ca_file: ""}', "mqtt.ca_file"),
        ('recording: {dir: "  "}', "recording.dir"),
    ],
)
def test_an_empty_path_is_refused(section: str, key: str) -> None:
    issue = only_issue(MINIMAL + section + "\n")
    assert issue.path == key
    assert issue.message == "an empty path names no file: give the path, or leave the key out"


def test_issue_format() -> None:
    issue = ConfigIssue("site.yaml", 7, "radios.r1.timing.hang_ms", "hang_ms must be >= 0")
    assert str(issue) == "site.yaml:7: radios.r1.timing.hang_ms: hang_ms must be >= 0"
    assert str(ConfigIssue("site.yaml", None, "", "no such file")) == "site.yaml: no such file"


# --- located problems ------------------------------------------------------------------------

# (id, config text, text on the reported line, key path, part of the message)
CASES: list[tuple[str, str, str, str, str]] = [
    (
        "duplicate-key",
        edit(MINIMAL, "    country: CA\n", "    country: CA\n    country: US\n"),
        "country: US",
        "agencies.ca.country",
        "duplicate key 'country' (first at line 5)",
    ),
    (
        "unknown-key-did-you-mean",
        edit(
            MINIMAL,
            "  ca-1: {talkgroup: ca/tac, simulated: {}}",
            "  ca-1:\n    talkgroup: ca/tac\n    simulated: {}\n    timming: {hang_ms: 5}",
        ),
        "timming:",
        "radios.ca-1.timming",
        "unknown key 'timming'; did you mean 'timing'?",
    ),
    (
        "unknown-section",
        MINIMAL + "radio: {}\n",
        "radio: {}",
        "radio",
        "did you mean 'radios'?",
    ),
    (
        "wrong-type",
        edit(MINIMAL, "gateway: {id: test}", "gateway: {id: test, frame_ms: fast}"),
        "gateway:",
        "gateway.frame_ms",
        "frame_ms must be one of 10, 20, 40 (got 'fast')",
    ),
    (
        "not-a-number",
        edit(MINIMAL, "{rx_mhz: 163.1, tx_mhz: 163.1}", "{rx_mhz: 163.1, tx_mhz: high}"),
        "ch4:",
        "agencies.us.talkgroups.ch4.tx_mhz",
        "tx_mhz must be a number (got 'high')",
    ),
    (
        "missing-key",
        edit(MINIMAL, "    name: US agency\n", ""),
        "  us:",
        "agencies.us.name",
        "missing required key 'name'",
    ),
    (
        "bool-for-text",
        edit(MINIMAL, "country: US", "country: no"),
        "country: no",
        "agencies.us.country",
        "YAML reads yes/no/on/off as true/false",
    ),
    (
        "lower-case-country",
        edit(MINIMAL, "country: US", "country: us"),
        "country: us",
        "agencies.us.country",
        "ISO 3166 alpha-2 code in upper case, like CA or US (got 'us'); write 'US'",
    ),
    (
        "non-slug-name",
        edit(MINIMAL, "  us-1:", "  US_1:"),
        "US_1:",
        "radios.US_1",
        "'US_1' is not a valid name: use 1-63 lower-case letters",
    ),
    (
        "negative-hang",
        edit(
            MINIMAL,
            "  us-1: {talkgroup: us/ch4, simulated: {}}",
            "  us-1:\n    talkgroup: us/ch4\n    simulated: {}\n    timing:\n      hang_ms: -5",
        ),
        "hang_ms: -5",
        "radios.us-1.timing.hang_ms",
        "hang_ms must be >= 0 (got -5)",
    ),
    (
        "ctcss-not-standard",
        edit(MINIMAL, "ctcss_hz: 131.8", "ctcss_hz: 131.5"),
        "tac: {rx_mhz",
        "agencies.ca.talkgroups.tac.ctcss_hz",
        "131.5 Hz is not one of the 50 standard CTCSS tones; the nearest is 131.8 Hz",
    ),
    (
        "dcs-not-standard",
        edit(MINIMAL, "{rx_mhz: 163.1, tx_mhz: 163.1}", "{rx_mhz: 163.1, dcs: '024N'}"),
        "ch4:",
        "agencies.us.talkgroups.ch4.dcs",
        "'024N' is not one of the 104 standard DCS codes; the nearest are 023 and 025",
    ),
    (
        "ctcss-and-dcs",
        edit(
            MINIMAL, "{rx_mhz: 163.1, tx_mhz: 163.1}", "{rx_mhz: 163.1, ctcss_hz: 100, dcs: 023N}"
        ),
        "ch4:",
        "agencies.us.talkgroups.ch4.dcs",
        "give ctcss_hz or dcs, not both",
    ),
    (
        "tx-outside-land-mobile",
        edit(MINIMAL, "{rx_mhz: 163.1, tx_mhz: 163.1}", "{rx_mhz: 163.1, tx_mhz: 181.1}"),
        "us-1:",
        "radios.us-1.talkgroup",
        "radio 'us-1' would transmit on 181.1 MHz (us/ch4), outside the land-mobile bands",
    ),
    (
        "tx-outside-radio-bands",
        edit(
            MINIMAL,
            "  us-1: {talkgroup: us/ch4, simulated: {}}",
            "  us-1:\n    talkgroup: us/ch4\n    simulated: {}\n    bands_mhz: [[144, 148]]",
        ),
        "talkgroup: us/ch4",
        "radios.us-1.talkgroup",
        "outside its bands_mhz 144-148 MHz",
    ),
    (
        "bad-band",
        edit(
            MINIMAL,
            "  us-1: {talkgroup: us/ch4, simulated: {}}",
            "  us-1:\n    talkgroup: us/ch4\n    simulated: {}\n    bands_mhz: [[174, 136]]",
        ),
        "bands_mhz:",
        "radios.us-1.bands_mhz",
        "band 0 must have 0 < low < high (got [174, 136])",
    ),
    (
        "unknown-talkgroup",
        edit(MINIMAL, "members: [ca/tac, us/ch4]", "members: [ca/tac, us/ch4, ca/tac9]"),
        "cross:",
        "patches.cross.members.2",
        "talkgroup 'ca/tac9' is not defined; agency 'ca' has: tac",
    ),
    (
        "unknown-agency-in-member",
        edit(
            MINIMAL, "members: [ca/tac, us/ch4]", "members: [ca/tac, us/ch4, {talkgroup: uss/ch4}]"
        ),
        "cross:",
        "patches.cross.members.2.talkgroup",
        "talkgroup 'uss/ch4' is not defined: there is no agency 'uss'; did you mean 'us'?",
    ),
    (
        "bad-talkgroup-reference",
        edit(MINIMAL, "members: [ca/tac, us/ch4]", "members: [ca/tac, ch4]"),
        "cross:",
        "patches.cross.members.1",
        "'ch4' is not a talkgroup reference: write 'agency/talkgroup'",
    ),
    (
        "member-mode-did-you-mean",
        edit(
            MINIMAL,
            "  cross: {members: [ca/tac, us/ch4]}",
            "  cross:\n    members:\n      - ca/tac\n"
            "      - talkgroup: us/ch4\n        mode: lisen",
        ),
        "mode: lisen",
        "patches.cross.members.1.mode",
        "mode must be one of talk+listen, listen, talk (got 'lisen'); did you mean 'listen'?",
    ),
    (
        "unknown-dispatcher-agency",
        MINIMAL + "access:\n  dispatchers:\n    alice: {agency: rcmp}\n",
        "alice:",
        "access.dispatchers.alice.agency",
        "agency 'rcmp' is not defined; agencies are: ca, us",
    ),
    (
        "dispatcher-and-technician",
        MINIMAL + "access:\n  dispatchers: {alice: {agency: ca}}\n  technicians:\n    - alice\n",
        "- alice",
        "access.technicians.0",
        "'alice' is already a dispatcher; a user is a dispatcher or a technician, not both",
    ),
    (
        "patch-of-one",
        edit(MINIMAL, "members: [ca/tac, us/ch4]", "members: [ca/tac]")
        + "  more: {members: [ca/tac, us/ch4]}\n",
        "cross:",
        "patches.cross.members",
        "a patch joins at least two talkgroups; this one has 1",
    ),
    (
        "talkgroup-twice-in-patch",
        edit(
            MINIMAL,
            "  cross: {members: [ca/tac, us/ch4]}",
            "  cross:\n    members:\n      - ca/tac\n      - us/ch4\n      - {talkgroup: ca/tac}",
        ),
        "- {talkgroup: ca/tac}",
        "patches.cross.members.2",
        "talkgroup 'ca/tac' is already member 0 of this patch",
    ),
    (
        "consent-agency-not-in-patch",
        edit(
            MINIMAL,
            "      ch4: {rx_mhz: 163.1, tx_mhz: 163.1}\n",
            "      ch4: {rx_mhz: 163.1, tx_mhz: 163.1}\n      ch5: {rx_mhz: 163.2}\n",
        ).replace(
            "radios:\n",
            "radios:\n  us-2: {talkgroup: us/ch5, simulated: {}}\n",
        )
        + "  us-only:\n    members: [us/ch4, us/ch5]\n    consent:\n      - us\n      - ca\n",
        "- ca",
        "patches.us-only.consent.1",
        "agency 'ca' has no talkgroup in this patch; member agencies are: us",
    ),
    (
        "consent-unknown-agency",
        edit(MINIMAL, "members: [ca/tac, us/ch4]}", "members: [ca/tac, us/ch4], consent: [cbsa]}"),
        "cross:",
        "patches.cross.consent.0",
        "agency 'cbsa' is not defined; did you mean 'ca'?",
    ),
    (
        "two-enabled-patches-share-a-port",
        edit(
            MINIMAL,
            "      tac: {rx_mhz: 142.47, ctcss_hz: 131.8}\n",
            "      tac: {rx_mhz: 142.47, ctcss_hz: 131.8}\n      ops: {rx_mhz: 142.29}\n",
        )
        .replace(
            "  us-1: {talkgroup: us/ch4, simulated: {}}\n",
            "  us-1: {talkgroup: us/ch4, simulated: {}}\n"
            "  ca-2: {talkgroup: ca/ops, simulated: {}}\n",
        )
        .replace(
            "  cross: {members: [ca/tac, us/ch4]}\n",
            "  cross: {members: [ca/tac, us/ch4], enabled: true}\n"
            "  second:\n    members: [ca/ops, us/ch4]\n    enabled: true\n",
        ),
        "    enabled: true",
        "patches.second.enabled",
        "patch 'second' shares port 'us-1' (us/ch4) with patch 'cross', which is also enabled",
    ),
    (
        "talkgroup-served-by-no-port",
        edit(
            MINIMAL,
            "      ch4: {rx_mhz: 163.1, tx_mhz: 163.1}\n",
            "      ch4: {rx_mhz: 163.1, tx_mhz: 163.1}\n      ops: {}\n",
        ),
        "ops: {}",
        "agencies.us.talkgroups.ops",
        "talkgroup 'us/ops' is served by no radio or link; add a radio or link, "
        "or a pool radio whose bands_mhz cover it, or remove the talkgroup",
    ),
    (
        "radio-on-network-talkgroup",
        edit(MINIMAL, "{rx_mhz: 163.1, tx_mhz: 163.1}", "{id: 7}"),
        "us-1:",
        "radios.us-1.talkgroup",
        "talkgroup 'us/ch4' has no frequencies, and a radio must be tuned",
    ),
    (
        "radio-simulated-with-audio",
        edit(
            MINIMAL,
            "  us-1: {talkgroup: us/ch4, simulated: {}}",
            "  us-1:\n    talkgroup: us/ch4\n    simulated: {}\n"
            "    control: {driver: kenwood, port: /dev/ttyUSB0}\n"
            "    audio: {input: card, output: card}",
        ),
        "audio: {input",
        "radios.us-1.audio",
        "a simulated radio has no audio: remove 'audio', or remove 'simulated' to use hardware",
    ),
    (
        "simulated-traffic-with-ptt",
        edit(
            MINIMAL,
            "  us-1: {talkgroup: us/ch4, simulated: {}}",
            "  us-1:\n    talkgroup: us/ch4\n"
            "    simulated:\n      traffic: {every_s: 10, talk_s: 2}\n"
            "    ptt: {method: rts, port: /dev/ttyS0}",
        ),
        "ptt: {method: rts",
        "radios.us-1.ptt",
        "generated traffic makes its own carrier; remove traffic, "
        "or remove the radio's squelch/ptt/control",
    ),
    (
        "simulated-traffic-with-control",
        edit(
            MINIMAL,
            "  us-1: {talkgroup: us/ch4, simulated: {}}",
            "  us-1:\n    talkgroup: us/ch4\n"
            "    simulated:\n      traffic: {every_s: 10, talk_s: 2}\n"
            "    control: {driver: kenwood, port: /dev/ttyUSB0}",
        ),
        "control: {driver",
        "radios.us-1.control",
        "generated traffic makes its own carrier",
    ),
    (
        "simulated-with-vox",
        edit(
            MINIMAL,
            "  us-1: {talkgroup: us/ch4, simulated: {}}",
            "  us-1:\n    talkgroup: us/ch4\n    simulated: {}\n"
            "    ptt: {method: none}\n    squelch: {method: vox}",
        ),
        "squelch: {method: vox}",
        "radios.us-1.squelch.method",
        "vox needs the radio's audio, and a simulated radio has none; "
        "use cat, cts, dsr, dcd, ri or cm108, or remove 'simulated' to use hardware",
    ),
    (
        "simulated-ptt-cat-without-control",
        edit(
            MINIMAL,
            "  us-1: {talkgroup: us/ch4, simulated: {}}",
            "  us-1:\n    talkgroup: us/ch4\n    simulated: {}\n    ptt: {method: cat}",
        ),
        "ptt: {method: cat}",
        "radios.us-1.ptt.method",
        "ptt method cat needs control (a CAT connection)",
    ),
    (
        "simulated-serial-ptt-without-port",
        edit(
            MINIMAL,
            "  us-1: {talkgroup: us/ch4, simulated: {}}",
            "  us-1:\n    talkgroup: us/ch4\n    simulated: {}\n    ptt: {method: rts}",
        ),
        "ptt: {method: rts}",
        "radios.us-1.ptt.port",
        "ptt method rts needs port, the serial line that keys the radio",
    ),
    (
        "simulated-cm108-without-port",
        edit(
            MINIMAL,
            "  us-1: {talkgroup: us/ch4, simulated: {}}",
            "  us-1:\n    talkgroup: us/ch4\n    simulated: {}\n    squelch: {method: cm108}",
        ),
        "squelch: {method: cm108}",
        "radios.us-1.squelch.port",
        "squelch method cm108 on a simulated radio needs port, the CM108's /dev/hidrawN",
    ),
    (
        "radio-without-talkgroup-or-pool",
        edit(MINIMAL, "  us-1: {talkgroup: us/ch4, simulated: {}}", "  us-1: {simulated: {}}"),
        "us-1: {simulated",
        "radios.us-1.talkgroup",
        "a radio needs talkgroup (a fixed channel) or pool (tuned on demand)",
    ),
    (
        "radio-with-talkgroup-and-pool",
        edit(
            MINIMAL,
            "  us-1: {talkgroup: us/ch4, simulated: {}}",
            "  us-1:\n    talkgroup: us/ch4\n    pool: spares\n    simulated: {}\n"
            "    bands_mhz: [[136, 174]]",
        ),
        "pool: spares",
        "radios.us-1.pool",
        "give talkgroup or pool, not both",
    ),
    (
        "pool-radio-without-bands",
        edit(POOLS, "    bands_mhz: [[400, 470]]\n", ""),
        "aa-uhf:",
        "radios.aa-uhf.bands_mhz",
        "a pool radio needs bands_mhz, so the gateway never tunes it outside its bands",
    ),
    (
        "pool-radio-with-traffic",
        edit(
            POOLS,
            "    pool: spares\n    simulated: {}\n    bands_mhz: [[400, 470]]",
            "    pool: spares\n    bands_mhz: [[400, 470]]\n"
            "    simulated:\n      traffic: {every_s: 10, talk_s: 2}",
        ),
        "traffic: {every_s",
        "radios.aa-uhf.simulated.traffic",
        "generated traffic needs a fixed talkgroup: remove traffic, or give the radio "
        "a talkgroup instead of pool",
    ),
    (
        "bad-pool-name",
        edit(
            POOLS,
            "    pool: spares\n    simulated: {}\n    bands_mhz: [[400",
            "    pool: Spares\n    simulated: {}\n    bands_mhz: [[400",
        ),
        "pool: Spares",
        "radios.aa-uhf.pool",
        "'Spares' is not a valid name",
    ),
    (
        "pool-covers-rx-but-not-tx",
        # Without the dual-band radio, the VHF radio hears ca/split but could not transmit on it.
        edit(
            POOLS,
            "  mm-dual:\n    pool: spares\n    simulated: {}\n"
            "    bands_mhz: [[136, 174], [400, 470]]\n",
            "",
        ),
        "split:",
        "agencies.ca.talkgroups.split",
        "talkgroup 'ca/split' is served by no radio or link; add a radio or link, "
        "or a pool radio whose bands_mhz cover it, or remove the talkgroup",
    ),
    (
        "link-without-talkgroup",
        edit(POOLS, ", talkgroup: us/net}", "}"),
        "net: {protocol",
        "links.net.talkgroup",
        "missing required key 'talkgroup'",
    ),
    (
        "hardware-radio-without-audio",
        edit(
            MINIMAL,
            "  us-1: {talkgroup: us/ch4, simulated: {}}",
            "  us-1:\n    talkgroup: us/ch4\n    control: {driver: kenwood, port: /dev/ttyUSB0}",
        ),
        "us-1:",
        "radios.us-1.audio",
        "a hardware radio needs audio",
    ),
    (
        "ptt-cat-without-control",
        edit(
            MINIMAL,
            "  us-1: {talkgroup: us/ch4, simulated: {}}",
            "  us-1:\n    talkgroup: us/ch4\n    audio: {input: a, output: a}\n"
            "    ptt: {method: cat}\n    squelch: {method: vox}",
        ),
        "ptt: {method: cat}",
        "radios.us-1.ptt.method",
        "ptt method cat needs control",
    ),
    (
        "serial-driver-without-port",
        edit(HARDWARE, "{driver: kenwood, port: /dev/ttyUSB0}", "{driver: kenwood}"),
        "control: {driver: kenwood}",
        "radios.r1.control.port",
        "driver kenwood talks over a serial line: add port",
    ),
    (
        "civ-address-for-kenwood",
        edit(
            HARDWARE,
            "{driver: kenwood, port: /dev/ttyUSB0}",
            "{driver: kenwood, port: /dev/ttyUSB0, civ_address: 0x10}",
        ),
        "civ_address: 0x10",
        "radios.r1.control.civ_address",
        "civ_address applies only to driver icom",
    ),
    (
        "odd-baud",
        edit(
            HARDWARE,
            "{driver: kenwood, port: /dev/ttyUSB0}",
            "{driver: kenwood, port: /dev/ttyUSB0, baud: 9601}",
        ),
        "baud: 9601",
        "radios.r1.control.baud",
        "baud must be a standard rate",
    ),
    (
        "shared-cat-port",
        edit(HARDWARE, "port: /dev/ttyUSB1", "port: /dev/ttyUSB0"),
        "driver: icom",
        "radios.r2.control.port",
        "serial port '/dev/ttyUSB0' is already used by radio 'r1'; a CAT port belongs to one radio",
    ),
    (
        "ptt-on-another-radios-cat-port",
        HARDWARE + "    ptt: {method: rts, port: /dev/ttyUSB0}\n",
        "ptt: {method: rts",
        "radios.r2.ptt.port",
        "serial port '/dev/ttyUSB0' is the CAT port of radio 'r1'",
    ),
    (
        "two-ptts-on-one-line",
        edit(
            HARDWARE,
            "{driver: kenwood, port: /dev/ttyUSB0}",
            "{driver: kenwood, port: /dev/ttyUSB0}\n    ptt: {method: rts, port: /dev/ttyS0}",
        )
        + "    ptt: {port: /dev/ttyS0, method: rts}\n",
        "ptt: {port: /dev/ttyS0, method: rts}",
        "radios.r2.ptt.port",
        "the RTS line of '/dev/ttyS0' already keys radio 'r1'; two radios cannot share a PTT line",
    ),
    (
        "shared-audio-channel",
        edit(HARDWARE, "output: card, channel: right}", "output: card2}"),
        "output: card2}",
        "radios.r2.audio.input",
        "audio input 'card' channel mono is already used by radio 'r1' (channel left)",
    ),
    (
        "duplicate-port-name",
        MINIMAL
        + "links:\n  us-1:  # a link\n    protocol: usrp\n    local: 0.0.0.0:34001\n"
        + "    remote: 10.0.0.2:32001\n    talkgroup: us/ch4\n",
        "  us-1:  # a link",
        "links.us-1",
        "port name 'us-1' is already a radio's; port names must be unique",
    ),
    (
        "rtp-link-without-encryption-choice",
        MINIMAL
        + "links:\n  peer:\n    protocol: rtp\n    local: 0.0.0.0:40000\n"
        + "    remote: 198.51.100.7:40000\n    talkgroup: us/ch4\n",
        "  peer:",
        "links.peer.srtp_key_file",
        "an RTP link needs srtp_key_file, or insecure: true to send audio unencrypted "
        "(an unencrypted link must be asked for)",
    ),
    (
        "bad-host-port",
        MINIMAL
        + "links:\n  peer:\n    protocol: rtp\n    local: 0.0.0.0:40000\n"
        + "    remote: 198.51.100.7:70000\n    talkgroup: us/ch4\n    insecure: true\n",
        "remote: 198",
        "links.peer.remote",
        "port must be between 1 and 65535 (got 70000)",
    ),
    (
        "traffic-burst-longer-than-period",
        edit(
            MINIMAL,
            "  us-1: {talkgroup: us/ch4, simulated: {}}",
            "  us-1:\n    talkgroup: us/ch4\n"
            "    simulated:\n      traffic: {every_s: 4, talk_s: 5}",
        ),
        "traffic:",
        "radios.us-1.simulated.traffic.talk_s",
        "talk_s must be shorter than every_s (got talk_s 5, every_s 4)",
    ),
    (
        "mqtt-url",
        MINIMAL + "mqtt:\n  url: http://broker:1883\n",
        "url: http",
        "mqtt.url",
        "url must be mqtt://host[:port] or mqtts://host[:port]",
    ),
    (
        "frequency-in-hertz",
        edit(MINIMAL, "{rx_mhz: 163.1, tx_mhz: 163.1}", "{rx_mhz: 163100000}"),
        "ch4:",
        "agencies.us.talkgroups.ch4.rx_mhz",
        "frequencies are in MHz: 1.631e+08 looks like hertz (163.1 MHz?)",
    ),
]


@pytest.mark.parametrize(
    ("text", "line_text", "path", "message"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_located_problem(text: str, line_text: str, path: str, message: str) -> None:
    issue = only_issue(text)
    assert (issue.file, issue.line, issue.path) == ("site.yaml", line_of(text, line_text), path)
    assert message in issue.message
    assert str(issue) == f"site.yaml:{issue.line}: {path}: {issue.message}"
    assert "\n" not in str(issue)


def test_duplicate_key_cites_both_lines() -> None:
    text = "gateway: {id: a}\ngateway: {id: b}\n"
    issue = only_issue(text)
    assert (issue.line, issue.path) == (2, "gateway")
    assert "first at line 1" in issue.message


def test_every_problem_is_reported_in_file_order() -> None:
    text = """\
gateway: {id: Test, frame_ms: 25}
agencies:
  ca:
    name: Canadian agency
    country: ca
    talkgroups:
      tac: {rx_mhz: 142.47, ctcss_hz: 131.5}
radios:
  ca-1:
    talkgroup: ca/tac
    simulated: {}
    timing: {hang_ms: -5}
    duplx: full
patches:
  p: {members: [ca/tac], floor: loudest}
"""
    issues = issues_of(text)
    assert [(issue.line, issue.path) for issue in issues] == [
        (1, "gateway.id"),
        (1, "gateway.frame_ms"),
        (5, "agencies.ca.country"),
        (7, "agencies.ca.talkgroups.tac.ctcss_hz"),
        (12, "radios.ca-1.timing.hang_ms"),
        (13, "radios.ca-1.duplx"),
        (15, "patches.p.floor"),
    ]
    assert "did you mean 'duplex'?" in issues[5].message
    with pytest.raises(ConfigError) as caught:
        parse_config_text(text, filename="site.yaml")
    assert str(caught.value).splitlines() == [str(issue) for issue in issues]


def test_schema_and_reference_errors_are_reported_in_one_run() -> None:
    # A technician fixing a file sees every problem at once: the references of what passed the
    # schema are checked even while another section has a schema error.
    text = edit(
        MINIMAL, "{talkgroup: ca/tac, simulated: {}}", "{talkgroup: ca/tac9, simulated: {}}"
    )
    text = edit(text, "gateway: {id: test}", "gateway: {id: test, frame_ms: 30}")
    assert [(issue.line, issue.path) for issue in issues_of(text)] == [
        (1, "gateway.frame_ms"),
        (7, "agencies.ca.talkgroups.tac"),  # served by no radio now that ca-1 names tac9
        (14, "radios.ca-1.talkgroup"),
    ]


def test_references_into_what_failed_the_schema_are_not_judged() -> None:
    # Agency 'ca' fails the schema (no country): talkgroups named 'ca/...' may be right once it
    # is fixed, so they are not called undefined; a reference to an agency the file does not
    # have at all still is, and its hint lists every agency the file defines.
    text = edit(MINIMAL, "    country: CA\n", "")
    text = edit(text, "members: [ca/tac, us/ch4]", "members: [ca/tac, us/ch4, mx/c1]")
    issues = issues_of(text)
    assert [issue.path for issue in issues] == ["agencies.ca.country", "patches.cross.members.2"]
    assert issues[1].message == (
        "talkgroup 'mx/c1' is not defined: there is no agency 'mx'; agencies are: us, ca"
    )


def test_an_unknown_key_leaves_the_rest_of_its_entry_checked() -> None:
    # A typo'd key in a radio must not hide that the same radio names an undefined talkgroup.
    text = edit(
        MINIMAL,
        "{talkgroup: ca/tac, simulated: {}}",
        "{talkgroup: ca/tac9, simulated: {}, colour: red}",
    )
    issues = issues_of(text)
    assert [issue.path for issue in issues] == [
        "agencies.ca.talkgroups.tac",
        "radios.ca-1.colour",
        "radios.ca-1.talkgroup",
    ]
    assert "did you mean" in issues[1].message or "expected one of" in issues[1].message


def test_a_port_that_failed_the_schema_may_serve_a_talkgroup() -> None:
    # Radio us-1 is broken: whether us/ch4 is served cannot be told, so it is not reported.
    text = edit(MINIMAL, "{talkgroup: us/ch4, simulated: {}}", "{talkgroup: us/ch4}")
    paths = [issue.path for issue in issues_of(text)]
    assert paths and all(path.startswith("radios.us-1.") for path in paths), paths


def test_several_reference_problems_at_once() -> None:
    text = MINIMAL.replace("ca/tac, simulated", "ca/tac9, simulated").replace(
        "members: [ca/tac, us/ch4]", "members: [ca/tac, us/ch5]"
    )
    issues = issues_of(text)
    assert [issue.path for issue in issues] == [
        "agencies.ca.talkgroups.tac",
        "radios.ca-1.talkgroup",
        "patches.cross.members.1",
    ]
    assert "served by no radio or link" in issues[0].message


def test_shared_serial_lines_allowed_as_dire_wolf_does() -> None:
    # Radio r1 keyed by RTS and r2 by DTR of one adapter; r1's COS on CTS and r2's on DSR.
    text = (
        edit(
            HARDWARE,
            "{driver: kenwood, port: /dev/ttyUSB0}",
            "{driver: kenwood, port: /dev/ttyUSB0}\n"
            "    ptt: {method: rts, port: /dev/ttyS0}\n"
            "    squelch: {method: cts, port: /dev/ttyS0}",
        )
        + "    ptt: {method: dtr, port: /dev/ttyS0}\n    squelch: {method: dsr, port: /dev/ttyS0}\n"
    )
    cfg = parse_config_text(text)
    assert cfg.radios["r2"].ptt is not None and cfg.radios["r2"].ptt.method == "dtr"


def test_bad_config_files_from_data_dir() -> None:
    for path in sorted(DATA.glob("*.yaml")):
        expected = path.with_suffix(".expected").read_text().strip().splitlines()
        with pytest.raises(ConfigError) as caught:
            load_config(path)
        relative = [line.replace(str(path), path.name) for line in str(caught.value).splitlines()]
        assert relative == expected, path.name


# --- sound cards, squelch details and announcements ------------------------------------------


def hardware_radio(settings: str) -> str:
    """HARDWARE with radio r2's control replaced by `settings` (lines at radio indentation)."""
    return edit(
        HARDWARE, "    control: {driver: icom, port: /dev/ttyUSB1, civ_address: 0x94}\n", settings
    )


def with_squelch(squelch: str) -> str:
    """MINIMAL with hardware radio us-1 keyed by RTS and the given squelch mapping."""
    return edit(
        MINIMAL,
        "  us-1: {talkgroup: us/ch4, simulated: {}}",
        "  us-1:\n    talkgroup: us/ch4\n    audio: {input: card, output: card}\n"
        f"    ptt: {{method: rts, port: /dev/ttyS0}}\n    squelch: {squelch}",
    )


def with_announcements(section: str) -> str:
    return MINIMAL + "announcements:\n" + section


def test_audio_defaults_and_settings() -> None:
    radio = parse_config_text(HARDWARE).radios["r1"]
    assert radio.audio is not None
    audio = radio.audio
    assert (audio.rate, audio.block_ms, audio.highpass, audio.auto_level, audio.target_dbfs) == (
        None,
        10,
        True,
        True,
        -18.0,
    )
    text = edit(
        HARDWARE,
        "audio: {input: card, output: card, channel: left}",
        "audio: {input: card, output: card, channel: left, rate: 48000, block_ms: 20,\n"
        "            highpass: false, auto_level: true, target_dbfs: -20}",
    )
    text = edit(
        text,
        "audio: {input: card, output: card, channel: right}",
        "audio: {input: card, output: card, channel: right, rate: 48000, block_ms: 20,\n"
        "            auto_level: false}",
    )
    cfg = parse_config_text(text)
    r1, r2 = cfg.radios["r1"].audio, cfg.radios["r2"].audio
    assert r1 is not None and r2 is not None
    assert (r1.rate, r1.block_ms, r1.highpass, r1.target_dbfs) == (48000, 20, False, -20.0)
    assert (r2.auto_level, r2.highpass) == (False, True)


@pytest.mark.parametrize("rate", [8000, 16000, 22050, 32000, 44100, 48000, 96000])
def test_every_device_rate_is_accepted(rate: int) -> None:
    text = edit(HARDWARE, "channel: left}", f"channel: left, rate: {rate}}}")
    audio = parse_config_text(text).radios["r1"].audio
    assert audio is not None and audio.rate == rate


def test_vox_defaults_and_settings() -> None:
    squelch = parse_config_text(with_squelch("{method: vox}")).radios["us-1"].squelch
    assert squelch is not None
    assert (squelch.vox_threshold_dbfs, squelch.vox_attack_ms, squelch.vox_hang_ms) == (
        -30.0,
        40,
        500,
    )
    text = with_squelch("{method: vox, vox_attack_ms: 0, vox_hang_ms: 1500, ctcss_hz: 100}")
    squelch = parse_config_text(text).radios["us-1"].squelch
    assert squelch is not None
    assert (squelch.vox_attack_ms, squelch.vox_hang_ms, squelch.ctcss_hz) == (0, 1500, 100.0)
    # Other methods carry no VOX settings.
    squelch = (
        parse_config_text(with_squelch("{method: cts, port: /dev/ttyS1}")).radios["us-1"].squelch
    )
    assert squelch is not None
    assert (squelch.vox_threshold_dbfs, squelch.vox_attack_ms, squelch.vox_hang_ms) == (
        None,
        None,
        None,
    )


def test_cm108_cos_input() -> None:
    # By default the COS comes from the VOLDN input (app_rpt's, and the DMK URI's wiring).
    text = hardware_radio("    ptt: {method: cm108}\n    squelch: {method: cm108}\n")
    squelch = parse_config_text(text).radios["r2"].squelch
    assert squelch is not None and (squelch.gpio, squelch.button) == (None, "voldn")
    text = hardware_radio("    ptt: {method: cm108}\n    squelch: {method: cm108, gpio: 2}\n")
    squelch = parse_config_text(text).radios["r2"].squelch
    assert squelch is not None and (squelch.gpio, squelch.button) == (2, None)
    text = hardware_radio(
        "    ptt: {method: rts, port: /dev/ttyS0}\n    squelch: {method: cm108, button: volup}\n"
    )
    squelch = parse_config_text(text).radios["r2"].squelch
    assert squelch is not None and (squelch.gpio, squelch.button) == (None, "volup")


def test_cm108_inputs_of_two_radios_on_one_card() -> None:
    # A stereo CM119 card: each radio its own PTT GPIO and COS input.
    text = edit(
        HARDWARE,
        "    control: {driver: kenwood, port: /dev/ttyUSB0}\n",
        "    ptt: {method: cm108, gpio: 3}\n    squelch: {method: cm108, gpio: 1}\n",
    )
    text = edit(
        text,
        "    control: {driver: icom, port: /dev/ttyUSB1, civ_address: 0x94}\n",
        "    ptt: {method: cm108, gpio: 4}\n    squelch: {method: cm108, gpio: 2}\n",
    )
    cfg = parse_config_text(text)
    assert [radio.squelch.gpio for radio in cfg.radios.values() if radio.squelch] == [1, 2]


def test_no_announcements_by_default() -> None:
    cfg = parse_config_text(MINIMAL)
    assert cfg.announcements is None
    assert cfg.patches["cross"].announce is True


def test_announcement_defaults() -> None:
    cfg = parse_config_text(with_announcements("  enabled: true\n"))
    section = cfg.announcements
    assert section is not None
    assert (section.enabled, section.level_dbfs, section.patch_id) == (True, -12.0, None)
    assert section.on_enable is not None and section.on_enable.builtin == "enable"
    assert section.on_disable is not None and section.on_disable.builtin == "disable"
    assert [path for path, _ in section.sources()] == [("on_enable",), ("on_disable",)]
    cfg = parse_config_text(with_announcements("  patch_id: {}\n  on_disable: null\n"))
    section = cfg.announcements
    assert section is not None and section.patch_id is not None
    assert (section.patch_id.every_s, section.patch_id.announcement.builtin) == (600.0, "id")
    assert section.on_disable is None
    assert [path for path, _ in section.sources()] == [
        ("on_enable",),
        ("patch_id", "announcement"),
    ]


def test_announcement_sources_and_levels() -> None:
    text = with_announcements(
        "  level_dbfs: -10\n"
        "  on_enable: {file: sounds/patch-on.mp3, level_dbfs: -6}\n"
        "  on_disable: {file: /srv/prompts/off.wav}\n"
        "  patch_id:\n"
        "    every_s: 900\n"
        "    announcement:\n"
        "      tones: [[800, 100], [0, 50], [1200.5, 100]]\n"
    )
    text = edit(
        text,
        "  cross: {members: [ca/tac, us/ch4]}",
        "  cross: {members: [ca/tac, us/ch4], announce: false}",
    )
    cfg = parse_config_text(text)
    section = cfg.announcements
    assert section is not None and section.on_enable is not None
    assert section.on_disable is not None and section.patch_id is not None
    on_enable, on_disable = section.on_enable, section.on_disable
    assert on_enable.file_path(Path("/etc/crosspatch")) == Path(
        "/etc/crosspatch/sounds/patch-on.mp3"
    )
    assert on_disable.file_path(Path("/etc/crosspatch")) == Path("/srv/prompts/off.wav")
    assert (section.level_of(on_enable), section.level_of(on_disable)) == (-6.0, -10.0)
    identify = section.patch_id.announcement
    assert identify.tones == [(800.0, 100), (0.0, 50), (1200.5, 100)]
    assert identify.file_path(Path("/etc")) is None
    assert section.patch_id.every_s == 900
    assert cfg.patches["cross"].announce is False


# (id, config text, text on the reported line, key path, part of the message)
AUDIO_CASES: list[tuple[str, str, str, str, str]] = [
    (
        "vox-attack-without-vox",
        with_squelch("{method: cts, port: /dev/ttyS1, vox_attack_ms: 20}"),
        "squelch:",
        "radios.us-1.squelch.vox_attack_ms",
        "vox_attack_ms applies only to method vox",
    ),
    (
        "vox-hang-without-vox",
        with_squelch("{method: dcd, port: /dev/ttyS1, vox_hang_ms: 300}"),
        "squelch:",
        "radios.us-1.squelch.vox_hang_ms",
        "vox_hang_ms applies only to method vox",
    ),
    (
        "vox-hang-negative",
        with_squelch("{method: vox, vox_hang_ms: -1}"),
        "squelch:",
        "radios.us-1.squelch.vox_hang_ms",
        "vox_hang_ms must be >= 0 (got -1)",
    ),
    (
        "vox-attack-too-long",
        with_squelch("\n      method: vox\n      vox_attack_ms: 5000"),
        "vox_attack_ms:",
        "radios.us-1.squelch.vox_attack_ms",
        "vox_attack_ms must be <= 2000 (got 5000)",
    ),
    (
        "ctcss-qualifier-on-simulated-radio",
        edit(
            MINIMAL,
            "  us-1: {talkgroup: us/ch4, simulated: {}}",
            "  us-1:\n    talkgroup: us/ch4\n    simulated: {}\n"
            "    squelch: {method: cts, port: /dev/ttyS0, ctcss_hz: 100}",
        ),
        "squelch:",
        "radios.us-1.squelch.ctcss_hz",
        "ctcss_hz needs the radio's audio",
    ),
    (
        "cos-gpio-without-cm108",
        with_squelch("{method: cat, gpio: 2}"),
        "squelch:",
        "radios.us-1.squelch.gpio",
        "gpio (the CM108's COS input) applies only to method cm108",
    ),
    (
        "cos-button-without-cm108",
        with_squelch("{method: vox, button: voldn}"),
        "squelch:",
        "radios.us-1.squelch.button",
        "button (the CM108's COS input) applies only to method cm108",
    ),
    (
        "cos-gpio-and-button",
        with_squelch("{method: cm108, gpio: 2, button: voldn}"),
        "squelch:",
        "radios.us-1.squelch.button",
        "the CM108's COS input is a GPIO or a button, not both",
    ),
    (
        "cos-button-did-you-mean",
        with_squelch("\n      method: cm108\n      button: voldown"),
        "button: voldown",
        "radios.us-1.squelch.button",
        "button must be one of volup, voldn (got 'voldown'); did you mean 'voldn'?",
    ),
    (
        "cos-gpio-out-of-range",
        with_squelch("{method: cm108, gpio: 9}"),
        "squelch:",
        "radios.us-1.squelch.gpio",
        "gpio must be <= 8 (got 9)",
    ),
    (
        "cos-gpio-is-ptt-gpio",
        hardware_radio("    ptt: {method: cm108}\n    squelch: {method: cm108, gpio: 3}\n"),
        "squelch: {method: cm108",
        "radios.r2.squelch.gpio",
        "GPIO 3 already keys this radio (ptt gpio); a GPIO is PTT or COS, not both",
    ),
    (
        "cos-input-of-two-radios",
        edit(
            hardware_radio(
                "    ptt: {method: cm108, gpio: 4}\n    squelch: {method: cm108, invert: true}\n"
            ),
            "    control: {driver: kenwood, port: /dev/ttyUSB0}\n",
            "    ptt: {method: cm108}\n    squelch: {method: cm108}\n",
        ),
        "squelch: {method: cm108, invert: true}",
        "radios.r2.squelch",  # the default button is not written: the path stops at squelch
        "CM108 button voldn of 'card' is already the COS input of radio 'r1'",
    ),
    (
        "cos-input-is-another-radios-ptt",
        edit(
            hardware_radio(
                "    ptt: {method: cm108, gpio: 4}\n    squelch: {method: cm108, gpio: 3}\n"
            ),
            "    control: {driver: kenwood, port: /dev/ttyUSB0}\n",
            "    ptt: {method: cm108}\n    squelch: {method: cm108, gpio: 1}\n",
        ),
        "gpio: 3}",
        "radios.r2.squelch.gpio",
        "CM108 GPIO 3 of 'card' keys radio 'r1'; it cannot also be this radio's COS input",
    ),
    (
        "device-rate-not-standard",
        edit(HARDWARE, "channel: left}", "channel: left, rate: 44000}"),
        "channel: left",
        "radios.r1.audio.rate",
        "rate must be one of 8000, 16000, 22050, 32000, 44100, 48000, 96000 Hz (got 44000)",
    ),
    (
        "block-ms-choice",
        edit(HARDWARE, "channel: left}", "channel: left, block_ms: 15}"),
        "channel: left",
        "radios.r1.audio.block_ms",
        "block_ms must be one of 5, 10, 20 (got 15)",
    ),
    (
        "target-above-full-scale",
        edit(HARDWARE, "channel: left}", "channel: left, target_dbfs: 3}"),
        "channel: left",
        "radios.r1.audio.target_dbfs",
        "target_dbfs must be <= 0 (got 3)",
    ),
    (
        "target-without-auto-level",
        edit(HARDWARE, "channel: left}", "channel: left, auto_level: false, target_dbfs: -20}"),
        "channel: left",
        "radios.r1.audio.target_dbfs",
        "target_dbfs applies only with auto_level: true",
    ),
    (
        "highpass-not-bool",
        edit(HARDWARE, "channel: left}", "channel: left, highpass: maybe}"),
        "channel: left",
        "radios.r1.audio.highpass",
        "highpass must be true or false (got 'maybe')",
    ),
    (
        "shared-card-two-rates",
        edit(
            edit(HARDWARE, "channel: left}", "channel: left, rate: 48000}"),
            "channel: right}",
            "channel: right, rate: 44100}",
        ),
        "channel: right",
        "radios.r2.audio.rate",
        "audio input 'card' is opened at 48000 Hz for radio 'r1', not 44100; radios sharing a "
        "sound card use one rate",
    ),
    (
        "shared-card-two-block-sizes",
        edit(HARDWARE, "channel: right}", "channel: right, block_ms: 20}"),
        "channel: right",
        "radios.r2.audio.block_ms",
        "runs in 10 ms blocks for radio 'r1', not 20; radios sharing a sound card use one block_ms",
    ),
    (
        "announcement-without-source",
        with_announcements("  on_enable: {level_dbfs: -6}\n"),
        "on_enable:",
        "announcements.on_enable",
        "an announcement needs one of file (a sound file), tones ([[hz, ms], ...]) or builtin",
    ),
    (
        "announcement-two-sources",
        with_announcements("  on_disable:\n    builtin: disable\n    file: off.wav\n"),
        "builtin: disable",
        "announcements.on_disable.builtin",
        "give one of file, tones and builtin, not both file and builtin",
    ),
    (
        "announcement-empty-file",
        with_announcements("  on_enable: {file: ''}\n"),
        "on_enable:",
        "announcements.on_enable.file",
        "file must name a sound file",
    ),
    (
        "announcement-builtin-did-you-mean",
        with_announcements("  on_enable:\n    builtin: enabled\n"),
        "builtin: enabled",
        "announcements.on_enable.builtin",
        "builtin must be one of enable, disable, id (got 'enabled'); did you mean 'enable'?",
    ),
    (
        "tone-below-voice-band",
        with_announcements("  on_enable:\n    tones:\n      - [1000, 100]\n      - [150, 100]\n"),
        "[150, 100]",
        "announcements.on_enable.tones.1",
        "a tone's hz must be 0 (a pause) or 300 to 3000 Hz, the voice band above every CTCSS "
        "tone (got 150)",
    ),
    (
        "tone-too-short",
        with_announcements("  on_enable:\n    tones:\n      - [1000, 10]\n"),
        "[1000, 10]",
        "announcements.on_enable.tones.0",
        "a tone's ms must be 20 to 2000 (got 10)",
    ),
    (
        "tone-not-a-pair",
        with_announcements("  on_enable:\n    tones:\n      - [1000, 100]\n      - 1000\n"),
        "- 1000",
        "announcements.on_enable.tones.1",
        "a tone is [hz, ms], like [1000, 100], with hz 0 for a pause (got 1000)",
    ),
    (
        "tone-ms-not-whole",
        with_announcements("  on_enable:\n    tones:\n      - [1000, 100.5]\n"),
        "[1000, 100.5]",
        "announcements.on_enable.tones.0.1",
        "must be a whole number (got 100.5)",
    ),
    (
        "tones-only-pauses",
        with_announcements("  on_enable:\n    tones: [[0, 100], [0, 200]]\n"),
        "tones:",
        "announcements.on_enable.tones",
        "tones has only pauses (hz 0): add a tone",
    ),
    (
        "tones-too-long",
        with_announcements("  on_enable:\n    tones: " + str([[1000, 2000]] * 16) + "\n"),
        "tones:",
        "announcements.on_enable.tones",
        "tones last 32 s; an announcement lasts at most 30 s",
    ),
    (
        "tones-empty",
        with_announcements("  on_enable:\n    tones: []\n"),
        "tones:",
        "announcements.on_enable.tones",
        "tones must have at least 1 item(s) (got 0)",
    ),
    (
        "announcement-level-above-full-scale",
        with_announcements("  level_dbfs: 2\n"),
        "level_dbfs: 2",
        "announcements.level_dbfs",
        "level_dbfs must be <= 0 (got 2)",
    ),
    (
        "patch-id-too-often",
        with_announcements("  patch_id: {every_s: 30}\n"),
        "patch_id:",
        "announcements.patch_id.every_s",
        "every_s must be >= 60 (got 30)",
    ),
    (
        "patch-id-too-rare",
        with_announcements("  patch_id:\n    every_s: 7200\n"),
        "every_s: 7200",
        "announcements.patch_id.every_s",
        "every_s must be <= 3600 (got 7200)",
    ),
    (
        "announcements-unknown-key",
        with_announcements("  on_enabled: {builtin: enable}\n"),
        "on_enabled:",
        "announcements.on_enabled",
        "unknown key 'on_enabled'; did you mean 'on_enable'?",
    ),
    (
        "patch-announce-not-bool",
        edit(MINIMAL, "{members: [ca/tac, us/ch4]}", "{members: [ca/tac, us/ch4], announce: loud}"),
        "cross:",
        "patches.cross.announce",
        "announce must be true or false (got 'loud')",
    ),
]


@pytest.mark.parametrize(
    ("text", "line_text", "path", "message"),
    [case[1:] for case in AUDIO_CASES],
    ids=[case[0] for case in AUDIO_CASES],
)
def test_located_audio_and_announcement_problem(
    text: str, line_text: str, path: str, message: str
) -> None:
    test_located_problem(text, line_text, path, message)


def test_two_links_cannot_listen_on_one_address() -> None:
    # `run` could bind only the first; a wildcard address takes the port on every address.
    text = edit(
        POOLS,
        "  net: {protocol: usrp, local: 127.0.0.1:34001",
        "  net0: {protocol: usrp, local: 0.0.0.0:34001, remote: 127.0.0.1:32002, "
        "talkgroup: us/net}\n  net: {protocol: usrp, local: 127.0.0.1:34001",
    )
    issue = only_issue(text)
    assert issue.path == "links.net.local"
    assert issue.message == (
        "local address 127.0.0.1:34001 is taken by link 'net0' (0.0.0.0:34001); each link "
        "listens on a port of its own"
    )
    # Another port, or another address of the same port, is fine.
    assert parse_config_text(text.replace("local: 0.0.0.0:34001", "local: 0.0.0.0:34002"))
    assert parse_config_text(text.replace("local: 0.0.0.0:34001", "local: 127.0.0.2:34001"))


def test_a_control_socket_path_too_long_to_bind_is_refused_by_check() -> None:
    long_dir = "/var/lib/" + "x" * 100
    issue = only_issue(
        edit(MINIMAL, "gateway: {id: test}", f"gateway: {{id: test, state_dir: {long_dir}}}")
    )
    assert issue.path == "gateway.state_dir"
    assert issue.message == (
        f"the control socket {long_dir}/control.sock is 122 bytes long; a Unix socket path has "
        "at most 107: give gateway.control_socket a shorter path"
    )
    short = f"gateway: {{id: test, state_dir: {long_dir}, control_socket: /run/crosspatch.sock}}"
    assert parse_config_text(edit(MINIMAL, "gateway: {id: test}", short))


def test_check_refuses_a_link_on_frames_run_could_not_send() -> None:
    # `run` drives links only with 20 ms frames: `check` says so first, at the link.
    issue = only_issue(edit(POOLS, "gateway: {id: test}", "gateway: {id: test, frame_ms: 40}"))
    assert issue.path == "links.net"
    assert issue.message == (
        "link 'net': USRP links send 20 ms packets and need gateway.frame_ms 20 (it is 40)"
    )


def test_gateway_site_is_an_optional_display_name() -> None:
    assert parse_config_text(MINIMAL, filename="site.yaml").gateway.site is None
    named = edit(
        MINIMAL, "gateway: {id: test}", "gateway: {id: test, site: Peace Arch / Pacific Hwy}"
    )
    assert parse_config_text(named, filename="site.yaml").gateway.site == "Peace Arch / Pacific Hwy"
    assert load_config(ROOT / "config" / "example.yaml").gateway.site == (
        "Peace Arch / Pacific Highway"
    )
    for bad, why in (
        ("''", "got 0 characters"),
        ("'" + "x" * 101 + "'", "got 101 characters"),
        ('"two\\nlines"', "control character"),
    ):
        text = edit(MINIMAL, "gateway: {id: test}", f"gateway: {{id: test, site: {bad}}}")
        issue = only_issue(text)
        assert issue.path == "gateway.site" and issue.line == 1, issue
        assert (
            "site must be 1 to 100 printable characters" in issue.message and why in issue.message
        )
