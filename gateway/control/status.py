"""What a site looks like right now: ports, patches and calls, as `status` and MQTT show them.

Built on the engine thread (the engine's arrays are read as they are between two ticks); the
retained MQTT states are the fields of docs/design.md, "MQTT topics", picked from the same
snapshot, so the console (`crosspatch status`) and the broker never disagree.
"""

from __future__ import annotations

from typing import Any

from gateway import __version__
from gateway.config import Config
from gateway.control.patch_control import PatchControl
from gateway.core.engine import PatchEngine

PORT_STATE_KEYS = (
    "port",
    "kind",
    "online",
    "talkgroup",
    "agency",
    "rx_mhz",
    "tx_mhz",
    "carrier",
    "ptt",
)
PATCH_STATE_KEYS = (
    "patch",
    "state",
    "floor",
    "members",
    "agencies",
    "consent",
    "approved_by",
    "requested_by",
    "waiting_for",
    "expires",
)


def patch_list(engine: PatchEngine, control: PatchControl) -> list[dict[str, Any]]:
    patches = []
    for name, spec in engine.patches.items():
        members = []
        for m in engine.members(name):
            talkgroup, agency = engine.port_serves(m.port)
            members.append(
                {
                    "port": m.port,
                    "talkgroup": talkgroup or None,
                    "agency": agency or None,
                    "mode": str(m.mode),
                    "priority": m.priority,
                }
            )
        policy = control.policies.get(name)
        patches.append(
            {
                "patch": name,
                "state": str(control.state(name)),
                "floor": str(spec.floor),
                "members": members,
                "pooled": [p.talkgroup for p in spec.pooled],
                "agencies": sorted(policy.agencies) if policy is not None else [],
                "consent": list(policy.consent) if policy is not None else [],
                "approved_by": control.approved_by(name),
                "requested_by": control.requested_by(name),
                "waiting_for": control.waiting_for(name),
                "expires": control.expires(name),
            }
        )
    return patches


def status_snapshot(engine: PatchEngine, control: PatchControl, cfg: Config) -> dict[str, Any]:
    carrier, ptt = engine.carrier, engine.ptt
    ports = []
    for i, spec in enumerate(engine.ports):
        talkgroup, agency = engine.port_serves(spec.name)
        settings = cfg.radios.get(spec.name)
        kind = "link" if settings is None else "radio"
        if settings is not None and settings.simulated is not None:
            kind = "radio (simulated audio)" if settings.has_hardware_control else "simulated"
        channel = cfg.talkgroup(talkgroup) if talkgroup else None
        ports.append(
            {
                "port": spec.name,
                "kind": kind,
                "online": engine.online(spec.name),
                "ready": engine.ready(spec.name),
                "pool": spec.pool,
                "talkgroup": talkgroup or None,
                "agency": agency or None,
                "rx_mhz": channel.rx_mhz if channel is not None else None,
                "tx_mhz": channel.tx_mhz if channel is not None else None,
                "carrier": bool(carrier[i]),
                "ptt": bool(ptt[i]),
                "patch": engine.patch_of_port(spec.name),
            }
        )
    return {
        "ports": ports,
        "patches": patch_list(engine, control),
        "calls": engine.active_calls(),
    }


def retained_states(snapshot: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The retained MQTT port and patch states of a snapshot, by port and by patch name."""
    ports = {p["port"]: {key: p[key] for key in PORT_STATE_KEYS} for p in snapshot["ports"]}
    patches = {p["patch"]: {key: p[key] for key in PATCH_STATE_KEYS} for p in snapshot["patches"]}
    return ports, patches


def site_info(cfg: Config) -> dict[str, Any]:
    """The retained `info` of a gateway: who it is and the agencies its events name."""
    return {
        "gateway": cfg.gateway.id,
        "site": cfg.gateway.site,
        "version": __version__,
        "agencies": {
            name: {"name": agency.name, "country": agency.country}
            for name, agency in cfg.agencies.items()
        },
        "pending_expiry_s": cfg.access.pending_expiry_s,
    }


def access_states(control: PatchControl) -> dict[str, dict[str, Any]]:
    """The retained `access/USER` of every dispatcher and technician: per patch, the commands
    the gateway would accept from them in some state of the patch (`PatchControl.permissions`)."""
    return {
        name: {
            "user": name,
            "role": str(who.role),
            "agency": who.agency,
            "patches": control.permissions(who),
        }
        for name, who in control.principals.items()
    }
