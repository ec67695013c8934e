"""The `crosspatch` command line. `main` is thin; `run(argv)` is what tests call.

Every command is a plain function returning an exit code. A user-facing error (any
`gateway.core.errors.UserError`: bad config, bad scenario, bad audio file, a device that will not
open) is one line on stderr and exit 1; a traceback only with `--verbose`.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from gateway import __version__
from gateway.config import (
    Config,
    ConfigError,
    config_json_schema,
    config_summary,
    load_config,
)
from gateway.config.models import CAT_DRIVER_NAMES
from gateway.core.errors import UserError

# Commands import what they need when they run: `unkey-all` runs in systemd's ExecStopPost after
# a crash and must not spend seconds loading the signal-processing stack it does not use.

DEFAULT_CONFIG = "/etc/crosspatch/crosspatch.yaml"
CONFIG_HELP = "the gateway's config file (YAML), e.g. " + DEFAULT_CONFIG


class UsageError(UserError):
    """A command line that cannot be acted on; the message says why."""


class DaemonRefused(UserError):
    """The daemon answered, and refused; its reason is the message."""


def cmd_check(args: argparse.Namespace) -> int:
    try:
        cfg = load_config(Path(args.config), for_run=True)
        # What `run` refuses of a config that loads (a link's codec missing from this build) is
        # refused here too, by the same function: a config `check` accepts is one `run` starts.
        from gateway.run.daemon import require_supported_ports

        require_supported_ports(cfg)
    except UserError as exc:
        if not args.json:
            raise
        report = {"ok": False, "file": args.config, "errors": _check_errors(exc, args)}
        print(json.dumps(report, indent=2))
        return 1
    if args.json:
        print(json.dumps({"ok": True, "file": args.config, **config_counts(cfg)}, indent=2))
        return 0
    print(f"{args.config}: OK: {config_summary(cfg)}")
    return 0


def _check_errors(exc: UserError, args: argparse.Namespace) -> list[dict[str, Any]]:
    """`check --json`'s errors: the located issues as objects (file, line, path, message); an
    error about the whole config (hardware this build lacks) is one with no line and no path."""
    if isinstance(exc, ConfigError):
        return [
            {"file": i.file, "line": i.line, "path": i.path, "message": i.message}
            for i in exc.issues
        ]
    return [{"file": args.config, "line": None, "path": "", "message": str(exc)}]


def config_counts(cfg: Config) -> dict[str, Any]:
    """`check --json`'s summary: what the site holds, as `check` says it in one line."""
    return {
        "gateway": cfg.gateway.id,
        "agencies": len(cfg.agencies),
        "talkgroups": sum(len(agency.talkgroups) for agency in cfg.agencies.values()),
        "radios": len(cfg.radios),
        "links": len(cfg.links),
        "patches": len(cfg.patches),
        "patches_enabled": sum(1 for patch in cfg.patches.values() if patch.enabled),
        "summary": config_summary(cfg),
    }


def cmd_schema(args: argparse.Namespace) -> int:
    print(json.dumps(config_json_schema(), indent=2))
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from gateway.run.announcements import AnnouncementPlan
    from gateway.run.announcer import Announcer
    from gateway.sim.scenario import load_scenario
    from gateway.sim.simulate import run_simulation

    config_path = Path(args.config)
    cfg = load_config(config_path)
    scenario = load_scenario(Path(args.scenario), cfg)
    out_dir = Path(args.out)
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"--out {out_dir}: exists and is not a directory")
    plan = AnnouncementPlan.from_config(cfg, config_path.parent)
    summary = run_simulation(cfg, scenario, out_dir, Announcer(plan))
    print(summary.describe())
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from gateway.sim.demo import run_demo  # the terminal view pulls in rich: load it only here

    if args.seconds is not None and args.seconds <= 0:
        raise UsageError("--seconds must be a positive number of seconds")
    mqtt = None
    if args.mqtt is not None:
        from gateway.config.models import MqttSettings

        try:
            mqtt = MqttSettings(url=args.mqtt)
        except ValueError:
            raise UsageError(
                f"--mqtt must be mqtt://host[:port] or mqtts://host[:port] (got '{args.mqtt}')"
            ) from None
    return run_demo(Path(args.config) if args.config else None, args.seconds, mqtt=mqtt)


