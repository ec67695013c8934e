"""`crosspatch simulate` end to end: the WAVs and events it writes, consent, and determinism."""

from __future__ import annotations

import json
import wave
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from gateway.cli import run
from tests.support.sites import SIMULATED_SITE as SITE

SCENARIO = """\
start: "2026-01-01T00:00:00Z"
duration_s: 6
events:
  - {at: 0.0, command: enable, patch: border-tac, as: alice}
  - {at: 0.5, command: approve, patch: border-tac, as: bob}
  - {at: 1.0, port: rcmp-1, receive: {tone_hz: 1000, level_dbfs: -12, seconds: 2}}
"""

RATE = 8000


def write_case(tmp_path: Path, scenario: str = SCENARIO, site: str = SITE) -> tuple[Path, Path]:
    config = tmp_path / "site.yaml"
    config.write_text(site)
    scenario_file = tmp_path / "scenario.yaml"
    scenario_file.write_text(scenario)
    return config, scenario_file


def simulate(tmp_path: Path, scenario: str = SCENARIO, out: str = "out") -> Path:
    config, scenario_file = write_case(tmp_path, scenario)
    out_dir = tmp_path / out
    assert run(["simulate", str(config), str(scenario_file), "--out", str(out_dir)]) == 0
    return out_dir


