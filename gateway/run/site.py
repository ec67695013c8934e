"""A configured site, ready to run: the engine's ports and patches and the command layer's
policies and principals, derived from a validated `Config`."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.config import Config
from gateway.control.patch_control import PatchControl, PatchPolicy, Principal, Role
from gateway.core.engine import (
    Floor,
    MemberMode,
    MemberSpec,
    PatchEngine,
    PatchSpec,
    PooledMemberSpec,
    PortSpec,
    PortTiming,
)
from gateway.core.events import TickClock
from gateway.ports.simulated import TrafficPattern


@dataclass(frozen=True)
class Site:
    config: Config
    ports: tuple[PortSpec, ...]
    patches: tuple[PatchSpec, ...]
    policies: dict[str, PatchPolicy]
    principals: dict[str, Principal]

    @property
    def gateway_id(self) -> str:
        return self.config.gateway.id

    @property
    def frame_ms(self) -> int:
        return self.config.gateway.frame_ms

    def patches_enabled_in_config(self) -> list[str]:
        return [name for name, patch in self.config.patches.items() if patch.enabled]

    def build(self, clock: TickClock) -> tuple[PatchEngine, PatchControl]:
        engine = PatchEngine(self.ports, self.patches, clock=clock, gateway_id=self.gateway_id)
        expiry = self.config.access.pending_expiry_s
        return engine, PatchControl(engine, self.policies, self.principals, expiry)


def hardware_ports(cfg: Config) -> list[str]:
    """The radios and links that need real hardware (everything not `simulated:`)."""
    ports = [*cfg.radios.items(), *cfg.links.items()]
    return [name for name, port in ports if port.simulated is None]


def traffic_patterns(cfg: Config) -> dict[str, TrafficPattern | None]:
    """Generated traffic per port, as its `simulated: {traffic: ...}` asks (None: none)."""
    patterns: dict[str, TrafficPattern | None] = {}
    for name, port in [*cfg.radios.items(), *cfg.links.items()]:
        t = port.simulated.traffic if port.simulated is not None else None
        patterns[name] = (
            TrafficPattern(t.every_s, t.talk_s, t.level_dbfs, t.seed) if t is not None else None
        )
    return patterns


def build_site(cfg: Config) -> Site:
    ports: list[PortSpec] = []
    for name in cfg.ports():
        port = cfg.port(name)
        talkgroup = cfg.port_talkgroup(name) or ""  # a pool radio serves none until taken
        t = port.timing
        ports.append(
            PortSpec(
                name=name,
                talkgroup=talkgroup,
                agency=talkgroup.split("/", 1)[0],
                timing=PortTiming(t.tx_delay_ms, t.hang_ms, t.timeout_s, t.rx_inhibit_ms),
                full_duplex=port.duplex == "full",
                pool=getattr(port, "pool", None),
            )
        )
    serving: dict[str, list[str]] = {}
    for spec in ports:
        if spec.pool is None:
            serving.setdefault(spec.talkgroup, []).append(spec.name)

    patches: list[PatchSpec] = []
    policies: dict[str, PatchPolicy] = {}
    for name, patch in cfg.patches.items():
        members = tuple(
            MemberSpec(port, MemberMode(m.mode), m.priority)
            for m in patch.members
            for port in serving.get(m.talkgroup, [])
        )
        # A member talkgroup no dedicated port serves takes a pool radio when the patch is enabled.
        pooled = tuple(
            PooledMemberSpec(
                m.talkgroup,
                m.agency,
                tuple(cfg.pool_candidates(m.talkgroup)),
                MemberMode(m.mode),
                m.priority,
            )
            for m in patch.members
            if m.talkgroup not in serving
        )
        patches.append(PatchSpec(name, members, Floor(patch.floor), pooled))
        policies[name] = PatchPolicy(
            agencies=frozenset(m.talkgroup.split("/", 1)[0] for m in patch.members),
            consent=tuple(patch.consent_agencies(cfg)),
        )

    principals = {
        user: Principal(user, Role.DISPATCHER, d.agency)
        for user, d in cfg.access.dispatchers.items()
    }
    principals.update({user: Principal(user, Role.TECHNICIAN) for user in cfg.access.technicians})
    return Site(cfg, tuple(ports), tuple(patches), policies, principals)