def cmd_run(args: argparse.Namespace) -> int:
    from gateway.core.logs import setup_logging
    from gateway.run.daemon import run_daemon

    setup_logging(args.verbose)
    return run_daemon(Path(args.config))


def cmd_unkey_all(args: argparse.Namespace) -> int:
    from gateway.tools.unkey_all import unkey_all

    report = unkey_all(load_config(Path(args.config)))
    for line in report.lines():
        print(line)
    return report.exit_code


def cmd_audio(args: argparse.Namespace) -> int:
    if args.action == "devices":
        from gateway.hardware.sound.devices import describe_devices
        from gateway.tools.devices import sound_device_records, sound_devices

        devices = sound_devices()  # the very list `crosspatch devices` shows
        if args.json:
            print(json.dumps(sound_device_records(devices), indent=2))
        else:
            print("\n".join(describe_devices(devices)))
        return 0
    if args.json:
        raise UsageError(f"--json goes with audio devices, not audio {args.action}")
    import asyncio

    from gateway.tools.audio_levels import run_levels
    from gateway.tools.audio_tone import run_tone

    if not (args.radio and args.config):
        raise UsageError(f"audio {args.action} needs --radio NAME --config FILE")
    config = Path(args.config)
    cfg = load_config(config)
    if args.action == "levels":
        return asyncio.run(run_levels(cfg, config, args.radio, args.seconds, sys.stdout))
    return asyncio.run(
        run_tone(cfg, config, args.radio, args.seconds, args.hz, args.level_dbfs, sys.stdout)
    )


def cmd_tail(args: argparse.Namespace) -> int:
    from gateway.mqtt.tail import run_tail, tail_settings

    settings = tail_settings(
        url=args.mqtt,
        config=Path(args.config) if args.config else None,
        gateway=args.gateway,
        username=args.username,
        password_file=Path(args.password_file) if args.password_file else None,
        show_all=args.all,
    )
    return run_tail(settings)


def cmd_console(args: argparse.Namespace) -> int:
    from gateway.console.server import (
        ConsoleSettings,
        check_broker_url,
        check_topic_prefix,
        parse_listen,
        run_console,
    )

    host, port = parse_listen(args.listen)
    if (args.cert is None) != (args.key is None):
        print("crosspatch console: give both --cert and --key (HTTPS), or neither", file=sys.stderr)
        return 2
    settings = ConsoleSettings(
        host=host,
        port=port,
        broker_url=check_broker_url(args.broker),
        topic_prefix=check_topic_prefix(args.topic_prefix),
        cert_file=Path(args.cert) if args.cert else None,
        key_file=Path(args.key) if args.key else None,
    )
    return run_console(settings)


def cmd_devices(args: argparse.Namespace) -> int:
    from gateway.tools.devices import (
        describe_devices,
        devices_report,
        serial_devices,
        sound_devices,
    )

    ports, sounds = serial_devices(), sound_devices()
    if args.json:
        print(json.dumps(devices_report(ports, sounds), indent=2))
    else:
        print("\n".join(describe_devices(ports, sounds)))
    return 0


def cmd_completion(args: argparse.Namespace) -> int:
    from gateway.tools.completion import bash_script

    sys.stdout.write(bash_script(_parser()))
    return 0


