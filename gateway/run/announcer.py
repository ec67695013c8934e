"""When to play announcements: on a patch's enable and disable, and its periodic ID.

The engine plays them (`PatchEngine.announce`: on free ports only, never over a call); this
decides when and where, from the `patch` events the command layer emits and from the clock, for
the daemon and `crosspatch simulate` alike. Engine thread only.
"""

from __future__ import annotations

from gateway.core.engine import PatchEngine
from gateway.core.events import Event
from gateway.dsp.signals import Samples
from gateway.run.announcements import AnnouncementPlan


class Announcer:
    def __init__(self, plan: AnnouncementPlan) -> None:
        self.plan = plan
        self._last_id: dict[str, int] = {}  # patch -> tick of its last enable or ID

    def on_events(self, engine: PatchEngine, events: list[Event]) -> None:
        """Announces each patch enabled or disabled by these events on its member ports."""
        for event in events:
            if event["type"] != "patch" or event["patch"] not in self.plan.patches:
                continue
            patch, state = event["patch"], event["state"]
            if state == "enabled":
                self._last_id[patch] = engine.tick_index
                self._play(engine, patch, self.plan.for_event("enable", patch))
            elif state == "disabled":
                self._last_id.pop(patch, None)
                self._play(engine, patch, self.plan.for_event("disable", patch))

    def on_tick(self, engine: PatchEngine) -> None:
        """Identifies every enabled patch each `id_every_s` (checked once a second)."""
        every_s = self.plan.id_every_s
        ticks_per_s = 1000 // engine.clock.frame_ms
        if every_s is None or engine.tick_index % ticks_per_s:
            return
        every = round(every_s * ticks_per_s)
        for patch in sorted(engine.enabled_patches):
            if patch not in self.plan.patches:
                continue
            since = self._last_id.setdefault(patch, engine.tick_index)
            if engine.tick_index - since >= every:
                self._last_id[patch] = engine.tick_index
                self._play(engine, patch, self.plan.for_event("id", patch))

    @staticmethod
    def _play(engine: PatchEngine, patch: str, samples: Samples | None) -> None:
        if samples is not None:
            engine.announce([m.port for m in engine.members(patch)], samples)
