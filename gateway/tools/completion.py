"""`crosspatch completion bash`: a bash completion script, written from the command line's own
argparse parser, so that it never lists a command or option the parser does not have.

It completes commands, each command's options, the choices of positional words and options
(`patch enable|disable|...`, `radio --mode nfm|fm|am`), and file names where a word names a
file (`CONFIG`, `--config FILE`, `--out DIR`). Install: `crosspatch completion bash >
/etc/bash_completion.d/crosspatch`, or `source <(crosspatch completion bash)` in ~/.bashrc.

Why no library: shtab (maintained, bash/zsh/tcsh) would do the same, but as one more dependency on
every gateway for some ninety lines that walk a plain argparse parser; argcomplete runs Python on
every Tab press (a quarter of a second on a small board). zsh users can load this script through
`bashcompinit`.
"""

from __future__ import annotations

import argparse
import shlex
from dataclasses import dataclass, field

FILE_METAVARS = frozenset({"CONFIG", "SCENARIO", "FILE", "F", "PATH"})
DIR_METAVARS = frozenset({"DIR"})


@dataclass
class _Command:
    name: str
    options: list[str] = field(default_factory=list)  # every option string
    valued: list[str] = field(default_factory=list)  # options that take a value
    values: dict[str, str] = field(default_factory=dict)  # option -> compgen arguments
    positionals: list[str] = field(default_factory=list)  # compgen arguments, in order


def _compgen(action: argparse.Action) -> str:
    """What compgen offers for the value of `action`: its choices, files, directories or
    nothing (a number, a name only the user knows)."""
    if action.choices is not None:
        return "-W " + shlex.quote(" ".join(str(c) for c in action.choices))
    metavar = action.metavar if isinstance(action.metavar, str) else ""
    if metavar in DIR_METAVARS:
        return "-d"
    if metavar in FILE_METAVARS:
        return "-f"
    return ""


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:  # argparse keeps its actions here, and nowhere public
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _command(name: str, parser: argparse.ArgumentParser) -> _Command:
    command = _Command(name)
    for action in parser._actions:
        if action.option_strings:
            command.options += action.option_strings
            if action.nargs != 0:
                command.valued += action.option_strings
                for option in action.option_strings:
                    command.values[option] = _compgen(action)
        elif not isinstance(action, argparse._SubParsersAction):
            command.positionals.append(_compgen(action))
    return command


def _reply(compgen: str) -> str:
    if not compgen:
        return "return 0"
    files = "compopt -o filenames 2>/dev/null; " if compgen in ("-f", "-d") else ""
    return f'{files}COMPREPLY=($(compgen {compgen} -- "$cur")); return 0'


def _case_of(command: _Command) -> list[str]:
    lines = [f"        {shlex.quote(command.name)})"]
    if command.values:
        lines.append('            case "$prev" in')
        for option, compgen in command.values.items():
            lines.append(f"                {option}) {_reply(compgen)} ;;")
        lines.append("            esac")
    lines += [
        "            if [[ $cur == -* ]]; then",
        f"                {_reply('-W ' + shlex.quote(' '.join(command.options)))}",
        "            fi",
        f'            n=$(_crosspatch_position "$start" {shlex.quote(" ".join(command.valued))})',
        '            case "$n" in',
    ]
    for index, compgen in enumerate(command.positionals):
        lines.append(f"                {index}) {_reply(compgen)} ;;")
    lines += ["            esac", "            ;;"]
    return lines


def bash_script(parser: argparse.ArgumentParser) -> str:
    """The completion script for `parser`'s program."""
    prog = parser.prog
    function = "_" + prog.replace("-", "_")
    top = _command(prog, parser)
    commands = _subparsers(parser)
    words = " ".join([*top.options, *commands])
    lines = [
        f"# bash completion for {prog}: written by `{prog} completion bash`",
        "",
        "# How many positional words the command has before the cursor (its options and",
        "# their values skipped). $1: index of the first word after the command; $2: the",
        "# options that take a value.",
        "_crosspatch_position() {",
        "    local i n=0 skip=0",
        "    for ((i = $1; i < COMP_CWORD; i++)); do",
        "        if ((skip)); then skip=0; continue; fi",
        '        case "${COMP_WORDS[i]}" in',
        "            --*=*) ;;",
        '            -*) [[ " $2 " == *" ${COMP_WORDS[i]} "* ]] && skip=1 ;;',
        "            *) n=$((n + 1)) ;;",
        "        esac",
        "    done",
        '    echo "$n"',
        "}",
        "",
        f"{function}() {{",
        '    local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}"',
        '    local i cmd="" start=0 n',
        "    for ((i = 1; i < COMP_CWORD; i++)); do",
        '        case "${COMP_WORDS[i]}" in',
        "            -*) ;;",
        '            *) cmd="${COMP_WORDS[i]}"; start=$((i + 1)); break ;;',
        "        esac",
        "    done",
        "    if [[ -z $cmd ]]; then",
        f"        {_reply('-W ' + shlex.quote(words))}",
        "    fi",
        '    case "$cmd" in',
    ]
    for name, sub in commands.items():
        lines += _case_of(_command(name, sub))
    lines += [
        "    esac",
        "    return 0",
        "}",
        f"complete -F {function} {prog}",
        "",
    ]
    return "\n".join(lines)
