"""What waiting callers are told while they hold, and when: their place in line and the estimated
wait, as an IVR queue node asks for it.

Pure and clock-free: the engine adds a caller when it reaches the hold loop, asks every so often
which announcements are due, reads the router's figures for them, and hands the text this module
makes to the dialplan (the hold loop plays it between two slices of music, see dialplan
``cc-announce``). Nothing here touches a channel.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

# In the text handed to the dialplan: a part that is not to be said.
SKIP = "x"


@dataclass(frozen=True)
class AnnouncementPlan:
    position: bool  # "you are caller number N" / "you are next"
    estimated_wait: bool  # "the estimated hold time is N minutes" / "less than a minute"
    every: float  # seconds between two announcements
    first_after: float  # seconds into the wait of the first one

    def __post_init__(self) -> None:
        if not (math.isfinite(self.every) and self.every > 0) or not (math.isfinite(self.first_after)
                                                                      and self.first_after >= 0):
            raise ValueError(f"announcement timing must be positive, got every={self.every} "
                             f"first_after={self.first_after}")


def announcement(plan: AnnouncementPlan, position: int | None, estimated_wait: float | None) -> str | None:
    """``"<position>-<minutes>"`` for the dialplan, each part ``x`` when it is not to be said;
    None when there is nothing to say. Minutes are rounded up (a caller is better surprised early
    than late); under a minute is ``0``, said as "less than one minute". No estimate (nobody
    staffs the queue) is never said as a number."""
    place = str(position) if plan.position and position is not None and position >= 1 else SKIP
    minutes = SKIP
    if plan.estimated_wait and estimated_wait is not None and math.isfinite(estimated_wait):
        minutes = "0" if estimated_wait < 60 else str(min(math.ceil(estimated_wait / 60), 999))
    return None if place == SKIP and minutes == SKIP else f"{place}-{minutes}"


class AnnouncementSchedule:
    """When each waiting caller's next announcement is due."""

    def __init__(self) -> None:
        self._plans: dict[str, tuple[AnnouncementPlan, float]] = {}  # call -> (plan, next due)
        self._heap: list[tuple[float, str]] = []  # (due, call), with stale entries skipped on pop

    def __len__(self) -> int:
        return len(self._plans)

    def add(self, call_id: str, plan: AnnouncementPlan, waiting_since: float) -> None:
        due = waiting_since + plan.first_after
        self._plans[call_id] = (plan, due)
        heapq.heappush(self._heap, (due, call_id))

    def remove(self, call_id: str) -> None:
        self._plans.pop(call_id, None)

    def due(self, now: float) -> list[tuple[str, AnnouncementPlan]]:
        """The callers whose announcement is due at ``now``, each moved on to its next one
        (``every`` seconds after now, so a late tick never makes announcements bunch up)."""
        found: list[tuple[str, AnnouncementPlan]] = []
        while self._heap and self._heap[0][0] <= now:
            due, call_id = heapq.heappop(self._heap)
            entry = self._plans.get(call_id)
            if entry is None or entry[1] != due:
                continue  # removed, or re-added with another time
            plan = entry[0]
            found.append((call_id, plan))
            self._plans[call_id] = (plan, now + plan.every)
            heapq.heappush(self._heap, (now + plan.every, call_id))
        return found
