"""The `crosspatch` command line. `main` is thin; `run(argv)` is what tests call.

Every command is a plain function returning an exit code. A user-facing error (bad config, bad
scenario, bad audio file) is one line on stderr and exit 1; a traceback only with `--verbose`.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from gateway import __version__
from gateway.config import ConfigError, config_json_schema, config_summary, load_config
from gateway.engine import EngineError
from gateway.scenario import ScenarioError, load_scenario
from gateway.signals import AudioFileError
from gateway.simulate import SimulationError, run_simulation


class UsageError(Exception):
    """A command line that cannot be acted on; the message says why."""


# Errors that are the user's to fix: reported in their own words, never as a traceback.
USER_ERRORS: tuple[type[Exception], ...] = (
    ConfigError,
    ScenarioError,
    SimulationError,
    AudioFileError,
    EngineError,
    UsageError,
)


def cmd_check(args: argparse.Namespace) -> int:
    cfg = load_config(Path(args.config))
    print(f"{args.config}: OK: {config_summary(cfg)}")
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    print(json.dumps(config_json_schema(), indent=2))
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    cfg = load_config(Path(args.config))
    scenario = load_scenario(Path(args.scenario), cfg)
    out_dir = Path(args.out)
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"--out {out_dir}: exists and is not a directory")
    summary = run_simulation(cfg, scenario, out_dir)
    print(summary.describe())
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from gateway.demo import run_demo  # the terminal view pulls in rich: load it only here

    if args.seconds is not None and args.seconds <= 0:
        raise UsageError("--seconds must be a positive number of seconds")
    return run_demo(Path(args.config) if args.config else None, args.seconds)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="crosspatch",
        description="Open interoperability gateway for land-mobile radio.",
    )
    parser.add_argument("--version", action="version", version=f"crosspatch {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("check", help="validate a config file")
    p.add_argument("config", metavar="CONFIG")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("schema", help="print the JSON Schema of the config")
    p.set_defaults(func=cmd_schema)

    p = sub.add_parser("simulate", help="dry-run a config against a scenario in simulated time")
    p.add_argument("config", metavar="CONFIG")
    p.add_argument("scenario", metavar="SCENARIO")
    p.add_argument("--out", required=True, metavar="DIR", help="where events.jsonl and tx/ go")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("demo", help="run the built-in simulated site with a live view")
    p.add_argument("--seconds", type=float, metavar="N", help="stop after N seconds")
    p.add_argument("--config", metavar="CONFIG", help="an all-simulated config instead of the demo")
    p.set_defaults(func=cmd_demo)
    return parser


def run(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    except USER_ERRORS as exc:
        if args.verbose:
            traceback.print_exc()
        print(f"crosspatch {args.command}: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # a file or directory the command cannot read or write
        if args.verbose:
            traceback.print_exc()
        where = f": {exc.filename}" if exc.filename else ""
        print(f"crosspatch {args.command}: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def main() -> None:
    sys.exit(run())


if __name__ == "__main__":
    main()
