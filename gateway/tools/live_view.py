"""The live terminal view of a site, shared by `crosspatch status --watch` and `crosspatch demo`.

Both show the same things from the same shape of data: the `status` reply's `ports`, `patches`,
`calls` and `alarms` (gateway.control.status builds them for the daemon and the demo alike). The
view fits the terminal, 80x24 at the least, without scrolling: every item is one line cut at the
width, and a section with more items than its share of the height ends in "+N more". A section
that needs few lines leaves the rest to the others, so a small site shows everything.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from rich.console import Group
from rich.text import Text

STATE_STYLES = {"enabled": "bold green", "pending": "yellow", "disabled": "dim"}


@dataclass
class Section:
    title: str
    lines: list[Text] = field(default_factory=list)
    empty: str = "none"  # shown when there are no lines
    weight: int = 1  # rows taken in each turn of the fair share


def fit(header: Sequence[Text], sections: Sequence[Section], width: int, height: int) -> Group:
    """The header and sections in `width` x `height`: each section gets a title line and a fair
    share of the rows left (what one does not need goes to the others); cut sections end in
    "+N more". One row is left free, so the terminal never scrolls."""
    rows = max(height - 1 - len(header) - len(sections), 0)
    wanted = [max(len(s.lines), 1) for s in sections]
    given = [0] * len(sections)
    while rows > 0 and any(g < w for g, w in zip(given, wanted, strict=True)):
        for i, want in enumerate(wanted):  # `weight` rows each in turn: the fair share
            more = min(sections[i].weight, want - given[i], rows)
            if more > 0:
                given[i] += more
                rows -= more
    out: list[Text] = list(header)
    for section, rows_given in zip(sections, given, strict=True):
        out.append(Text(section.title, "bold underline"))
        lines = section.lines or [Text(f"  {section.empty}", "dim")]
        if len(lines) > rows_given:
            shown = max(rows_given - 1, 0)
            lines = [*lines[:shown], Text(f"  +{len(lines) - shown} more", "dim")][:rows_given]
        out.extend(lines)
    cut = []
    for line in out[: max(height - 1, 1)]:
        line = line.copy()
        line.no_wrap = True
        line.truncate(width, overflow="ellipsis")
        cut.append(line)
    return Group(*cut)


def frequency(port: Mapping[str, Any]) -> str:
    rx, tx = port.get("rx_mhz"), port.get("tx_mhz")
    if not port.get("talkgroup"):
        return ""
    if rx is None:
        return "link"
    if tx is None or tx == rx:
        return f"{rx:.4f}"
    return f"{rx:.4f}/{tx:.4f}"


def port_lines(ports: Sequence[Mapping[str, Any]], countries: Mapping[str, str]) -> list[Text]:
    """One line a port: name, talkgroup, country, MHz, carrier and PTT lights, its patch."""
    lines = []
    for port in ports:
        serves = port.get("talkgroup") or (f"(pool {port['pool']})" if port.get("pool") else "-")
        country = countries.get(port.get("agency") or "", "")
        line = Text(f"  {port['port']:<14} {serves:<18} {country:<2} {frequency(port):<17} ")
        if not port.get("online", True):
            line.append("OFFLINE   ", "bold red")
        else:
            line.append(
                "● RX" if port["carrier"] else "·   ", "bold green" if port["carrier"] else "dim"
            )
            line.append(" ")
            line.append("● TX" if port["ptt"] else "·   ", "bold red" if port["ptt"] else "dim")
            line.append(" ")
        line.append(port.get("patch") or "")
        lines.append(line)
    return lines


def patch_lines(
    patches: Sequence[Mapping[str, Any]], calls: Sequence[Mapping[str, Any]]
) -> list[Text]:
    """One line a patch: name, state, floor, and who is on the air (else its members)."""
    talking = {c["patch"]: c for c in calls}
    lines = []
    for patch in patches:
        state = str(patch["state"])
        line = Text(f"  {patch['patch']:<18} ")
        line.append(f"{state:<9}", STATE_STYLES.get(state, ""))
        line.append(f" {patch['floor']:<9} ")
        call = talking.get(patch["patch"])
        if call is not None:
            to = ", ".join(d["port"] for d in call["destinations"]) or "nobody"
            line.append(f"{call['source']['port']} → {to}", "bold")
        else:
            members = [
                m["port"]
                + ("" if m.get("mode", "talk+listen") == "talk+listen" else f" ({m['mode']})")
                for m in patch.get("members", [])
            ]
            if state != "enabled":  # a pool's radio is picked when the patch is enabled
                members += [f"{t} (pool)" for t in patch.get("pooled", [])]
            line.append(", ".join(members), "dim")
        lines.append(line)
    return lines


def call_lines(calls: Sequence[Mapping[str, Any]], now: datetime) -> list[Text]:
    """One line a call in progress: how long it has run, its patch, talker -> listeners."""
    lines = []
    for call in calls:
        started = datetime.fromisoformat(str(call["start"]).replace("Z", "+00:00"))
        seconds = max((now - started).total_seconds(), 0.0)
        src = call["source"]
        to = ", ".join(d["port"] for d in call["destinations"]) or "nobody"
        line = Text(f"  {seconds:5.0f} s  ", "bold")
        line.append(f"{call['patch']:<16} {src['port']} ({src.get('talkgroup') or '-'}) → {to}")
        lines.append(line)
    return lines


def alarm_lines(alarms: Sequence[Mapping[str, Any]]) -> list[Text]:
    """One line an active alarm: since when, what, where, and the gateway's words."""
    lines = []
    for alarm in alarms:
        when = str(alarm.get("time", ""))[11:19]
        where = alarm.get("port") or alarm.get("patch") or ""
        lines.append(
            Text(f"  {when} {alarm.get('kind', '?')} {where}: {alarm.get('detail', '')}", "red")
        )
    return lines


def now_utc() -> datetime:
    return datetime.now(UTC)