def _radio_settings(args: argparse.Namespace) -> tuple[Any, Any]:
    """The radio to act on, and (for `tune` without frequencies) its talkgroup's channel."""
    from gateway.hardware.cat.registry import DriverSettings
    from gateway.ports.wiring import channel_tuning, driver_settings

    if args.radio:
        if not args.config:
            raise UsageError("--radio needs --config FILE")
        cfg = load_config(Path(args.config))
        radio = cfg.radios.get(args.radio)
        if radio is None:
            raise UsageError(f"no radio named '{args.radio}' in {args.config}")
        if radio.control is None:
            raise UsageError(f"radio '{args.radio}' has no CAT control (control: ...)")
        settings = driver_settings(radio.control)
        channel = None
        if radio.talkgroup is not None:  # a pool radio has no channel of its own
            channel = channel_tuning(cfg.talkgroup(radio.talkgroup))
        return settings, channel
    if not (args.driver and args.port):
        raise UsageError("name the radio: --radio NAME --config FILE, or --driver D --port P")
    if args.driver == "rigctld":
        host, _, port = args.port.rpartition(":")
        if not port.isdigit():
            raise UsageError("rigctld takes --port HOST:PORT (e.g. localhost:4532)")
        return DriverSettings("rigctld", host=host or "localhost", tcp_port=int(port)), None
    address = int(args.address, 0) if args.address else None
    return DriverSettings(args.driver, args.port, args.baud, address), None


def cmd_radio(args: argparse.Namespace) -> int:
    import asyncio

    from gateway.hardware.cat.base import Tuning
    from gateway.tools.radio import run_radio_action

    settings, channel = _radio_settings(args)
    tuning = None
    if args.action == "tune":
        if args.rx_mhz is not None:
            tuning = Tuning(
                rx_hz=round(args.rx_mhz * 1e6),
                tx_hz=round((args.tx_mhz or args.rx_mhz) * 1e6),
                mode=args.mode,
                ctcss_hz=args.ctcss,
                dcs=args.dcs,
            )
        elif channel is not None:
            tuning = channel
        else:
            raise UsageError("radio tune needs --rx-mhz (or --radio with a tuned talkgroup)")
    if args.action == "key" and not 0 < args.seconds <= 60:
        raise UsageError("--seconds must be between 0 and 60 for a test transmission")
    lines = asyncio.run(
        run_radio_action(settings, args.action, tuning=tuning, seconds=args.seconds)
    )
    print("\n".join(lines))
    return 0


def _socket(args: argparse.Namespace) -> Path:
    if args.socket:
        return Path(args.socket)
    return load_config(Path(args.config or DEFAULT_CONFIG)).gateway.control_socket_path


def _ask(args: argparse.Namespace, command: str, **fields: Any) -> dict[str, Any]:
    from gateway.control.control_socket import request

    reply = request(_socket(args), command, fields or None, timeout=args.timeout)
    if not reply.get("ok"):
        raise DaemonRefused(str(reply.get("error", "the daemon refused without a reason")))
    result: dict[str, Any] = reply.get("result", {})
    return result


def cmd_status(args: argparse.Namespace) -> int:
    if args.watch:
        from gateway.tools.status_watch import watch_status

        if args.json:
            raise UsageError("--watch draws a screen; --json prints one status: use one")
        return watch_status(_socket(args), args.interval, args.timeout)
    status = _ask(args, "status")
    if args.json:
        print(json.dumps(status, indent=2))
        return 0
    print(format_status(status))
    return 0


def cmd_patch(args: argparse.Namespace) -> int:
    if args.mqtt is not None:
        return _patch_over_mqtt(args)
    broker_only = [
        option
        for option, value in (
            ("--username", args.username),
            ("--password-file", args.password_file),
            ("--gateway", args.gateway),
            ("--topic-prefix", args.topic_prefix),
        )
        if value is not None
    ]
    if broker_only:
        raise UsageError(f"{', '.join(broker_only)} go with --mqtt URL (the broker to go through)")
    if args.action == "list":
        patches = _ask(args, "patch.list")["patches"]
        if args.json:
            print(json.dumps(patches, indent=2))
            return 0
        for line in _patch_lines(patches):
            print(line)
        return 0
    if not args.name:
        raise UsageError(f"patch {args.action} needs the name of a patch")
    result = _ask(args, f"patch.{args.action}", patch=args.name)
    print(result.get("message", result))
    return 0


def _patch_lines(patches: list[dict[str, Any]]) -> list[str]:
    lines = []
    for p in patches:
        members = ", ".join(m["port"] for m in p["members"])
        approved = f"  approved by {', '.join(p['approved_by'])}" if p["approved_by"] else ""
        lines.append(f"{p['patch']:<20} {p['state']:<9} {p['floor']:<9} {members}{approved}")
    return lines


