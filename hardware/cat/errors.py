"""What can go wrong talking to a radio, as small exceptions carrying one sentence each."""

from __future__ import annotations

from gateway.core.errors import UserError


class CatError(UserError):
    """A radio command that did not do what was asked; the message says what and why."""


class CatTimeout(CatError):
    """The radio did not answer in time (after the driver's retries)."""


class CatRejected(CatError):
    """The radio answered that it refused the command (Kenwood `?;`, Icom NG, ...)."""


class CatProtocolError(CatError):
    """The radio's answer could not be understood (garbage, truncated, wrong command)."""


class CatLinkLost(CatError):
    """The serial line or socket is gone (USB unplugged, EIO/ENODEV, connection closed)."""


class CatVerifyError(CatProtocolError):
    """After tuning, the radio reads back something other than what was set (a `CatError`; also
    a `CatProtocolError`, which is what the drivers raised for this before)."""
