"""Checks across sections: names that must exist, and devices two ports must not share.

They run on a config whose every section is already well-formed, and return each problem with the
path of the key it concerns; the loader turns paths into file lines.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.config.errors import did_you_mean
from gateway.config.models import (
    LINK_FRAME_MS,
    NAME_RE,
    SERIAL_DRIVERS,
    SERIAL_PTT_METHODS,
    SERIAL_SQUELCH_METHODS,
    USRP_MAX_TALKGROUP_ID,
    AudioSettings,
    Config,
    Radio,
    split_talkgroup_ref,
)
from gateway.config.yaml_source import KeyPath

# Land-mobile bands in MHz (VHF low, VHF high, 220, UHF with federal 380-400, 700/800, 900).
LAND_MOBILE_BANDS_MHZ: tuple[tuple[float, float], ...] = (
    (29.7, 50.0),
    (136.0, 174.0),
    (220.0, 225.0),
    (380.0, 512.0),
    (757.0, 870.0),
    (896.0, 941.0),
)


@dataclass(frozen=True)
class ReferenceProblem:
    path: KeyPath
    message: str


@dataclass(frozen=True)
class Unchecked:
    """What failed the schema and was left out before the references were checked.

    References into what was left out cannot be judged (the agency may define the talkgroup once
    its typo is fixed), so they are neither reported as undefined nor followed any further.
    """

    sections: frozenset[str] = frozenset()
    entries: tuple[tuple[str, str], ...] = ()  # (section, name), in file order
    gateway_keys: frozenset[str] = frozenset()

    def left_out(self, section: str, name: str | None = None) -> bool:
        return section in self.sections or (name is not None and (section, name) in self.entries)

    def any_in(self, section: str) -> bool:
        return section in self.sections or any(entry[0] == section for entry in self.entries)


_WILDCARDS = frozenset(
    {"0.0.0.0", "::"}
)  # listening on every address: no other link may use the port


def _format_bands(bands: tuple[tuple[float, float], ...] | list[tuple[float, float]]) -> str:
    return ", ".join(f"{low:g}-{high:g}" for low, high in bands) + " MHz"


def _channels_overlap(first: str, second: str) -> bool:
    return first == second or "mono" in (first, second)


class _ReferenceChecker:
    def __init__(self, cfg: Config, unchecked: Unchecked) -> None:
        self.cfg = cfg
        self.unchecked = unchecked
        self.problems: list[ReferenceProblem] = []

    def add(self, path: KeyPath, message: str) -> None:
        self.problems.append(ReferenceProblem(path, message))

    def add_once(self, path: KeyPath, message: str) -> None:
        """Add the problem unless one is already reported at `path`."""
        if all(problem.path != path for problem in self.problems):
            self.add(path, message)

    # --- names ---------------------------------------------------------------------------------

    def agency_names(self) -> list[str]:
        """Every agency the file defines, those left out by the schema included."""
        left_out = [
            name
            for section, name in self.unchecked.entries
            if section == "agencies" and NAME_RE.fullmatch(name)  # (not a key refused as a name)
        ]
        return [*self.cfg.agencies, *left_out]

    def agencies_hint(self) -> str:
        names = self.agency_names()
        return "; agencies are: " + ", ".join(names) if names else "; the file defines no agency"

    def judged(self, ref: str) -> bool:
        """Whether talkgroup `ref` can be judged: its agency passed the schema."""
        return not self.unchecked.left_out("agencies", split_talkgroup_ref(ref)[0])

    def agency_problem(self, agency: str) -> str | None:
        if agency in self.cfg.agencies or self.unchecked.left_out("agencies", agency):
            return None
        hint = did_you_mean(agency, self.agency_names()) or self.agencies_hint()
        return f"agency '{agency}' is not defined{hint}"

    def talkgroup_problem(self, ref: str) -> str | None:
        """Why `ref` names no talkgroup; None if it does, or if its agency cannot be judged."""
        if not self.judged(ref):
            return None
        agency_name, talkgroup_name = split_talkgroup_ref(ref)
        agency = self.cfg.agencies.get(agency_name)
        if agency is None:
            hint = did_you_mean(agency_name, self.agency_names()) or self.agencies_hint()
            return f"talkgroup '{ref}' is not defined: there is no agency '{agency_name}'{hint}"
        if talkgroup_name in agency.talkgroups:
            return None
        known = ", ".join(agency.talkgroups) or "no talkgroups"
        return f"talkgroup '{ref}' is not defined; agency '{agency_name}' has: {known}"

    def check_link_frames(self) -> None:
        """What `run` would refuse is refused here already: a network link with frames that
        are not its packets' 20 ms."""
        frame_ms = self.cfg.gateway.frame_ms
        if frame_ms == LINK_FRAME_MS or "frame_ms" in self.unchecked.gateway_keys:
            return
        for name, link in self.cfg.links.items():
            if link.simulated is None:
                self.add(
                    ("links", name),
                    f"link '{name}': {link.protocol.upper()} links send {LINK_FRAME_MS} ms packets "
                    f"and need gateway.frame_ms {LINK_FRAME_MS} (it is {frame_ms})",
                )

    def check_link_addresses(self) -> None:
        """Two links cannot listen on one local address (`run` could bind only the first)."""
        owners: dict[tuple[str, int], str] = {}
        for name, link in self.cfg.links.items():
            if link.simulated is not None:
                continue
            host, port = link.local_address
            other = next(
                (
                    owner
                    for (other_host, other_port), owner in owners.items()
                    if other_port == port
                    and (other_host == host or _WILDCARDS & {host, other_host})
                ),
                None,
            )
            if other is not None:
                self.add(
                    ("links", name, "local"),
                    f"local address {link.local} is taken by link '{other}' "
                    f"({self.cfg.links[other].local}); each link listens on a port of its own",
                )
            owners.setdefault((host, port), name)

    def check_names(self) -> None:
        cfg = self.cfg
        for name, radio in cfg.radios.items():
            if radio.talkgroup is None or not self.judged(radio.talkgroup):
                continue  # a pool radio is tuned at run time, inside its bands
            problem = self.talkgroup_problem(radio.talkgroup)
            if problem is not None:
                self.add(("radios", name, "talkgroup"), problem)
            else:
                self.check_tuning(name, radio)
        for name, link in cfg.links.items():
            if name in cfg.radios:
                self.add(
                    ("links", name),
                    f"port name '{name}' is already a radio's; port names must be unique "
                    "across radios and links",
                )
            problem = self.talkgroup_problem(link.talkgroup)
            if problem is not None:
                self.add(("links", name, "talkgroup"), problem)
            elif link.protocol == "usrp" and self.judged(link.talkgroup):
                talkgroup_id = cfg.talkgroup(link.talkgroup).id
                if talkgroup_id is not None and talkgroup_id > USRP_MAX_TALKGROUP_ID:
                    self.add(
                        ("links", name, "talkgroup"),
                        f"talkgroup '{link.talkgroup}' has id {talkgroup_id}, too large for "
                        f"the USRP header's 32-bit talkgroup (at most {USRP_MAX_TALKGROUP_ID})",
                    )
        for patch_name, patch in cfg.patches.items():
            for index, member in enumerate(patch.members):
                problem = self.talkgroup_problem(member.talkgroup)
                if problem is not None:
                    self.add(("patches", patch_name, "members", index, "talkgroup"), problem)
            member_agencies = patch.member_agencies()
            for index, agency in enumerate(patch.consent or []):
                problem = self.agency_problem(agency)
                if problem is None and agency not in member_agencies:
                    problem = (
                        f"agency '{agency}' has no talkgroup in this patch; "
                        f"member agencies are: {', '.join(member_agencies)}"
                    )
                if problem is not None:
                    self.add(("patches", patch_name, "consent", index), problem)
        for user, dispatcher in cfg.access.dispatchers.items():
            problem = self.agency_problem(dispatcher.agency)
            if problem is not None:
                self.add(("access", "dispatchers", user, "agency"), problem)

    def check_tuning(self, name: str, radio: Radio) -> None:
        """A radio's talkgroup must have frequencies, and it must transmit and receive inside its
        bands."""
        if radio.talkgroup is None:  # a pool radio; pool_candidates keeps it inside its bands
            return
        talkgroup = self.cfg.talkgroup(radio.talkgroup)
        if talkgroup.tx_mhz is None:
            self.add(
                ("radios", name, "talkgroup"),
                f"talkgroup '{radio.talkgroup}' has no frequencies, and a radio must be tuned: "
                "give the talkgroup rx_mhz/tx_mhz, or serve it with a link",
            )
            return
        rx, tx = talkgroup.rx_mhz, talkgroup.tx_mhz
        assert rx is not None  # (one frequency given stands for both)
        # Receive as well as transmit: a receive frequency out of every band (a typo, a value in
        # the wrong unit) would leave the port deaf without a word.
        for does, mhz in (("transmit", tx), ("receive", rx))[: 1 if rx == tx else 2]:
            if radio.bands_mhz is not None:
                if not any(low <= mhz <= high for low, high in radio.bands_mhz):
                    self.add(
                        ("radios", name, "talkgroup"),
                        f"radio '{name}' would {does} on {mhz:g} MHz ({radio.talkgroup}), "
                        f"outside its bands_mhz {_format_bands(radio.bands_mhz)}",
                    )
            elif not any(low <= mhz <= high for low, high in LAND_MOBILE_BANDS_MHZ):
                key = "tx_mhz" if does == "transmit" else "rx_mhz"
                self.add(
                    ("radios", name, "talkgroup"),
                    f"radio '{name}' would {does} on {mhz:g} MHz ({radio.talkgroup}), outside "
                    f"the land-mobile bands ({_format_bands(LAND_MOBILE_BANDS_MHZ)}); check "
                    f"{key}, or give the radio its bands_mhz",
                )

    def check_served(self) -> None:
        """Every talkgroup has a dedicated radio or link, or a pool radio that can tune to it."""
        if self.unchecked.any_in("radios") or self.unchecked.any_in("links"):
            return  # the port left out may be the one that serves it
        served = {self.cfg.port_talkgroup(port) for port in self.cfg.ports()}
        for agency_name, agency in self.cfg.agencies.items():
            for talkgroup_name in agency.talkgroups:
                ref = f"{agency_name}/{talkgroup_name}"
                if ref not in served and not self.cfg.pool_candidates(ref):
                    self.add(
                        ("agencies", agency_name, "talkgroups", talkgroup_name),
                        f"talkgroup '{ref}' is served by no radio or link; add a radio or link, "
                        "or a pool radio whose bands_mhz cover it, or remove the talkgroup",
                    )

    def check_enabled_patches(self) -> None:
        """Two patches enabled at start must not share a port: a port is in one patch at a time.

        Only dedicated ports count: pool radios are assigned when a patch is enabled, at run time.
        """
        port_owner: dict[str, str] = {}
        for patch_name, patch in self.cfg.patches.items():
            if not patch.enabled:
                continue
            clashes: dict[str, str] = {}
            ports: list[str] = []
            for member in patch.members:
                if not self.judged(member.talkgroup) or self.talkgroup_problem(member.talkgroup):
                    continue
                for port in self.cfg.ports_of_talkgroup(member.talkgroup):
                    ports.append(port)
                    other = port_owner.get(port)
                    if other is not None and other not in clashes:
                        clashes[other] = port
            for other, port in clashes.items():
                self.add(
                    ("patches", patch_name, "enabled"),
                    f"patch '{patch_name}' shares port '{port}' ({self.cfg.port_talkgroup(port)}) "
                    f"with patch '{other}', which is also enabled; only one of them may start "
                    "enabled",
                )
            for port in ports:
                port_owner.setdefault(port, patch_name)

    # --- devices -------------------------------------------------------------------------------

    def check_audio(self) -> None:
        users: dict[tuple[str, str], list[tuple[str, str]]] = {}
        opened: dict[tuple[str, str], tuple[str, AudioSettings]] = {}
        for name, radio in self.cfg.radios.items():
            if radio.audio is None:
                continue
            for direction, device in (("input", radio.audio.input), ("output", radio.audio.output)):
                first = opened.setdefault((direction, device), (name, radio.audio))
                if first[0] != name:
                    self._check_shared_device(name, radio.audio, direction, device, *first)
                channel = radio.audio.channel
                earlier = users.setdefault((direction, device), [])
                for other, other_channel in earlier:
                    if _channels_overlap(channel, other_channel):
                        self.add(
                            ("radios", name, "audio", direction),
                            f"audio {direction} '{device}' channel {channel} is already used by "
                            f"radio '{other}' (channel {other_channel}); mono takes both "
                            "channels, so give each radio its own channel or sound card",
                        )
                        break
                earlier.append((name, channel))

    def _check_shared_device(
        self,
        name: str,
        audio: AudioSettings,
        direction: str,
        device: str,
        other: str,
        other_audio: AudioSettings,
    ) -> None:
        """Radios on the two channels of one sound card share its stream: one rate, one block.

        Reported once per key, though a card is usually both the input and the output.
        """
        rate, other_rate = audio.rate, other_audio.rate
        if rate is not None and other_rate is not None and rate != other_rate:
            self.add_once(
                ("radios", name, "audio", "rate"),
                f"audio {direction} '{device}' is opened at {other_rate} Hz for radio '{other}', "
                f"not {rate}; radios sharing a sound card use one rate",
            )
        if audio.block_ms != other_audio.block_ms:
            self.add_once(
                ("radios", name, "audio", "block_ms"),
                f"audio {direction} '{device}' runs in {other_audio.block_ms} ms blocks for radio "
                f"'{other}', not {audio.block_ms}; radios sharing a sound card use one block_ms",
            )

    def check_cm108_inputs(self) -> None:
        """A CM108 COS input belongs to one radio, and is no other radio's PTT GPIO."""
        ptt_gpios: dict[tuple[str, int], str] = {}
        cos_inputs: dict[tuple[str, str], str] = {}
        for name, radio in self.cfg.radios.items():
            ptt = radio.ptt
            if ptt is not None and ptt.method == "cm108" and ptt.gpio is not None:
                ptt_gpios.setdefault((_cm108_device(radio, ptt.port), ptt.gpio), name)
        for name, radio in self.cfg.radios.items():
            squelch = radio.squelch
            if squelch is None or squelch.method != "cm108":
                continue
            device = _cm108_device(radio, squelch.port)
            key = "gpio" if squelch.gpio is not None else "button"
            source = (
                f"GPIO {squelch.gpio}" if squelch.gpio is not None else f"button {squelch.button}"
            )
            keyed = ptt_gpios.get((device, squelch.gpio)) if squelch.gpio is not None else None
            if keyed is not None and keyed != name:
                self.add(
                    ("radios", name, "squelch", key),
                    f"CM108 {source} of '{device}' keys radio '{keyed}'; it cannot also be "
                    "this radio's COS input",
                )
            other = cos_inputs.setdefault((device, source), name)
            if other != name:
                self.add(
                    ("radios", name, "squelch", key),
                    f"CM108 {source} of '{device}' is already the COS input of radio '{other}'; "
                    "give each radio its own input",
                )

    def check_serial_lines(self) -> None:
        """One radio per CAT port; one PTT and one squelch per modem line (Dire Wolf's rule).

        Radios may share a serial device for different lines (radio A keyed by RTS, radio B by
        DTR; or A's PTT and B's squelch), but a CAT port carries one radio's protocol only.
        """
        cat_owner: dict[str, str] = {}
        rigctld_owner: dict[tuple[str, int], str] = {}
        ptt_lines: dict[tuple[str, str], str] = {}
        squelch_lines: dict[tuple[str, str], str] = {}
        cm108_ptt: dict[tuple[str, int], str] = {}
        line_users: dict[str, str] = {}  # device -> first radio using a PTT or squelch line on it
        for name, radio in self.cfg.radios.items():
            control = radio.control
            if control is not None and control.driver in SERIAL_DRIVERS and control.port:
                other = cat_owner.get(control.port) or _other(line_users.get(control.port), name)
                if other is not None:
                    self.add(
                        ("radios", name, "control", "port"),
                        f"serial port '{control.port}' is already used by radio '{other}'; "
                        "a CAT port belongs to one radio",
                    )
                cat_owner.setdefault(control.port, name)
            if control is not None and control.driver == "rigctld":
                address = (control.host or "", control.tcp_port or 0)
                if address in rigctld_owner:
                    self.add(
                        ("radios", name, "control"),
                        f"rigctld at {address[0]}:{address[1]} already controls radio "
                        f"'{rigctld_owner[address]}'; run one rigctld per radio",
                    )
                rigctld_owner.setdefault(address, name)
            own_cat = control.port if control is not None else None
            ptt = radio.ptt
            if ptt is not None and ptt.method in SERIAL_PTT_METHODS and ptt.port:
                self._check_line(name, "ptt", ptt.port, ptt.method, own_cat, cat_owner, ptt_lines)
                line_users.setdefault(ptt.port, name)
            if ptt is not None and ptt.method == "cm108":
                # No port: the CM108 of the sound card (a simulated radio must give a port).
                device = ptt.port or (radio.audio.output if radio.audio is not None else "")
                key = (device, ptt.gpio or 0)
                if key in cm108_ptt:
                    self.add(
                        ("radios", name, "ptt", "gpio"),
                        f"CM108 GPIO {key[1]} of '{device}' already keys radio "
                        f"'{cm108_ptt[key]}'; two radios cannot share a PTT line",
                    )
                cm108_ptt.setdefault(key, name)
            squelch = radio.squelch
            if squelch is not None and squelch.method in SERIAL_SQUELCH_METHODS and squelch.port:
                self._check_line(
                    name, "squelch", squelch.port, squelch.method, own_cat, cat_owner, squelch_lines
                )
                line_users.setdefault(squelch.port, name)

    def _check_line(
        self,
        name: str,
        role: str,
        device: str,
        signal: str,
        own_cat: str | None,
        cat_owner: dict[str, str],
        lines: dict[tuple[str, str], str],
    ) -> None:
        cat_radio = cat_owner.get(device)
        if cat_radio is not None and cat_radio != name and device != own_cat:
            self.add(
                ("radios", name, role, "port"),
                f"serial port '{device}' is the CAT port of radio '{cat_radio}'; "
                "a CAT port belongs to one radio",
            )
            return
        other = lines.get((device, signal))
        if other is not None and other != name:
            what = "keys" if role == "ptt" else "carries the squelch of"
            self.add(
                ("radios", name, role, "port"),
                f"the {signal.upper()} line of '{device}' already {what} radio '{other}'; "
                f"two radios cannot share a {'PTT' if role == 'ptt' else 'squelch'} line",
            )
        lines.setdefault((device, signal), name)


def _cm108_device(radio: Radio, port: str | None) -> str:
    """The CM108 a radio's PTT or squelch uses: its port, else the radio's sound card."""
    if port is not None:
        return port
    return radio.audio.output if radio.audio is not None else ""


def _other(first_user: str | None, name: str) -> str | None:
    return first_user if first_user is not None and first_user != name else None


def check_references(cfg: Config, unchecked: Unchecked | None = None) -> list[ReferenceProblem]:
    """Every cross-section problem of `cfg`, in section order.

    `unchecked` names what failed the schema and was left out of `cfg`: references into it are
    not judged, so the problems returned are real whatever the fix of the schema errors.
    """
    checker = _ReferenceChecker(cfg, unchecked or Unchecked())
    checker.check_names()
    checker.check_link_frames()
    checker.check_link_addresses()
    checker.check_served()
    checker.check_enabled_patches()
    checker.check_audio()
    checker.check_serial_lines()
    checker.check_cm108_inputs()
    return checker.problems