def _patch_over_mqtt(args: argparse.Namespace) -> int:
    """The same commands and the same output as over the socket, through the broker under the
    dispatcher's own login; `list` with several gateways online shows each one's patches."""
    from gateway.mqtt.remote_command import ask, remote_settings

    if args.socket:
        raise UsageError("--socket and --mqtt name two different ways to the daemon: use one")
    if args.action != "list" and not args.name:
        raise UsageError(f"patch {args.action} needs the name of a patch")
    settings = remote_settings(
        url=args.mqtt,
        config=Path(args.config) if args.config else None,
        username=args.username,
        password_file=Path(args.password_file) if args.password_file else None,
        gateway=args.gateway,
        topic_prefix=args.topic_prefix,
    )
    listing = args.action == "list"
    fields = None if listing else {"patch": args.name}
    replies = ask(
        settings, f"patch.{args.action}", fields, timeout=args.timeout, several_ok=listing
    )
    refusals = {gw: reply for gw, reply in replies.items() if not reply.get("ok")}
    if refusals and (not listing or len(replies) == 1):
        reply = next(iter(refusals.values()))
        raise DaemonRefused(str(reply.get("error", "the gateway refused without a reason")))
    results: dict[str, Any] = {gw: r.get("result", {}) for gw, r in replies.items()}
    if not listing:
        result = next(iter(results.values()))
        print(result.get("message", result))
        return 0
    if len(results) == 1:  # one gateway: exactly what the socket prints
        patches = next(iter(results.values()))["patches"]
        for line in [json.dumps(patches, indent=2)] if args.json else _patch_lines(patches):
            print(line)
        return 0
    if args.json:
        print(json.dumps({gw: r.get("patches") for gw, r in results.items()}, indent=2))
    else:
        for gw, result in results.items():
            print(f"{gw}:")
            if gw in refusals:
                print(f"  {refusals[gw].get('error', 'the gateway refused without a reason')}")
                continue
            for line in _patch_lines(result["patches"]):
                print(f"  {line}")
    return 1 if refusals else 0


def cmd_port(args: argparse.Namespace) -> int:
    result = _ask(args, "port.key_test", port=args.name, seconds=args.seconds)
    print(result.get("message", result))
    return 0


def cmd_reload(args: argparse.Namespace) -> int:
    result = _ask(args, "reload")
    print(
        f"reloaded {result['reloaded']}; enabled patches: {', '.join(result['enabled']) or 'none'}"
    )
    return 0


