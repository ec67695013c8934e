"""Which class serves which `control.driver` name, and how to build one from its settings.

Driver modules are imported only when used, so `crosspatch unkey-all` and the daemon load the
protocols a site actually has.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from gateway.hardware.cat.base import CatDriver
from gateway.hardware.cat.errors import CatError

DRIVERS: dict[str, tuple[str, str]] = {
    "kenwood": ("gateway.hardware.cat.kenwood", "KenwoodDriver"),
    "kenwood-tm": ("gateway.hardware.cat.kenwood_tm", "KenwoodTmDriver"),
    "yaesu-legacy": ("gateway.hardware.cat.yaesu_legacy", "YaesuLegacyDriver"),
    "yaesu": ("gateway.hardware.cat.yaesu_newcat", "YaesuNewcatDriver"),
    "icom": ("gateway.hardware.cat.icom", "IcomDriver"),
    "rigctld": ("gateway.hardware.cat.rigctld", "RigctldDriver"),
}


@dataclass(frozen=True)
class DriverSettings:
    """Where and how to reach a radio: a serial `port` (device or pyserial URL) and `baud`, or
    for rigctld `host` and `tcp_port`; `address` is Icom's CI-V address."""

    driver: str
    port: str | None = None
    baud: int | None = None
    address: int | None = None
    host: str | None = None
    tcp_port: int | None = None


def driver_class(name: str) -> type[CatDriver]:
    try:
        module_name, class_name = DRIVERS[name]
    except KeyError:
        known = ", ".join(sorted(DRIVERS))
        raise CatError(f"unknown CAT driver '{name}' (drivers: {known})") from None
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise CatError(f"CAT driver '{name}' cannot be loaded: {exc}") from None
    cls: type[CatDriver] = getattr(module, class_name)
    return cls


def make_driver(settings: DriverSettings) -> CatDriver:
    """A driver instance for `settings`, not yet open; RTS and DTR are held inactive."""
    cls = driver_class(settings.driver)
    if settings.driver == "rigctld":
        return cls(settings.host or "localhost", settings.tcp_port or 4532)
    if not settings.port:
        raise CatError(f"driver {settings.driver} needs a serial port (--port or control.port)")
    kwargs: dict[str, object] = {}
    if settings.baud is not None:
        kwargs["baudrate"] = settings.baud
    if settings.driver == "icom":
        if settings.address is None:
            raise CatError("driver icom needs the radio's CI-V address (--address or civ_address)")
        kwargs["address"] = settings.address
    return cls(settings.port, **kwargs)  # type: ignore[arg-type]