def read_events(out_dir: Path) -> list[dict[str, Any]]:
    lines = (out_dir / "events.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def read_tx(out_dir: Path, port: str) -> npt.NDArray[np.float64]:
    with wave.open(str(out_dir / "tx" / f"{port}.wav"), "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, RATE)
        data = wav.readframes(wav.getnframes())
    return np.frombuffer(data, dtype=np.int16).astype(np.float64) / 32768.0


def tone_level(samples: npt.NDArray[np.float64], hz: float) -> float:
    """Amplitude of the `hz` component (a single-bin DFT over the whole stretch)."""
    if samples.size == 0:
        return 0.0
    t = np.arange(samples.size) / RATE
    return float(2 * abs(np.dot(samples, np.exp(-2j * np.pi * hz * t))) / samples.size)


def test_tone_reaches_the_patched_port_after_tx_delay_and_nowhere_else(tmp_path: Path) -> None:
    out = simulate(tmp_path)
    usbp = read_tx(out, "usbp-1")
    assert usbp.size == 6 * RATE  # the whole duration, silence where unkeyed

    first = int(np.flatnonzero(np.abs(usbp) > 1e-3)[0])
    last = int(np.flatnonzero(np.abs(usbp) > 1e-3)[-1])
    # The tone starts at 1.0 s and is delayed by tx_delay_ms = 150 ms; it lasts 2 s.
    assert abs(first - round(1.15 * RATE)) <= 2
    assert abs(last - round(3.15 * RATE)) <= 4  # the tone's 5 ms fade-out ends below 1e-3
    level = tone_level(usbp[round(1.3 * RATE) : round(3.0 * RATE)], 1000)
    assert level == pytest.approx(10 ** (-12 / 20), rel=0.02)
    assert not usbp[: round(1.15 * RATE) - 2].any()

    # Nobody hears themselves, and a port outside the patch hears nothing.
    assert not read_tx(out, "rcmp-1").any()
    assert not read_tx(out, "sheriff-1").any()


def test_events_tell_the_whole_story_in_order(tmp_path: Path) -> None:
    events = read_events(simulate(tmp_path))
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert {e["gateway"] for e in events} == {"peace-arch"}

    patch = [(e["state"], e["by"]) for e in events if e["type"] == "patch"]
    assert patch == [("pending", "alice"), ("enabled", "bob")]
    (start,) = [e for e in events if e["type"] == "call_start"]
    assert start["time"] == "2026-01-01T00:00:01.000Z"
    assert start["source"] == {"port": "rcmp-1", "talkgroup": "rcmp/tac2", "agency": "rcmp"}
    assert start["destinations"] == [{"port": "usbp-1", "talkgroup": "usbp/ch4", "agency": "usbp"}]
    (end,) = [e for e in events if e["type"] == "call_end"]
    assert end["call_id"] == start["call_id"]
    assert end["reason"] == "carrier_drop" and end["duration_s"] == 2.0
    assert end["peak_dbfs"] == pytest.approx(-12.0, abs=0.2)

    ptt = [(e["time"], e["on"]) for e in events if e["type"] == "ptt" and e["port"] == "usbp-1"]
    # Keyed with the carrier; released after the delayed audio (150 ms) plus hang (800 ms).
    assert ptt == [("2026-01-01T00:00:01.000Z", True), ("2026-01-01T00:00:03.960Z", False)]
    audits = [e for e in events if e["type"] == "audit"]
    assert [(a["principal"], a["command"], a["result"]) for a in audits] == [
        ("alice", "patch.enable", "accepted"),
        ("bob", "patch.approve", "accepted"),
    ]


def test_without_the_second_agencys_consent_nothing_is_patched(tmp_path: Path) -> None:
    scenario = SCENARIO.replace("  - {at: 0.5, command: approve, patch: border-tac, as: bob}\n", "")
    out = simulate(tmp_path, scenario)
    assert not read_tx(out, "usbp-1").any()
    events = read_events(out)
    assert [e["state"] for e in events if e["type"] == "patch"] == ["pending"]
    assert not [e for e in events if e["type"] == "call_start"]


def test_refused_command_is_audited_and_the_run_goes_on(tmp_path: Path) -> None:
    scenario = SCENARIO.replace(
        "as: bob}", "as: bob}\n  - {at: 0.6, command: approve, patch: county, as: alice}"
    )
    out = simulate(tmp_path, scenario)
    refused = [e for e in read_events(out) if e["type"] == "audit" and e["result"] == "refused"]
    assert len(refused) == 1 and refused[0]["principal"] == "alice"
    assert "rcmp" in refused[0]["reason"]
    assert read_tx(out, "usbp-1").any()


def test_stuck_carrier_times_out_and_is_locked_out(tmp_path: Path) -> None:
    scenario = SCENARIO.replace("duration_s: 6", "duration_s: 20").replace(
        "receive: {tone_hz: 1000, level_dbfs: -12, seconds: 2}", "carrier: {seconds: 15}"
    )
    events = read_events(simulate(tmp_path, scenario))
    alarm = [e for e in events if e["type"] == "alarm" and e["kind"] == "timeout"]
    assert [(a["port"], a["time"]) for a in alarm] == [("usbp-1", "2026-01-01T00:00:11.000Z")]
    (end,) = [e for e in events if e["type"] == "call_end"]
    assert end["reason"] == "timeout" and end["peak_dbfs"] == -120.0
    ptt = [(e["on"], e["reason"]) for e in events if e["type"] == "ptt"]
    assert ptt == [(True, "call"), (False, "timeout")]  # never keyed again while stuck


def test_calls_in_progress_end_with_shutdown_at_the_end(tmp_path: Path) -> None:
    scenario = SCENARIO.replace("seconds: 2}", "seconds: 30}")
    events = read_events(simulate(tmp_path, scenario))
    (end,) = [e for e in events if e["type"] == "call_end"]
    assert end["reason"] == "shutdown" and end["end"] == "2026-01-01T00:00:06.000Z"
    assert events[-1]["type"] == "ptt" and events[-1]["on"] is False


def test_same_inputs_give_byte_identical_outputs(tmp_path: Path) -> None:
    site = SITE.replace(
        "    simulated: {}\n", "    simulated: {traffic: {every_s: 3, talk_s: 1}}\n", 1
    )
    config, scenario_file = write_case(tmp_path, site=site)
    outs = []
    for name in ("a", "b"):
        out = tmp_path / name
        assert run(["simulate", str(config), str(scenario_file), "--out", str(out)]) == 0
        outs.append(out)
    files = sorted(p.relative_to(outs[0]) for p in outs[0].rglob("*") if p.is_file())
    assert Path("events.jsonl") in files and len(files) == 4
    for rel in files:
        assert (outs[0] / rel).read_bytes() == (outs[1] / rel).read_bytes(), rel
    # Generated traffic really ran (and was patched) in both.
    assert sum(e["type"] == "call_start" for e in read_events(outs[0])) >= 2


def test_wav_input_is_patched(tmp_path: Path) -> None:
    from scipy.io import wavfile

    t = np.arange(int(0.5 * 16000)) / 16000
    wavfile.write(
        tmp_path / "voice.wav", 16000, (0.25 * np.sin(2 * np.pi * 700 * t) * 32767).astype(np.int16)
    )
    scenario = SCENARIO.replace(
        "receive: {tone_hz: 1000, level_dbfs: -12, seconds: 2}", "receive: {wav: voice.wav}"
    )
    usbp = read_tx(simulate(tmp_path, scenario), "usbp-1")
    heard = usbp[round(1.2 * RATE) : round(1.6 * RATE)]
    assert tone_level(heard, 700) == pytest.approx(0.25, rel=0.05)


def test_bad_scenario_is_one_located_line_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, scenario_file = write_case(tmp_path, SCENARIO.replace("port: rcmp-1", "port: rcmp-9"))
    assert run(["simulate", str(config), str(scenario_file), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    (line,) = err.strip().splitlines()
    assert line.startswith(f"{scenario_file}:6:") and "rcmp-9" in line


def test_out_that_is_a_file_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config, scenario_file = write_case(tmp_path)
    (tmp_path / "taken").write_text("x")
    assert run(["simulate", str(config), str(scenario_file), "--out", str(tmp_path / "taken")]) == 1
    assert "not a directory" in capsys.readouterr().err


def test_unwritable_out_dir_is_one_line_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, scenario_file = write_case(tmp_path)
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where a directory is needed")
    out = blocked / "out"
    assert run(["simulate", str(config), str(scenario_file), "--out", str(out)]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("crosspatch simulate: ") and "blocked" in line


def test_truncated_wav_is_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from scipy.io import wavfile

    wavfile.write(tmp_path / "voice.wav", 8000, np.zeros(8000, dtype=np.int16))
    data = (tmp_path / "voice.wav").read_bytes()
    (tmp_path / "voice.wav").write_bytes(data[:60])  # header claims more data than there is
    scenario = SCENARIO.replace(
        "receive: {tone_hz: 1000, level_dbfs: -12, seconds: 2}", "receive: {wav: voice.wav}"
    )
    config, scenario_file = write_case(tmp_path, scenario)
    code = run(["simulate", str(config), str(scenario_file), "--out", str(tmp_path / "o")])
    assert code == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "voice.wav" in line and "damaged WAV file" in line


POOL_SITE = """\
gateway: {id: pool-site, frame_ms: 20}
agencies:
  rcmp:
    name: Royal Canadian Mounted Police
    country: CA
    talkgroups:
      tac2: {rx_mhz: 142.470}
  usbp:
    name: U.S. Border Patrol
    country: US
    talkgroups:
      ch4: {rx_mhz: 163.100}
      ch5: {rx_mhz: 163.300}
      ch6: {rx_mhz: 163.500}
radios:
  rcmp-1: {talkgroup: rcmp/tac2, simulated: {}, timing: {tx_delay_ms: 0, hang_ms: 200}}
  vhf-a: {pool: vhf, bands_mhz: [[136, 174]], simulated: {}, timing: {tx_delay_ms: 0}}
  vhf-b: {pool: vhf, bands_mhz: [[136, 174]], simulated: {}, timing: {tx_delay_ms: 0}}
patches:
  one: {members: [usbp/ch4, usbp/ch5]}
  two: {members: [rcmp/tac2, usbp/ch6]}
access:
  technicians: [tech1]
"""

POOL_SCENARIO = """\
duration_s: 5
events:
  - {at: 0.0, command: enable, patch: one}
  - {at: 0.1, command: enable, patch: two}
  - {at: 0.5, port: rcmp-1, receive: {tone_hz: 1000, level_dbfs: -12, seconds: 1}}
  - {at: 2.0, command: disable, patch: one}
  - {at: 2.1, command: enable, patch: two}
  - {at: 3.0, port: rcmp-1, receive: {tone_hz: 1000, level_dbfs: -12, seconds: 1}}
"""


def test_pool_radios_are_taken_by_patches_and_freed_by_disable(tmp_path: Path) -> None:
    config, scenario_file = write_case(tmp_path, POOL_SCENARIO, POOL_SITE)
    out = tmp_path / "out"
    assert run(["simulate", str(config), str(scenario_file), "--out", str(out)]) == 0
    events = read_events(out)
    audits = [
        (e["args"]["patch"], e["result"], e["reason"]) for e in events if e["type"] == "audit"
    ]
    assert audits[0][:2] == ("one", "accepted")  # both pool radios: usbp/ch4 and usbp/ch5
    assert audits[1][:2] == ("two", "refused")
    assert "no free pool radio can serve 'usbp/ch6'" in audits[1][2]
    assert "vhf-a (in patch 'one')" in audits[1][2]
    assert audits[3][:2] == ("two", "accepted")
    calls = [e for e in events if e["type"] == "call_start"]
    assert len(calls) == 1  # the first tone had nowhere to go
    assert calls[0]["destinations"] == [
        {"port": "vhf-a", "talkgroup": "usbp/ch6", "agency": "usbp"}
    ]
    tx = read_tx(out, "vhf-a")
    assert not tx[: 3 * RATE].any()
    assert tone_level(tx[round(3.1 * RATE) : round(3.9 * RATE)], 1000) == pytest.approx(
        10 ** (-12 / 20), rel=0.02
    )


ANNOUNCE_SITE = SITE.replace(
    "access:",
    "announcements:\n  on_enable: {tones: [[1000, 200]]}\n  on_disable: {tones: [[500, 200]]}\n"
    "  patch_id: {every_s: 60, announcement: {tones: [[800, 100]]}}\naccess:",
).replace(
    "    members: [usbp/ch4, sheriff/ops]",
    "    members: [usbp/ch4, sheriff/ops]\n    announce: false",
)

ANNOUNCE_SCENARIO = """\
duration_s: 130
events:
  - {at: 0.0, command: enable, patch: border-tac, as: tech1}
  - {at: 125.0, command: disable, patch: border-tac, as: tech1}
  - {at: 126.0, command: enable, patch: county, as: tech1}
"""


def test_patches_are_announced_on_enable_disable_and_identified(tmp_path: Path) -> None:
    config, scenario_file = write_case(tmp_path, ANNOUNCE_SCENARIO, ANNOUNCE_SITE)
    out = tmp_path / "out"
    assert run(["simulate", str(config), str(scenario_file), "--out", str(out)]) == 0
    rcmp = read_tx(out, "rcmp-1")
    # The enable prompt (1 kHz, 200 ms) after rcmp-1's 150 ms key-up delay, then silence.
    first = int(np.flatnonzero(np.abs(rcmp) > 1e-3)[0])
    assert abs(first - round(0.15 * RATE)) <= 2
    assert tone_level(rcmp[first + 200 : first + 1400], 1000) > 0.1
    # The patch ID (800 Hz) every 60 s, and the disable prompt (500 Hz) at 125 s.
    for at in (60, 120):
        start = round((at + 0.15) * RATE)
        assert tone_level(rcmp[start : start + 800], 800) > 0.1, at
    start = round(125.15 * RATE)
    assert tone_level(rcmp[start : start + 1600], 500) > 0.1
    ptt = [e for e in read_events(out) if e["type"] == "ptt" and e["on"]]
    assert {e["reason"] for e in ptt} == {"announcement"}
    # `announce: false`: the county patch, enabled at 126 s, is not announced.
    assert [e["state"] for e in read_events(out) if e["type"] == "patch"][-1] == "enabled"
    assert not read_tx(out, "sheriff-1").any()