def format_status(status: dict[str, Any]) -> str:
    ticks = status["ticks"]
    lines = [
        f"{status['gateway']}  up {status['uptime_s']:.0f} s  config {status['config']}",
        f"engine: {ticks['ticks']} ticks ({ticks.get('ticks_per_s', 0):g}/s), "
        f"{ticks['overruns']} overruns, lateness median "
        f"{ticks['lateness_ms']['median']} ms p99 {ticks['lateness_ms']['p99']} ms",
    ]
    clock = status.get("audio_clock")
    if clock:
        lines.append(
            f"clock card {clock['card']}: {clock['card_frames']} frames, "
            f"{clock['card_ticks']} ticked, {clock['timer_ticks']} timer ticks while silent, "
            f"{clock['repaid']} caught up, {clock['skipped']} skipped"
        )
    for radio, audio in (status.get("audio") or {}).items():
        lines.append(
            f"  audio {radio}: rx {audio['rx_fifo_ms']:g} ms, tx {audio['tx_fifo_ms']:g} ms "
            f"queued; {audio['underruns']} underruns, {audio['overruns']} overruns"
        )
    saved = status.get("state")
    if saved is not None and not saved["saved"]:
        lines.append(
            f"PATCH STATE NOT SAVED to {saved['file']} ({saved['failed_tries']} failed tries): "
            f"{saved['error']}"
        )
    mqtt = status.get("mqtt")
    if mqtt is not None:
        state = "connected" if mqtt["connected"] else "NOT CONNECTED"
        full = ", OUTBOX FULL" if mqtt["outbox_full"] else ""
        dropped = f", {mqtt['dropped']} ptt/carrier events dropped" if mqtt["dropped"] else ""
        restarts = mqtt.get("publisher_restarts", 0)
        restarted = f", publisher restarted {restarts} time(s)" if restarts else ""
        if mqtt.get("held_in_memory"):
            full += f", {mqtt['held_in_memory']} HELD IN MEMORY (the disk is full)"
        elif mqtt.get("on_reserve"):
            full += ", DISK FULL (writing into the reserve)"
        lines.append(
            f"mqtt: {state} to {mqtt['url']}, {mqtt['queued']} event(s) waiting in the outbox"
            f"{full}{dropped}{restarted}"
        )
    lines += ["", "ports:"]
    for port in status["ports"]:
        flags = " ".join(
            flag
            for flag, on in (
                ("CARRIER", port["carrier"]),
                ("PTT", port["ptt"]),
                ("OFFLINE", not port["online"]),
                ("TUNING", port["online"] and not port.get("ready", True)),
            )
            if on
        )
        serves = port["talkgroup"] or (f"(pool {port['pool']})" if port.get("pool") else "-")
        mhz = f"{port['tx_mhz']:g} MHz" if port.get("tx_mhz") else ""
        lines.append(
            f"  {port['port']:<16} {serves:<20} {mhz:<13} {port['patch'] or '-':<16} {flags}"
        )
    lines.append("patches:")
    for patch in status["patches"]:
        lines.append(f"  {patch['patch']:<20} {patch['state']:<9} {patch['floor']}")
    lines.append("calls:")
    for call in status["calls"]:
        to = ", ".join(d["port"] for d in call["destinations"]) or "nobody"
        lines.append(f"  {call['patch']}: {call['source']['port']} -> {to} since {call['start']}")
    if not status["calls"]:
        lines.append("  none")
    links = status.get("links")
    if links:
        lines.append("links:")
        for name, link in links.items():
            drop_counts = {
                "unknown source": link["unknown_source"],
                "malformed": link["malformed"],
                "auth failures": link.get("auth_failures", 0),
                "wrong talkgroup": link.get("wrong_talkgroup", 0),
                "late": link["rx_late"],
            }
            drops = ", ".join(f"{n} {what}" for what, n in drop_counts.items() if n) or "none"
            if link.get("protocol") == "usrp":
                carries = "usrp" + (f" tg {link['talkgroup_id']}" if link["talkgroup_id"] else "")
            else:
                carries = f"{link['codec']}{'/srtp' if link['srtp'] else ' (insecure)'}"
            lines.append(
                f"  {name:<16} {'up' if link['online'] else 'DOWN':<4} {carries}"
                f" to {link['remote']}: "
                f"{link['packets_in']} in, {link['packets_out']} out, dropped: {drops}; "
                f"{link['rx_concealed']} frames concealed, jitter {link['jitter_ms']} ms, "
                f"buffer {link['target_ms']:g} ms"
            )
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="crosspatch",
        description="Open interoperability gateway for land-mobile radio.",
        epilog="`crosspatch` alone prints this help and exits 2, as any incomplete command line "
        "does; `crosspatch COMMAND --help` tells more of each command.",
    )
    parser.add_argument("--version", action="version", version=f"crosspatch {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="tracebacks on errors")
    # Not `required`: without a command the whole help is more use than argparse's one line.
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("check", help="validate a config file")
    p.add_argument("config", metavar="CONFIG", help=CONFIG_HELP)
    p.add_argument(
        "--json",
        action="store_true",
        help="one JSON object: ok, and the site's counts or the errors (file, line, path, message)",
    )
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("schema", help="print the JSON Schema of the config")
    p.set_defaults(func=cmd_schema)

    p = sub.add_parser("simulate", help="dry-run a config against a scenario in simulated time")
    p.add_argument("config", metavar="CONFIG", help="the config file (every port is simulated)")
    p.add_argument("scenario", metavar="SCENARIO", help="the scenario file: who talks when")
    p.add_argument("--out", required=True, metavar="DIR", help="where events.jsonl and tx/ go")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("run", help="run the daemon in the foreground (systemd runs this)")
    p.add_argument("config", metavar="CONFIG", help=CONFIG_HELP)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("unkey-all", help="release every transmitter the config names")
    p.add_argument("config", metavar="CONFIG", help=CONFIG_HELP)
    p.set_defaults(func=cmd_unkey_all)

    daemon = argparse.ArgumentParser(add_help=False)
    daemon.add_argument("--config", metavar="FILE", help=f"the daemon's config ({DEFAULT_CONFIG})")
    daemon.add_argument("--socket", metavar="PATH", help="the daemon's control socket")
    daemon.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for a reply")

    p = sub.add_parser("status", parents=[daemon], help="the running daemon's state")
    p.add_argument("--json", action="store_true", help="the full status as JSON")
    p.add_argument("--watch", action="store_true", help="live on this terminal until Ctrl-C")
    p.add_argument(
        "--interval", type=float, default=1.0, metavar="S", help="--watch: redraw every S (1)"
    )
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("patch", parents=[daemon], help="list, enable, disable or approve patches")
    p.add_argument(
        "action",
        choices=["list", "enable", "disable", "approve", "deny"],
        help="list: every patch and its state; enable, disable: switch NAME on or off; approve, "
        "deny: give or refuse your agency's consent to NAME",
    )
    p.add_argument("name", nargs="?", metavar="NAME", help="the patch (all but list)")
    p.add_argument("--json", action="store_true", help="patch list as JSON")
    p.add_argument(
        "--mqtt", metavar="URL", help="through this broker instead of the socket (mqtt[s]://...)"
    )
    p.add_argument("--username", metavar="U", help="--mqtt: your broker login")
    p.add_argument(
        "--password-file", metavar="F", dest="password_file", help="--mqtt: its password"
    )
    p.add_argument("--gateway", metavar="GW", help="--mqtt: the gateway (default: the one online)")
    p.add_argument(
        "--topic-prefix", metavar="P", dest="topic_prefix", help="--mqtt: topic prefix (crosspatch)"
    )
    p.set_defaults(func=cmd_patch)

    p = sub.add_parser("port", parents=[daemon], help="key-test: key a port with a test tone")
    p.add_argument("action", choices=["key-test"], help="key-test: key NAME with a test tone")
    p.add_argument("name", metavar="NAME", help="the port (a radio or link of the config)")
    p.add_argument("--seconds", type=float, default=3.0, help="how long (0.5 to 10, default 3)")
    p.set_defaults(func=cmd_port)

    p = sub.add_parser("reload", parents=[daemon], help="re-read the daemon's config file")
    p.set_defaults(func=cmd_reload)

    p = sub.add_parser(
        "devices", help="serial ports (with USB ids) and sound devices (as `audio devices`)"
    )
    p.add_argument("--json", action="store_true", help="serial_ports and sound_devices as JSON")
    p.set_defaults(func=cmd_devices)

    p = sub.add_parser("audio", help="sound devices; one radio's input levels; a test tone")
    p.add_argument(
        "action",
        choices=["devices", "levels", "tone"],
        help="devices: index, channels, default rate; levels: live input meters of --radio; "
        "tone: key --radio and send a test tone",
    )
    p.add_argument("--radio", metavar="NAME", help="a radio of --config")
    p.add_argument("--config", metavar="FILE")
    p.add_argument("--json", action="store_true", help="devices: a JSON list, one object each")
    p.add_argument(
        "--seconds", type=float, metavar="S", help="levels: stop after S; tone: how long (1-300)"
    )
    p.add_argument("--hz", type=float, default=1000.0, help="tone: frequency (1000)")
    p.add_argument(
        "--level-dbfs",
        type=float,
        default=-10.0,
        dest="level_dbfs",
        help="tone: peak level before the radio's output gain (-10)",
    )
    p.set_defaults(func=cmd_audio)

    p = sub.add_parser("radio", help="probe, tune, key or watch one radio")
    p.add_argument(
        "action",
        choices=["probe", "tune", "key", "watch"],
        help="probe: what answers and where it is tuned; tune: set a channel and read it back; "
        "key: transmit for --seconds; watch: squelch changes live",
    )
    p.add_argument("--radio", metavar="NAME", help="a radio of --config")
    p.add_argument("--config", metavar="FILE")
    p.add_argument("--driver", help=f"ad hoc: {', '.join(CAT_DRIVER_NAMES)}")
    p.add_argument("--port", help="ad hoc: serial device, or HOST:PORT for rigctld")
    p.add_argument("--baud", type=int)
    p.add_argument("--address", help="Icom CI-V address, e.g. 0x94")
    p.add_argument("--rx-mhz", type=float, dest="rx_mhz")
    p.add_argument("--tx-mhz", type=float, dest="tx_mhz")
    p.add_argument("--mode", choices=["nfm", "fm", "am"], default="nfm")
    p.add_argument("--ctcss", type=float, help="CTCSS tone in Hz")
    p.add_argument("--dcs", help='DCS code, e.g. "023N"')
    p.add_argument("--seconds", type=float, default=1.0, help="key: how long to transmit")
    p.set_defaults(func=cmd_radio)

    p = sub.add_parser("demo", help="run the built-in simulated site with a live view")
    p.add_argument("--seconds", type=float, metavar="N", help="stop after N seconds")
    p.add_argument("--config", metavar="CONFIG", help="an all-simulated config instead of the demo")
    p.add_argument("--mqtt", metavar="URL", help="also publish the traffic to this MQTT broker")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("console", help="serve the dispatchers' web console")
    p.add_argument(
        "--listen", default="127.0.0.1:8080", metavar="HOST:PORT", help="where (127.0.0.1:8080)"
    )
    p.add_argument(
        "--broker",
        required=True,
        metavar="URL",
        help="the broker's WebSocket listener the browsers connect to: ws://HOST:PORT or wss://",
    )
    p.add_argument(
        "--topic-prefix",
        default="crosspatch",
        dest="topic_prefix",
        metavar="P",
        help="the gateways' mqtt.topic_prefix (crosspatch)",
    )
    p.add_argument("--cert", metavar="FILE", help="serve HTTPS with this certificate (PEM)")
    p.add_argument("--key", metavar="FILE", help="and this private key (PEM)")
    p.set_defaults(func=cmd_console)

    p = sub.add_parser("tail", help="the call log, alarms and patch changes live from the broker")
    p.add_argument("--mqtt", metavar="URL", help="mqtt://host[:port] or mqtts://host[:port]")
    p.add_argument(
        "--config", metavar="FILE", help="agency names, topic prefix; the broker if no --mqtt"
    )
    p.add_argument("--gateway", metavar="GW", help="one gateway's id (default +: every gateway)")
    p.add_argument("--username", metavar="U", help="your broker login")
    p.add_argument("--password-file", metavar="F", dest="password_file", help="its password")
    p.add_argument("--all", action="store_true", help="also every PTT and carrier change")
    p.set_defaults(func=cmd_tail)

    p = sub.add_parser(
        "completion",
        help="print a shell completion script",
        description="Print a completion script for SHELL. Load it with "
        "`source <(crosspatch completion bash)` in ~/.bashrc, or install it: "
        "`crosspatch completion bash > /etc/bash_completion.d/crosspatch`.",
    )
    p.add_argument("shell", choices=["bash"], metavar="SHELL", help="bash (the only one so far)")
    p.set_defaults(func=cmd_completion)
    return parser


def run(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    except OSError as exc:  # a file or directory the command cannot read or write
        if args.verbose:
            traceback.print_exc()
        where = f": {exc.filename}" if exc.filename else ""
        print(f"crosspatch {args.command}: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except UserError as exc:  # the user's to fix: their own words, never a traceback
        if args.verbose:
            traceback.print_exc()
        print(f"crosspatch {args.command}: {exc}", file=sys.stderr)
        return 1


def main() -> None:
    # Commands that stream lines (`radio watch`, `tail`, `audio levels`) feed pipes to grep,
    # logger and scripts: each line must leave when it is printed, not when a block fills.
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)
    sys.exit(run())


if __name__ == "__main__":
    main()
