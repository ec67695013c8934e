"""The port contract: what the engine loop asks of the ports, and what hardware tells it back.

The loop (`gateway.run.loop`) ticks a `PortBank`; a bank may also be `HardwarePorts` (it posts
`PortNotice`s and tunes radios) and may carry a `FrameClock` as its `pacer` (a sound card the
engine ticks by). Hardware drivers and the site's port assembly implement these, so they import
this module and not the loop: it imports nothing of the gateway and nothing heavy at run time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt


class PortBank(Protocol):
    """The ports' side of the engine: what they received this frame, and what to send."""

    def frame(self) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_]]: ...

    def transmit(self, tx: npt.NDArray[np.float32], ptt: npt.NDArray[np.bool_]) -> None: ...


@dataclass(frozen=True)
class Tick:
    """One engine tick: when it was due (the card frame's arrival, or the timer's deadline)."""

    due: float
    by_card: bool


class FrameClock(Protocol):
    """A device clock the engine ticks by (a sound card's input: `FramePacer`)."""

    def wait(self) -> Tick | None:
        """Blocks until the next tick is due (a card frame, or the timer while the card is
        silent); None after `wake`."""
        ...

    def wake(self) -> None:
        """Ends a `wait` at once."""
        ...


@dataclass(frozen=True)
class PortNotice:
    """Hardware news about one port, posted from any thread: online or not, the talkgroup it
    was verified tuned to (None: no tuning news), and an alarm (kind, detail) to publish."""

    port: str
    online: bool
    tuned_to: str | None = None
    alarm: tuple[str, str] | None = None


@runtime_checkable
class HardwarePorts(Protocol):
    """A port bank with real radios: it reports ports going offline and online, and tunes
    radios to the talkgroup each serves (a pool radio's changes as patches take it)."""

    def take_notices(self) -> list[PortNotice]:
        """Notices posted since the last call (engine thread)."""
        ...

    def tunable_ports(self) -> list[str]:
        """Ports whose radio the gateway tunes (CAT control)."""
        ...

    def tune(self, port: str, talkgroup: str) -> None:
        """Tune `port` to `talkgroup` ("" for none: an idle pool radio), without blocking;
        the outcome comes back as a notice."""
        ...
