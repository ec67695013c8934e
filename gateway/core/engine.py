"""The patch engine: a pure, clocked core.

One call of `PatchEngine.tick` takes the received frame and carrier flag of every port and returns
the frame to transmit on every port, every port's PTT, and the events of that tick. The engine owns
no thread, socket, device or clock: the daemon drives it in real time, `crosspatch simulate` as
fast as it can, and the tests frame by frame.

Per-port state lives in numpy arrays and every rule is a whole-array operation, so the Python work
of a tick does not grow with a loop over ports; loops run only over the ports whose state changed
this tick (to build events). Mixing is one sparse `patches x ports` product, rebuilt only when the
set of talkers changes.

Rules (docs/design.md, "Timing rules per port", "Duplex", "Floor policies"):
- carrier is qualified: a half-duplex port is deaf while keyed and ignores carrier for
  `rx_inhibit_ms` after it unkeys (radios raise a false COR on unkey); a full-duplex port hears
  all along;
- the floor of a patch goes by its policy (`first`, `priority`, `mix`); a listen-only member never
  talks, a talk-only member is never keyed; nobody hears themselves (mix-minus);
- a destination is keyed at once, its audio follows `tx_delay_ms` later, and PTT is held `hang_ms`
  after the last of the talker's audio has gone out;
- a transmitter keyed `timeout_s` without a break is unkeyed, raises an alarm, and stays unkeyed
  until its source drops; a talker whose every destination timed out loses the floor until its
  carrier drops (a stuck microphone cannot hold a patch);
- mixed talkers pass a limiter, so their sum never clips.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import sparse

from gateway.core.errors import UserError
from gateway.core.event_types import (
    Alarm,
    AnnounceReason,
    CallEnd,
    CallEndReason,
    CallStart,
    Carrier,
    PortRef,
    Ptt,
    PttReason,
    ReleaseReason,
)
from gateway.core.events import Event, TickClock
from gateway.core.timing import (
    DEFAULT_HANG_MS,
    DEFAULT_RX_INHIBIT_MS,
    DEFAULT_TIMEOUT_S,
    DEFAULT_TX_DELAY_MS,
    frame_samples,
    ms_to_samples,
    seconds_to_ticks,
)

FloatFrames = npt.NDArray[np.float32]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]

# Limiter: mixed audio is held below this peak (-1 dBFS). Gain drops at once when a frame would
# exceed it and recovers with this time constant, so a lone talker below the ceiling is untouched.
LIMITER_CEILING = 10 ** (-1 / 20)
LIMITER_RELEASE_MS = 250.0

# An announcement that could not be sent within this time (the port stayed busy) is dropped.
ANNOUNCE_MAX_WAIT_S = 10.0

# Peak level reported for a call that carried no audio at all (a bare carrier).
SILENCE_DBFS = -120.0

_NEVER = -(2**40)  # a tick long before any real one
_KEY_NONE = np.iinfo(np.int64).max
_PRIORITY_MAX = 100
_TICK_BITS = 34  # floor keys hold carrier-start ticks below 2**34 (over ten years of 20 ms ticks)


class Floor(StrEnum):
    FIRST = "first"
    PRIORITY = "priority"
    MIX = "mix"


class MemberMode(StrEnum):
    TALK_LISTEN = "talk+listen"
    LISTEN = "listen"
    TALK = "talk"


@dataclass(frozen=True)
class PortTiming:
    tx_delay_ms: int = DEFAULT_TX_DELAY_MS
    hang_ms: int = DEFAULT_HANG_MS
    timeout_s: float = DEFAULT_TIMEOUT_S
    rx_inhibit_ms: int = DEFAULT_RX_INHIBIT_MS


@dataclass(frozen=True)
class PortSpec:
    name: str
    talkgroup: str  # "agency/name"; "" for a pool radio until a patch takes it
    agency: str
    timing: PortTiming = PortTiming()
    full_duplex: bool = False
    pool: str | None = None  # a radio tuned on demand to whatever talkgroup a patch needs


@dataclass(frozen=True)
class MemberSpec:
    port: str
    mode: MemberMode = MemberMode.TALK_LISTEN
    priority: int = 0


@dataclass(frozen=True)
class PooledMemberSpec:
    """A member talkgroup that no dedicated port serves: when the patch is enabled, the first
    free pool radio of `candidates` (those whose bands cover it, in config order) serves it."""

    talkgroup: str
    agency: str
    candidates: tuple[str, ...]
    mode: MemberMode = MemberMode.TALK_LISTEN
    priority: int = 0


@dataclass(frozen=True)
class PatchSpec:
    name: str
    members: tuple[MemberSpec, ...]
    floor: Floor = Floor.FIRST
    pooled: tuple[PooledMemberSpec, ...] = ()


class EngineError(UserError):
    """A request the engine refuses; the message is one sentence for the user."""


class NoFreeRadio(EngineError):
    """A patch needs a pool radio for a talkgroup and none is free."""


class PatchConflict(EngineError):
    def __init__(self, patch: str, port: str, other: str) -> None:
        super().__init__(
            f"patch '{patch}' cannot be enabled: port '{port}' is already in enabled patch "
            f"'{other}'; disable '{other}' first"
        )
        self.patch = patch
        self.port = port
        self.other = other


@dataclass
class TickResult:
    tx: FloatFrames  # ports x samples, float32, silence where unkeyed
    ptt: BoolArray  # ports
    events: list[Event]


@dataclass
class _Call:
    call_id: str
    patch: str
    source: PortRef
    destinations: list[PortRef]
    start_tick: int


class _EndReason:
    NONE = 0
    TIMEOUT = 1


class PatchEngine:
    """The gateway's heart: ports in, ports out, one frame at a time."""

    def __init__(
        self,
        ports: Sequence[PortSpec],
        patches: Sequence[PatchSpec],
        *,
        clock: TickClock,
        gateway_id: str,
    ) -> None:
        if len({p.name for p in ports}) != len(ports):
            raise EngineError("port names must be unique")
        self.clock = clock
        self.gateway_id = gateway_id
        self.frame_samples = frame_samples(clock.frame_ms)
        self.ports: tuple[PortSpec, ...] = tuple(ports)
        self.port_index = {p.name: i for i, p in enumerate(self.ports)}
        # What each port serves now: fixed for a dedicated port, set while a patch holds a pool
        # radio. `assignments` (pool radio -> talkgroup) changes only in enable/disable.
        self._serves: list[tuple[str, str]] = [(p.talkgroup, p.agency) for p in self.ports]
        self.assignments: dict[str, str] = {}
        self._members: dict[str, tuple[MemberSpec, ...]] = {}  # of each enabled patch
        self.patches: dict[str, PatchSpec] = {}
        self._patch_ids: dict[str, int] = {}
        self._patch_names: list[str] = []
        for patch in patches:
            self._add_patch_spec(patch)

        n = len(self.ports)
        frame = self.frame_samples
        ms_per_frame = clock.frame_ms
        self._full = np.array([p.full_duplex for p in self.ports], dtype=bool)
        delays = [ms_to_samples(p.timing.tx_delay_ms) for p in self.ports]
        delay = np.array(delays, dtype=np.int64)
        hang = np.array([ms_to_samples(p.timing.hang_ms) for p in self.ports], dtype=np.int64)
        # PTT is held until the last delayed sample has gone out, then hang_ms more.
        self._hold = -(-(delay + hang) // frame)
        self._timeout = np.array(
            [max(1, seconds_to_ticks(p.timing.timeout_s, ms_per_frame)) for p in self.ports],
            dtype=np.int64,
        )
        self._inhibit = np.array(
            [math.ceil(p.timing.rx_inhibit_ms / ms_per_frame) for p in self.ports], dtype=np.int64
        )
        self._timeout_s = [p.timing.timeout_s for p in self.ports]

        # Delay line: one ring buffer row per port, read back per group of equal delays (a site
        # has a handful of distinct delays, so this loops over groups, not ports).
        self._ring_len = -(-(max(delays, default=0) + frame) // frame) * frame
        self._ring = np.zeros((n, self._ring_len), dtype=np.float32)
        self._delay_groups = [(int(d), np.flatnonzero(delay == d)) for d in np.unique(delay)]

        # Membership of enabled patches.
        self._patch_of = np.full(n, -1, dtype=np.int64)
        self._talk = np.zeros(n, dtype=bool)
        self._listen = np.zeros(n, dtype=bool)
        self._prio = np.zeros(n, dtype=np.int64)
        self._mix_member = np.zeros(n, dtype=bool)
        self._key_prio = np.zeros(n, dtype=np.int64)
        self._enabled: set[str] = set()
        self._index_bits = max(1, (n - 1).bit_length())
        self._segments_dirty = True
        self._seg_order = np.zeros(0, dtype=np.int64)
        self._seg_starts = np.zeros(0, dtype=np.int64)
        self._seg_patch = np.zeros(0, dtype=np.int64)
        self._seg_priority = np.zeros(0, dtype=bool)
        self._pid_pad = np.full(n, len(self._patch_ids), dtype=np.int64)
        self._floor_memo: tuple[BoolArray, BoolArray, BoolArray] | None = None

        # Per-port runtime state. An unavailable port (offline hardware, a radio being tuned)
        # is neither heard nor keyed.
        self._online = np.ones(n, dtype=bool)
        self._ready = np.ones(n, dtype=bool)
        self._available = np.ones(n, dtype=bool)  # online and ready
        self._carrier = np.zeros(n, dtype=bool)
        self._carrier_since = np.zeros(n, dtype=np.int64)
        self._inhibit_until = np.zeros(n, dtype=np.int64)
        self._src = np.zeros(n, dtype=bool)
        self._src_lock = np.zeros(n, dtype=bool)
        self._end_reason = np.zeros(n, dtype=np.int8)
        self._tx_lock = np.zeros(n, dtype=bool)
        self._ptt = np.zeros(n, dtype=bool)
        self._keyed_since = np.zeros(n, dtype=np.int64)
        self._last_wanted = np.full(n, _NEVER, dtype=np.int64)
        self._gain = np.ones(n, dtype=np.float32)
        self._call_peak = np.zeros(n, dtype=np.float32)
        self._calls: dict[int, _Call] = {}
        # Announcements waiting or playing, per port: samples and how far they have played.
        # port -> samples, position, tick queued, PTT reason
        self._announcements: dict[int, tuple[FloatFrames, int, int, AnnounceReason]] = {}

        # Per-patch floor state (indexed by patch id).
        self._holder = np.full(len(self._patch_ids), -1, dtype=np.int64)
        self._mixer: Any = None  # sparse patches x ports matrix of the current talkers
        self._mixer_src = np.zeros(n, dtype=bool)

        self._release = np.float32(math.exp(-ms_per_frame / LIMITER_RELEASE_MS))
        self._ramp = (np.arange(1, frame + 1, dtype=np.float32) / frame)[None, :]
        self.tick_index = 0
        self._quiet = False  # True while idle ticks have left every port's state at rest

    # ------------------------------------------------------------------ patch table
    def _add_patch_spec(self, patch: PatchSpec) -> None:
        for member in patch.members:
            if member.port not in self.port_index:
                raise EngineError(f"patch '{patch.name}' names unknown port '{member.port}'")
            if not 0 <= member.priority <= _PRIORITY_MAX:
                raise EngineError(f"patch '{patch.name}': priority must be 0..{_PRIORITY_MAX}")
        if len({m.port for m in patch.members}) != len(patch.members):
            raise EngineError(f"patch '{patch.name}' names a port twice")
        for pooled in patch.pooled:
            for port in pooled.candidates:
                if port not in self.port_index or self.ports[self.port_index[port]].pool is None:
                    raise EngineError(
                        f"patch '{patch.name}': '{port}' is not a pool radio of this gateway"
                    )
        self.patches[patch.name] = patch
        self._patch_ids[patch.name] = len(self._patch_ids)
        self._patch_names.append(patch.name)

    @property
    def enabled_patches(self) -> frozenset[str]:
        return frozenset(self._enabled)

    def patch_of_port(self, port: str) -> str | None:
        pid = int(self._patch_of[self.port_index[port]])
        return None if pid < 0 else self._patch_name(pid)

    def _patch_name(self, pid: int) -> str:
        return self._patch_names[pid]

    def enable_patch(self, name: str, prefer: dict[str, str] | None = None) -> None:
        """Joins a patch's members; refused if a member port is in another enabled patch, or
        if a talkgroup that only a pool can serve finds no free pool radio. `prefer` (pool
        radio -> talkgroup) keeps earlier choices across a reload."""
        patch = self._spec(name)
        if name in self._enabled:
            return
        members = self.check_enable(name, prefer)
        pid = self._patch_ids[name]
        for member in members:
            i = self.port_index[member.port]
            self._patch_of[i] = pid
            self._talk[i] = member.mode != MemberMode.LISTEN
            self._listen[i] = member.mode != MemberMode.TALK
            self._prio[i] = member.priority
            self._mix_member[i] = patch.floor == Floor.MIX
            if patch.floor == Floor.PRIORITY:
                self._key_prio[i] = (_PRIORITY_MAX - member.priority) << (
                    _TICK_BITS + self._index_bits
                )
            else:
                self._key_prio[i] = 0
        for pooled, member in zip(patch.pooled, members[len(patch.members) :], strict=True):
            self._serves[self.port_index[member.port]] = (pooled.talkgroup, pooled.agency)
            self.assignments[member.port] = pooled.talkgroup
        self._members[name] = members
        self._holder[pid] = -1
        self._enabled.add(name)
        self._segments_dirty = True

    def check_enable(
        self, name: str, prefer: dict[str, str] | None = None
    ) -> tuple[MemberSpec, ...]:
        """The members enabling `name` would take now (pool radios chosen), changing nothing;
        raises `PatchConflict` or `NoFreeRadio` as `enable_patch` would."""
        patch = self._spec(name)
        for member in patch.members:
            other = self._patch_of[self.port_index[member.port]]
            if other >= 0 and self._patch_name(int(other)) != name:
                raise PatchConflict(name, member.port, self._patch_name(int(other)))
        return patch.members + self._take_pool_radios(patch, prefer or {})

    def _take_pool_radios(self, patch: PatchSpec, prefer: dict[str, str]) -> tuple[MemberSpec, ...]:
        """One free pool radio per pooled member (none is taken unless all can be)."""
        taken: list[MemberSpec] = []
        for pooled in patch.pooled:
            chosen = {m.port for m in taken}
            free = [
                port
                for port in pooled.candidates
                if self._patch_of[self.port_index[port]] < 0
                and self._online[self.port_index[port]]
                and port not in chosen
            ]
            if not free:
                busy = [
                    f"{port} ({self._why_busy(port, chosen)})" for port in pooled.candidates
                ] or ["none has bands that cover it"]
                raise NoFreeRadio(
                    f"patch '{patch.name}' cannot be enabled: no free pool radio can serve "
                    f"'{pooled.talkgroup}' ({', '.join(busy)}); disable a patch that holds one"
                )
            again = [port for port in free if prefer.get(port) == pooled.talkgroup]
            port = (again or free)[0]
            taken.append(MemberSpec(port, pooled.mode, pooled.priority))
        return tuple(taken)

    def _why_busy(self, port: str, chosen: set[str]) -> str:
        i = self.port_index[port]
        if port in chosen:
            return "taken for another member"
        if self._patch_of[i] >= 0:
            return f"in patch '{self._patch_name(int(self._patch_of[i]))}'"
        return "offline"

    def disable_patch(self, name: str, reason: ReleaseReason = "patch_disabled") -> list[Event]:
        """Splits a patch: its calls end and its transmitters unkey now, with `reason`."""
        self._spec(name)
        if name not in self._enabled:
            return []
        pid = self._patch_ids[name]
        members = np.flatnonzero(self._patch_of == pid)
        events = self._release_ports(members, reason)
        self._patch_of[members] = -1
        self._talk[members] = False
        self._listen[members] = False
        self._mix_member[members] = False
        self._holder[pid] = -1
        self._enabled.discard(name)
        self._members.pop(name, None)
        for i in members:
            port = self.ports[i]
            if port.pool is not None:  # back to the pool
                self._serves[i] = (port.talkgroup, port.agency)
                self.assignments.pop(port.name, None)
        self._segments_dirty = True
        return events

    def release_all(self, reason: ReleaseReason = "shutdown") -> list[Event]:
        """Ends every call and unkeys every port (shutdown, reload of the whole table)."""
        events = self._release_ports(np.arange(len(self.ports)), reason)
        self._holder[:] = -1
        self._announcements.clear()
        return events

    def port_serves(self, port: str) -> tuple[str, str]:
        """(talkgroup, agency) the port serves now; ("", "") for a pool radio not in use."""
        return self._serves[self.port_index[port]]

    def members(self, patch: str) -> tuple[MemberSpec, ...]:
        """The member ports of a patch: as enabled (pool radios included), else as specified."""
        return self._members.get(patch) or self._spec(patch).members

    def online(self, port: str) -> bool:
        return bool(self._online[self.port_index[port]])

    def ready(self, port: str) -> bool:
        return bool(self._ready[self.port_index[port]])

    def set_port_online(
        self, port: str, online: bool, reason: ReleaseReason = "port_offline"
    ) -> list[Event]:
        """Hardware state: an offline port (unplugged, not answering) is out of service and no
        pool radio offline is taken for a patch."""
        return self._set_state(self._online, port, online, reason)

    def set_port_ready(
        self, port: str, ready: bool, reason: ReleaseReason = "retune"
    ) -> list[Event]:
        """Tuning state: a radio being tuned (or that failed to tune) is out of service."""
        return self._set_state(self._ready, port, ready, reason)

    def _set_state(
        self, flags: BoolArray, port: str, value: bool, reason: ReleaseReason
    ) -> list[Event]:
        # Out of service, a port is neither heard nor keyed: its call ends and its transmitter
        # unkeys now with `reason`; its patch carries on without it.
        i = self.port_index[port]
        if bool(flags[i]) == value:
            return []
        flags[i] = value
        was = bool(self._available[i])
        self._available[i] = self._online[i] & self._ready[i]
        self._floor_memo = None
        self._quiet = False
        if was and not self._available[i]:
            return self._release_ports(np.array([i], dtype=np.int64), reason)
        return []

    def alarm(self, kind: str, detail: str, *, port: str | None = None) -> Alarm:
        """An `alarm` event stamped with the engine's time."""
        return self._alarm(kind, detail, port=port)

    def announce(
        self, ports: Sequence[str], samples: FloatFrames, reason: AnnounceReason = "announcement"
    ) -> None:
        """Queues a short announcement (a voice prompt, a tone sequence) on each port.

        It is sent when the port is free: not a call's destination, not receiving, in service.
        The port is keyed for it (ptt `reason`, by default `announcement`; a technician's key
        test is `key_test`), the audio goes out after the port's tx_delay_ms and PTT is held its
        hang time, as for a call. A call that starts
        meanwhile goes first; an announcement still waiting after ANNOUNCE_MAX_WAIT_S is
        dropped (an old "patch enabled" is worse than none).
        """
        audio = np.asarray(samples, dtype=np.float32).ravel()
        if not audio.size:
            return
        for port in ports:
            i = self.port_index[port]
            if not self._serves[i][0]:
                continue  # an idle pool radio has no channel to speak on
            self._announcements[i] = (audio, 0, self.tick_index, reason)
        self._quiet = False

    def _spec(self, name: str) -> PatchSpec:
        try:
            return self.patches[name]
        except KeyError:
            known = ", ".join(sorted(self.patches)) or "none"
            raise EngineError(f"no patch named '{name}' (patches: {known})") from None

    def _release_ports(self, idx: IntArray, reason: ReleaseReason) -> list[Event]:
        t = self.tick_index
        events: list[Event] = []
        for i in idx[self._src[idx]]:
            events.append(self._end_call(int(i), t, reason))
        self._src[idx] = False
        for i in idx[self._ptt[idx]]:
            events.append(self._ptt_event(int(i), False, reason))
        keyed = idx[self._ptt[idx]]
        self._inhibit_until[keyed] = t + self._inhibit[keyed]
        self._ptt[idx] = False
        self._last_wanted[idx] = _NEVER
        self._tx_lock[idx] = False
        self._src_lock[idx] = False
        self._end_reason[idx] = _EndReason.NONE
        self._ring[idx] = 0.0
        self._gain[idx] = 1.0
        self._floor_memo = None
        return events

    def _rebuild_segments(self) -> None:
        """Groups the ports of enabled first/priority patches for the per-patch floor reduction."""
        ranked = (self._patch_of >= 0) & ~self._mix_member
        idx = np.flatnonzero(ranked)
        order = idx[np.argsort(self._patch_of[idx], kind="stable")]
        pids = self._patch_of[order]
        if order.size:
            starts = np.flatnonzero(np.r_[True, pids[1:] != pids[:-1]])
        else:
            starts = np.zeros(0, dtype=np.int64)
        self._seg_order = order
        self._seg_starts = starts
        self._seg_patch = pids[starts] if order.size else np.zeros(0, dtype=np.int64)
        floors = [self.patches[self._patch_name(int(p))].floor for p in self._seg_patch]
        self._seg_priority = np.array([f == Floor.PRIORITY for f in floors], dtype=bool)
        # Patch id per port, with ports in no enabled patch pointing at an always-empty last row.
        self._pid_pad = np.where(self._patch_of >= 0, self._patch_of, len(self._patch_ids))
        self._floor_memo = None
        self._segments_dirty = False

    # ------------------------------------------------------------------ the tick
    def tick(self, rx: FloatFrames, carrier: BoolArray) -> TickResult:
        n, frame = len(self.ports), self.frame_samples
        if rx.shape != (n, frame):
            raise ValueError(f"rx must be {n} x {frame} samples, got {rx.shape}")
        if self._segments_dirty:
            self._rebuild_segments()
        t = self.tick_index
        raw = np.asarray(carrier, dtype=bool) & self._available
        if not (
            raw.any()
            or self._ptt.any()
            or self._carrier.any()
            or self._src.any()
            or self._announcements
        ):
            return self._idle_tick(n, frame)
        self._quiet = False
        events: list[Event] = []
        ptt_prev = self._ptt

        # 1. Qualified carrier: a half-duplex port is deaf while keyed and during the unkey
        #    inhibit; a full-duplex port hears all along (it has no false COR on unkey).
        eff = raw & (self._full | (~ptt_prev & (t >= self._inhibit_until)))
        for i in np.flatnonzero(eff != self._carrier):
            change: Carrier = {
                "type": "carrier",
                "time": self._now(),
                "port": self.ports[i].name,
                "on": bool(eff[i]),
            }
            events.append(change)
        self._carrier_since[eff & ~self._carrier] = t
        self._carrier = eff
        self._src_lock &= raw

        # 2. Floors.
        cand = eff & self._talk & ~self._src_lock
        memo = self._floor_memo
        if memo is not None and np.array_equal(memo[0], cand) and np.array_equal(memo[1], ptt_prev):
            src = memo[2].copy()  # same talkers, same keyed ports: the floors cannot have moved
        else:
            src = self._floors(cand, ptt_prev)
            self._floor_memo = (cand, ptt_prev, src.copy())

        # 3. Calls that ended and began.
        src_prev = self._src
        for i in np.flatnonzero(src_prev & ~src):
            reason: CallEndReason
            if self._end_reason[i] == _EndReason.TIMEOUT:
                reason = "timeout"
            else:
                reason = "preempted" if cand[i] else "carrier_drop"
            self._end_reason[i] = _EndReason.NONE
            events.append(self._end_call(int(i), t, reason))
        self._src = src

        # 4. Who is sent audio, and PTT.
        pid_pad = self._pid_pad
        talkers = np.bincount(self._patch_of[src], minlength=len(self._patch_ids) + 1)
        others = talkers[pid_pad] - src
        wanted_raw = self._listen & (others > 0) & ~(src & ~self._full) & self._available
        self._tx_lock &= wanted_raw
        wanted = wanted_raw & ~self._tx_lock
        speaking = self._announcing(wanted, t) if self._announcements else None
        self._last_wanted[wanted] = t
        if speaking is not None:
            self._last_wanted[speaking] = t
        ptt = (t - self._last_wanted <= self._hold) & ~self._tx_lock
        self._keyed_since[ptt & ~ptt_prev] = t
        expired = ptt & (t - self._keyed_since >= self._timeout)
        if expired.any():
            events.extend(self._time_out(expired, wanted_raw, src))
            ptt &= ~expired
            wanted &= ~expired
        for i in np.flatnonzero(src & ~src_prev):
            self._call_peak[i] = 0.0
            self._start_call(int(i), t, wanted, events)

        # 5. PTT changes; carrier is ignored for rx_inhibit_ms after an unkey.
        falling = ptt_prev & ~ptt
        self._inhibit_until[falling] = t + 1 + self._inhibit[falling]
        for i in np.flatnonzero(ptt != ptt_prev):
            keyed: PttReason
            if ptt[i]:
                keyed = (
                    self._announcements[int(i)][3]
                    if speaking is not None and speaking[i]
                    else "call"
                )
            else:
                keyed = "timeout" if expired[i] else "hang_elapsed"
            events.append(self._ptt_event(int(i), bool(ptt[i]), keyed))
        self._ptt = ptt

        # 6. Audio: mix-minus, limiter, delay line, silence where unkeyed.
        tx = self._mix(rx, src, wanted, pid_pad, ptt, speaking)
        self.tick_index = t + 1
        return TickResult(tx=tx, ptt=ptt.copy(), events=events)

    def _idle_tick(self, n: int, frame: int) -> TickResult:
        # Nobody receiving, talking or keyed: nothing can change but the clock. Most ticks of a
        # real site are like this, so they skip the rules (the result is the same, cheaper).
        if not self._quiet:
            self._ring[:] = 0.0
            self._gain[:] = 1.0
            self._holder[:] = -1
            self._tx_lock[:] = False
            self._src_lock[:] = False
            self._floor_memo = None
            self._quiet = True
        self.tick_index += 1
        return TickResult(
            tx=np.zeros((n, frame), dtype=np.float32), ptt=np.zeros(n, dtype=bool), events=[]
        )

    def _floors(self, cand: BoolArray, ptt_prev: BoolArray) -> BoolArray:
        src = cand & self._mix_member  # a mix patch hears every talker
        if not self._seg_starts.size:
            return src
        holder = self._holder[self._seg_patch]
        is_holder = np.zeros(len(self.ports), dtype=bool)
        is_holder[holder[holder >= 0]] = True
        # Rank candidates within each patch: higher priority first (priority floor only), then
        # the current holder, then whoever's carrier came first, then port order.
        since = np.where(is_holder, 0, self._carrier_since + 1)
        key = self._key_prio | (since << self._index_bits) | np.arange(len(self.ports))
        key = np.where(cand, key, _KEY_NONE)
        best = np.minimum.reduceat(key[self._seg_order], self._seg_starts)
        has = best != _KEY_NONE
        best_port = np.where(has, best & ((1 << self._index_bits) - 1), -1)

        # The floor stays reserved for a holder who stopped while the patch is still keyed (hang):
        # only that holder, or in a priority patch a higher-priority talker, may take it then.
        valid = holder >= 0
        safe_holder = np.where(valid, holder, 0)
        keyed = np.bincount(
            self._patch_of[ptt_prev & (self._patch_of >= 0)], minlength=len(self._patch_ids)
        )
        reserved = (
            valid & ~cand[safe_holder] & ~self._src_lock[safe_holder] & (keyed[self._seg_patch] > 0)
        )
        safe_best = np.where(has, best_port, 0)
        override = (
            reserved & has & self._seg_priority & (self._prio[safe_best] > self._prio[safe_holder])
        )
        new_holder = np.where(reserved & ~override, holder, best_port)
        self._holder[self._seg_patch] = new_holder
        speaking = new_holder[new_holder >= 0]
        src[speaking[cand[speaking]]] = True
        return src

    def _time_out(self, expired: BoolArray, wanted_raw: BoolArray, src: BoolArray) -> list[Event]:
        """Unkeys transmitters past their time-out timer and locks out hopeless talkers."""
        events: list[Event] = []
        self._tx_lock |= expired
        self._ring[expired] = 0.0
        self._last_wanted[expired] = _NEVER
        for i in np.flatnonzero(expired):
            events.append(
                self._alarm(
                    "timeout",
                    (
                        f"transmitter keyed {self._timeout_s[i]:g} s without a break; unkeyed and "
                        "locked out until its talker drops"
                    ),
                    port=self.ports[i].name,
                )
            )
        # A talker none of whose destinations may transmit any more has lost the floor.
        npatch = len(self._patch_ids) + 1
        pid_pad = self._pid_pad
        wants = np.bincount(pid_pad[wanted_raw], minlength=npatch)
        locked = np.bincount(pid_pad[wanted_raw & self._tx_lock], minlength=npatch)
        dead = (wants > 0) & (wants == locked)
        dead[-1] = False
        for i in np.flatnonzero(src & dead[pid_pad] & ~self._src_lock):
            self._src_lock[i] = True
            self._end_reason[i] = _EndReason.TIMEOUT
            events.append(
                self._alarm(
                    "stuck_carrier",
                    ("every destination timed out; this port's carrier is ignored until it drops"),
                    port=self.ports[i].name,
                )
            )
        return events

    def _mix(
        self,
        rx: FloatFrames,
        src: BoolArray,
        wanted: BoolArray,
        pid_pad: IntArray,
        ptt: BoolArray,
        speaking: BoolArray | None = None,
    ) -> FloatFrames:
        n, frame = len(self.ports), self.frame_samples
        out = np.zeros((n, frame), dtype=np.float32)
        if speaking is not None:
            self._play_announcements(out, speaking)
        dest = np.flatnonzero(wanted)
        if dest.size:
            if self._mixer is None or not np.array_equal(self._mixer_src, src):
                talkers = np.flatnonzero(src)
                self._mixer = sparse.csr_matrix(
                    (np.ones(talkers.size, dtype=np.float32), (self._patch_of[talkers], talkers)),
                    shape=(len(self._patch_ids) + 1, n),
                )
                self._mixer_src = src.copy()
            sums = np.asarray(self._mixer @ rx, dtype=np.float32)
            mixed = sums[pid_pad[dest]]
            own = src[dest]
            if own.any():  # mix-minus: a full-duplex talker does not hear itself
                mixed[own] -= rx[dest[own]]
            out[dest] = self._limit(mixed, dest)
        self._gain[~wanted] = 1.0
        if src.any():
            talkers = np.flatnonzero(src)
            peaks = np.abs(rx[talkers]).max(axis=1)
            self._call_peak[talkers] = np.maximum(self._call_peak[talkers], peaks)
        return self._delay(out, ptt)

    def _announcing(self, wanted: BoolArray, t: int) -> BoolArray:
        """Ports that send announcement audio this tick (free ones with some queued)."""
        speaking = np.zeros(len(self.ports), dtype=bool)
        max_wait = seconds_to_ticks(ANNOUNCE_MAX_WAIT_S, self.clock.frame_ms)
        for i, (_, pos, queued, _) in list(self._announcements.items()):
            busy = wanted[i] or self._carrier[i] or self._tx_lock[i] or not self._available[i]
            if busy and pos == 0:
                if t - queued > max_wait:
                    del self._announcements[i]
                continue
            if busy:  # a call took the port mid-announcement: the rest is dropped
                del self._announcements[i]
                continue
            speaking[i] = True
        return speaking

    def _play_announcements(self, out: FloatFrames, speaking: BoolArray) -> None:
        frame = self.frame_samples
        for i in np.flatnonzero(speaking):
            audio, pos, queued, reason = self._announcements[int(i)]
            chunk = audio[pos : pos + frame]
            out[i, : chunk.size] = chunk
            if pos + frame >= audio.size:
                del self._announcements[int(i)]
            else:
                self._announcements[int(i)] = (audio, pos + frame, queued, reason)

    def _limit(self, mixed: FloatFrames, rows: IntArray) -> FloatFrames:
        # Instant attack (the whole frame at the new, lower gain), smooth release (a ramp that
        # never exceeds the gain this frame allows): the output peak never passes the ceiling.
        peak = np.abs(mixed).max(axis=1)
        prev = self._gain[rows]
        allowed = np.where(peak > LIMITER_CEILING, LIMITER_CEILING / np.maximum(peak, 1e-9), 1.0)
        relaxed = 1.0 - (1.0 - prev) * self._release
        new = np.minimum(relaxed, allowed).astype(np.float32)
        self._gain[rows] = new
        if np.all(new == 1.0) and np.all(prev == 1.0):
            return mixed
        ramp = prev[:, None] + (new - prev)[:, None] * self._ramp
        gains = np.where((new < prev)[:, None], new[:, None], ramp)
        limited: FloatFrames = (mixed * gains).astype(np.float32)
        return limited

    def _delay(self, out: FloatFrames, ptt: BoolArray) -> FloatFrames:
        """Writes this frame into the delay line; returns what each keyed port sends now
        (its audio of `tx_delay_ms` ago) and silence on every unkeyed port."""
        frame, length = self.frame_samples, self._ring_len
        write = (self.tick_index * frame) % length
        self._ring[:, write : write + frame] = out
        tx = np.zeros_like(out)
        for delay, group in self._delay_groups:
            rows = group[ptt[group]]
            if not rows.size:
                continue
            start = (write - delay) % length
            if start + frame <= length:
                tx[rows] = self._ring[rows, start : start + frame]
            else:  # the delayed frame wraps around the end of the ring
                split = length - start
                tx[rows, :split] = self._ring[rows, start:]
                tx[rows, split:] = self._ring[rows, : frame - split]
        return tx

    # ------------------------------------------------------------------ calls and events
    def _port_ref(self, i: int) -> PortRef:
        talkgroup, agency = self._serves[i]
        return {"port": self.ports[i].name, "talkgroup": talkgroup, "agency": agency}

    def _now(self) -> str:
        return self.clock.iso(self.tick_index)

    def _alarm(self, kind: str, detail: str, *, port: str | None) -> Alarm:
        # Key order as published: kind, then port when there is one, then detail.
        if port is None:
            return {"type": "alarm", "time": self._now(), "kind": kind, "detail": detail}
        return {"type": "alarm", "time": self._now(), "kind": kind, "port": port, "detail": detail}

    def _ptt_event(self, i: int, on: bool, reason: PttReason) -> Ptt:
        return {
            "type": "ptt",
            "time": self._now(),
            "port": self.ports[i].name,
            "on": on,
            "reason": reason,
        }

    def _start_call(self, i: int, t: int, wanted: BoolArray, events: list[Event]) -> None:
        pid = int(self._patch_of[i])
        patch = self._patch_name(pid)
        members = [self.port_index[m.port] for m in self._members[patch]]
        dests = [self._port_ref(j) for j in members if j != i and wanted[j]]
        call = _Call(
            call_id=f"{self.gateway_id}-{self.clock.compact(t)}-{self.ports[i].name}",
            patch=patch,
            source=self._port_ref(i),
            destinations=dests,
            start_tick=t,
        )
        self._calls[i] = call
        start: CallStart = {
            "type": "call_start",
            "time": self._now(),
            "call_id": call.call_id,
            "patch": patch,
            "source": call.source,
            "destinations": dests,
        }
        events.append(start)

    def _end_call(self, i: int, t: int, reason: CallEndReason) -> CallEnd:
        call = self._calls.pop(i)
        peak = float(self._call_peak[i])
        peak_dbfs = round(20 * math.log10(peak), 1) if peak > 1e-6 else SILENCE_DBFS
        return {
            "type": "call_end",
            "time": self._now(),
            "call_id": call.call_id,
            "patch": call.patch,
            "source": call.source,
            "destinations": call.destinations,
            "start": self.clock.iso(call.start_tick),
            "end": self.clock.iso(t),
            "duration_s": round((t - call.start_tick) * self.clock.frame_ms / 1000, 3),
            "reason": reason,
            "peak_dbfs": peak_dbfs,
            "recording": None,
        }

    # ------------------------------------------------------------------ reload
    _PORT_STATE = (
        "_carrier",
        "_carrier_since",
        "_inhibit_until",
        "_src",
        "_src_lock",
        "_end_reason",
        "_tx_lock",
        "_ptt",
        "_keyed_since",
        "_last_wanted",
        "_gain",
        "_call_peak",
        "_online",
        "_ready",
        "_available",
    )

    def successor(
        self, ports: Sequence[PortSpec], patches: Sequence[PatchSpec]
    ) -> tuple[PatchEngine, list[Event]]:
        """An engine for a new patch table that carries on where this one is.

        Reconciles wanted against current (as SvxLink's link manager does) instead of starting
        over: a patch whose spec and member ports are unchanged stays enabled, and its calls,
        floors, PTT hang, timers and delayed audio carry on without a glitch. An enabled patch
        that changed or went away is disabled first (its calls end with `patch_disabled`); the
        command layer decides whether it comes back. Call this between ticks.
        """
        new = PatchEngine(ports, patches, clock=self.clock, gateway_id=self.gateway_id)
        new.tick_index = self.tick_index
        unchanged = {
            p.name
            for p in new.ports
            if p.name in self.port_index and self.ports[self.port_index[p.name]] == p
        }
        kept = sorted(
            name
            for name in self._enabled
            if new.patches.get(name) == self.patches[name]
            and all(m.port in unchanged for m in self._members[name])
        )
        events: list[Event] = []
        for name in sorted(self._enabled - set(kept)):
            events.extend(self.disable_patch(name))
        for port in unchanged:  # before re-enabling: an offline pool radio is not taken
            new._online[new.port_index[port]] = self._online[self.port_index[port]]
        for name in kept:  # the same pool radios as before (they are free in the new engine)
            new.enable_patch(name, prefer=self.assignments)

        old_rows = np.array([self.port_index[n] for n in sorted(unchanged)], dtype=np.int64)
        new_rows = np.array([new.port_index[n] for n in sorted(unchanged)], dtype=np.int64)
        if old_rows.size:
            for attr in self._PORT_STATE:
                getattr(new, attr)[new_rows] = getattr(self, attr)[old_rows]
            # Delayed audio: the last samples of each kept port move to the same place relative
            # to the write position of the next tick, whatever the new ring's length.
            frame = self.frame_samples
            back = np.arange(1, min(self._ring_len, new._ring_len) + 1)
            old_cols = (self.tick_index * frame - back) % self._ring_len
            new_cols = (new.tick_index * frame - back) % new._ring_len
            new._ring[np.ix_(new_rows, new_cols)] = self._ring[np.ix_(old_rows, old_cols)]
        for i, call in self._calls.items():
            new._calls[new.port_index[self.ports[i].name]] = call
        for name in kept:
            holder = int(self._holder[self._patch_ids[name]])
            if holder >= 0:
                new._holder[new._patch_ids[name]] = new.port_index[self.ports[holder].name]
        return new, events

    # ------------------------------------------------------------------ read-only views
    @property
    def carrier(self) -> BoolArray:
        return self._carrier.copy()

    @property
    def ptt(self) -> BoolArray:
        return self._ptt.copy()

    def active_call_sources(self) -> list[tuple[str, int]]:
        """(call id, source port row) of every call in progress: the rows of this tick's rx
        whose audio the patches carried (what a recorder keeps)."""
        return [(c.call_id, i) for i, c in self._calls.items()]

    def active_calls(self) -> list[dict[str, Any]]:
        """The calls in progress: id, patch, source, destinations and start time."""
        return [
            {
                "call_id": c.call_id,
                "patch": c.patch,
                "source": c.source,
                "destinations": c.destinations,
                "start": self.clock.iso(c.start_tick),
            }
            for c in self._calls.values()
        ]
