"""The `metrics:` section: off unless given, a host:port to serve Prometheus metrics on, strict
keys, and each mistake one located line (from `crosspatch check` as from the loader)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gateway.config import ConfigError, config_json_schema, config_summary, parse_config_text

SITE = """\
gateway: {id: test}
agencies:
  ca:
    name: Canadian agency
    country: CA
    talkgroups:
      tac: {rx_mhz: 142.47}
  us:
    name: US agency
    country: US
    talkgroups:
      ch4: {rx_mhz: 163.1}
radios:
  ca-1: {talkgroup: ca/tac, simulated: {}}
  us-1: {talkgroup: us/ch4, simulated: {}}
patches:
  cross: {members: [ca/tac, us/ch4]}
"""


def test_metrics_are_off_unless_the_section_is_given() -> None:
    cfg = parse_config_text(SITE)
    assert cfg.metrics is None
    assert "metrics" not in config_summary(cfg)


def test_an_empty_section_serves_on_loopback_at_9464() -> None:
    cfg = parse_config_text(SITE + "metrics: {}\n")
    assert cfg.metrics is not None
    assert (cfg.metrics.listen, cfg.metrics.host, cfg.metrics.port) == (
        "127.0.0.1:9464",
        "127.0.0.1",
        9464,
    )
    assert config_summary(cfg).endswith(", metrics on 127.0.0.1:9464")


@pytest.mark.parametrize(
    ("listen", "host", "port"),
    [("0.0.0.0:9100", "0.0.0.0", 9100), ("'[::1]:9464'", "::1", 9464)],
)
def test_an_address_is_host_and_port(listen: str, host: str, port: int) -> None:
    cfg = parse_config_text(SITE + f"metrics: {{listen: {listen}}}\n")
    assert cfg.metrics is not None and (cfg.metrics.host, cfg.metrics.port) == (host, port)


@pytest.mark.parametrize(
    ("section", "path", "message"),
    [
        ("metrics: {listen: localhost}", "metrics.listen", "is not host:port"),
        ("metrics: {listen: '127.0.0.1:70000'}", "metrics.listen", "between 1 and 65535"),
        ("metrics: {listen: 9464}", "metrics.listen", "must be text (got 9464)"),
        ("metrics: {port: 9464}", "metrics.port", "unknown key 'port'"),
        ("metrics: {listen: '127.0.0.1:9464', path: /m}", "metrics.path", "unknown key 'path'"),
        ("metrics: on", "metrics", "mapping"),
        ("metric: {}", "metric", "did you mean 'metrics'?"),
    ],
)
def test_each_mistake_is_one_line_at_its_key(section: str, path: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config_text(SITE + section + "\n", filename="site.yaml")
    (issue,) = caught.value.issues
    assert issue.path == path and message in issue.message, str(issue)
    assert issue.line == SITE.count("\n") + 1
    assert "\n" not in str(issue)


def test_the_schema_describes_the_section() -> None:
    schema = config_json_schema()
    assert "metrics" in schema["properties"]
    listen = schema["$defs"]["MetricsSettings"]["properties"]["listen"]
    assert listen["format"] == "host:port" and listen["default"] == "127.0.0.1:9464"


def test_check_shows_the_section_or_the_mistake(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(SITE + "metrics: {listen: '127.0.0.1:9100'}\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text(SITE + "metrics: {listen: 'metrics.example:'}\n")
    ok = _check(good)
    assert ok.returncode == 0 and "metrics on 127.0.0.1:9100" in ok.stdout, ok.stderr
    refused = _check(bad)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    (line,) = refused.stderr.strip().splitlines()
    assert line.startswith(f"{bad}:{SITE.count(chr(10)) + 1}: metrics.listen: "), line


def _check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", "check", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
