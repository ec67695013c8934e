"""`crosspatch patch ... --mqtt`: dispatchers switch patches through a real mosquitto (password
file and the documented ACL) on real daemons, and read what the control socket would print."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.cli import run
from tests.support.daemon import Daemon
from tests.support.daemon_mqtt import MqttSite
from tests.support.mqtt_env import Broker, Watcher, free_port

USERS = {"gateway": "gw-secret", "alice": "a-secret", "bob": "b-secret", "carol": "c-secret"}
# README's ACL (Broker set-up), with one login shared by the test's gateways.
ACL = """\
user gateway
topic readwrite crosspatch/#

pattern write crosspatch/+/cmd/%u
pattern read crosspatch/+/reply/%u/#
pattern read crosspatch/+/reply/%u
pattern read crosspatch/+/status
pattern read crosspatch/+/ports/#
pattern read crosspatch/+/patches/#
pattern read crosspatch/+/calls
pattern read crosspatch/+/events
"""


@pytest.fixture
def secured() -> Iterator[Broker]:
    with Broker(users=USERS, acl=ACL) as running:
        yield running


@pytest.fixture
def passwords(tmp_path: Path) -> dict[str, Path]:
    files = {}
    for user, password in USERS.items():
        files[user] = tmp_path / f"{user}.password"
        files[user].write_text(password + "\n")
    return files


def patch(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = run(["patch", *args])
    out, err = capsys.readouterr()
    return code, out, err


def as_user(broker: Broker, passwords: dict[str, Path], user: str) -> list[str]:
    return ["--mqtt", broker.url, "--username", user, "--password-file", str(passwords[user])]


def start_gateway(
    tmp_path: Path, broker: Broker, passwords: dict[str, Path], gateway: str, protocol: str
) -> tuple[MqttSite, Daemon]:
    (tmp_path / gateway).mkdir()
    site = MqttSite(tmp_path / gateway)
    site.write(
        border_enabled=False,
        mqtt=(
            f"{{url: '{broker.url}', username: gateway, password_file: '{passwords['gateway']}', "
            f"protocol: '{protocol}'}}"
        ),
    )
    site.config.write_text(site.config.read_text().replace("id: mq-gw", f"id: {gateway}"))
    daemon = site.start()
    site.wait_ready(daemon)
    daemon.wait_for(lambda: site.status()["mqtt"]["connected"])
    return site, daemon


def test_dispatchers_switch_a_cross_border_patch_through_the_broker(
    tmp_path: Path,
    secured: Broker,
    passwords: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Two gateways: one speaks MQTT 5 (replies on the response topic, with correlation data),
    # the other MQTT 3.1.1 (replies on the user's reply topic, matched by the command's id).
    sites = []
    try:
        west, west_daemon = start_gateway(tmp_path, secured, passwords, "west", "5")
        sites.append(west)
        east, east_daemon = start_gateway(tmp_path, secured, passwords, "east", "3.1.1")
        sites.append(east)
        alice = as_user(secured, passwords, "alice")
        bob = as_user(secured, passwords, "bob")
        carol = as_user(secured, passwords, "carol")

        for site, gw in ((west, "west"), (east, "east")):
            by_socket = site.cli("patch", "list")
            assert by_socket.returncode == 0, by_socket.stderr
            assert patch(capsys, "list", *alice, "--gateway", gw) == (0, by_socket.stdout, "")
            by_socket = site.cli("patch", "list", "--json")
            assert patch(capsys, "list", "--json", *alice, "--gateway", gw) == (
                0,
                by_socket.stdout,
                "",
            )

        # Both online and none named: `list` shows each gateway's patches under its id ...
        code, out, err = patch(capsys, "list", *carol)
        assert (code, err) == (0, "")
        lines = out.splitlines()
        assert lines[0] == "east:" and "west:" in lines
        west_lines = west.cli("patch", "list").stdout.splitlines()
        assert lines[lines.index("west:") + 1 :] == [f"  {line}" for line in west_lines]
        # ... and an action asks which one.
        code, out, err = patch(capsys, "enable", "border-tac", *alice)
        assert code == 1 and out == ""
        assert err == (
            "crosspatch patch: several gateways are online (east, west): name one with --gateway\n"
        )

        for gw in ("west", "east"):
            on = ["--gateway", gw]
            assert patch(capsys, "enable", "border-tac", *alice, *on) == (
                0,
                "'border-tac' pending: waiting for approval by usbp\n",
                "",
            )
            # A dispatcher of another agency is refused with the gateway's reason.
            code, out, err = patch(capsys, "approve", "border-tac", *carol, *on)
            assert code == 1 and out == ""
            assert err.startswith("crosspatch patch: ") and err.count("\n") == 1
            assert "wcso" in err or "carol" in err, err
            assert patch(capsys, "deny", "border-tac", *bob, *on) == (
                0,
                "request for 'border-tac' denied\n",
                "",
            )
            assert patch(capsys, "enable", "border-tac", *alice, *on)[0] == 0
            assert patch(capsys, "approve", "border-tac", *bob, *on) == (
                0,
                "'border-tac' enabled\n",
                "",
            )
        assert "enabled" in west.cli("patch", "list").stdout.splitlines()[0]
        by_socket = east.cli("patch", "list")
        assert patch(capsys, "list", *bob, "--gateway", "east") == (0, by_socket.stdout, "")
        assert patch(capsys, "disable", "border-tac", *bob, "--gateway", "west") == (
            0,
            "'border-tac' disabled\n",
            "",
        )

        # A gateway killed (its last will says offline) is named as such.
        west_daemon.proc.kill()
        west_daemon.proc.wait(10)
        watcher = Watcher(secured, "crosspatch/west/status", username="bob", password="b-secret")
        watcher.wait_for(
            lambda: [m for m in watcher.on("crosspatch/west/status") if m.payload == b"offline"],
            timeout=30,
        )
        watcher.close()
        code, out, err = patch(capsys, "enable", "county", *carol, "--gateway", "west")
        assert (code, out, err) == (1, "", "crosspatch patch: gateway 'west' is offline\n")
        # The one gateway left online is found without --gateway.
        by_socket = east.cli("patch", "list")
        assert patch(capsys, "list", *carol) == (0, by_socket.stdout, "")
        assert east_daemon.stop() == 0
    finally:
        for site in sites:
            site.close()


def test_a_gateway_that_does_not_answer_is_a_timeout(
    secured: Broker, passwords: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    # Two gateways say online (retained) but none runs: nobody answers.
    gateway = Watcher(secured, username="gateway", password="gw-secret")
    for gw in ("ghost", "phantom"):
        info = gateway.client.publish(f"crosspatch/{gw}/status", "online", qos=1, retain=True)
        info.wait_for_publish(10)
    alice = as_user(secured, passwords, "alice")
    code, out, err = patch(capsys, "enable", "border-tac", *alice)
    assert (code, out) == (1, "")
    assert "several gateways are online (ghost, phantom)" in err
    code, out, err = patch(
        capsys, "enable", "border-tac", *alice, "--gateway", "ghost", "--timeout", "0.5"
    )
    assert (code, out) == (1, "")
    assert err == (
        "crosspatch patch: no reply from gateway 'ghost' within 0.5 s; the command may still "
        "have been carried out (look with `crosspatch patch list`)\n"
    )
    code, out, err = patch(capsys, "list", *alice, "--timeout", "0.5")
    assert code == 1 and err == ""
    assert out.splitlines()[0] == "ghost:" and "  no reply from gateway 'ghost'" in out
    code, out, err = patch(capsys, "list", *alice, "--gateway", "nowhere")
    assert code == 1
    assert err.startswith("crosspatch patch: no gateway 'nowhere' on the broker at mqtt://")
    gateway.close()


def test_login_and_broker_errors_are_one_line(
    tmp_path: Path,
    secured: Broker,
    broker: Broker,
    passwords: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    wrong = tmp_path / "wrong.password"
    wrong.write_text("not-it\n")
    cases = [
        (
            ["--mqtt", secured.url, "--username", "alice", "--password-file", str(wrong)],
            f"the broker at {secured.url} refused the login of 'alice': check --username and "
            "--password-file",
        ),
        (
            ["--mqtt", secured.url, "--username", "alice", "--password-file", "/nonexistent/pw"],
            "--password-file /nonexistent/pw: No such file or directory",
        ),
        (
            ["--mqtt", f"mqtt://127.0.0.1:{free_port()}", "--username", "alice"],
            "cannot reach the broker at mqtt://127.0.0.1:",
        ),
        (["--mqtt", broker.url, "--username", "alice"], "no gateway is online on the broker at"),
        (["--mqtt", broker.url], "--mqtt needs --username"),
        (["--mqtt", "http://x", "--username", "a"], "--mqtt: url must be mqtt://host[:port]"),
        (
            ["--mqtt", broker.url, "--username", "a", "--topic-prefix", "a/#"],
            "--topic-prefix: topic_prefix may not contain the wildcards",
        ),
        (["--mqtt", broker.url, "--username", "a", "--gateway", "a b"], "--gateway must be"),
    ]
    for options, error in cases:
        code, out, err = patch(capsys, "list", *options)
        assert (code, out) == (1, ""), (options, err)
        assert err.startswith(f"crosspatch patch: {error}"), (options, err)
        assert err.count("\n") == 1 and "Traceback" not in err
    code, out, err = patch(capsys, "list", "--username", "a", "--gateway", "b")
    assert (code, err) == (
        1,
        "crosspatch patch: --username, --gateway go with --mqtt URL (the broker to go through)\n",
    )
    code, out, err = patch(capsys, "enable", "--mqtt", broker.url, "--username", "a")
    assert (code, err) == (1, "crosspatch patch: patch enable needs the name of a patch\n")


def test_a_stand_in_gateway_of_either_protocol_is_answered_in_json(
    tmp_path: Path,
    secured: Broker,
    passwords: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    # A stand-in gateway, as an integrator would write one from docs/mqtt-api.yaml: it answers
    # on the MQTT 5 response topic when there is one, else on reply/USER with the command's id.
    gateway = Watcher(secured, "crosspatch/+/cmd/+", username="gateway", password="gw-secret")
    gateway.client.publish("crosspatch/stub/status", "online", qos=1, retain=True).wait_for_publish(
        10
    )
    patches = [
        {"patch": "p", "state": "enabled", "floor": "first", "members": [], "approved_by": []}
    ]
    protocols: list[str] = []

    def answer(client: object, userdata: object, msg: object) -> None:
        props = getattr(msg, "properties", None)
        topic: str = msg.topic  # type: ignore[attr-defined]
        body = json.loads(msg.payload)  # type: ignore[attr-defined]
        reply = json.dumps({"id": body["id"], "ok": True, "result": {"patches": patches}})
        response = getattr(props, "ResponseTopic", None)
        protocols.append("5" if response else "3.1.1")
        own = topic.replace("/cmd/", "/reply/")
        gateway.client.publish(response or own, reply, qos=1, properties=props)

    gateway.client.on_message = answer
    bob = as_user(secured, passwords, "bob")
    code, out, err = patch(capsys, "list", "--json", *bob)
    assert (code, err) == (0, "")
    assert json.loads(out) == patches
    # The protocol comes from a config's mqtt: section.
    config = MqttSite(tmp_path)
    config.write(mqtt=f"{{url: '{secured.url}', protocol: '3.1.1'}}")
    config.close()
    code, out, err = patch(capsys, "list", "--json", *bob, "--config", str(config.config))
    assert (code, err) == (0, "")
    assert json.loads(out) == patches
    assert protocols == ["5", "3.1.1"]
    gateway.close()
