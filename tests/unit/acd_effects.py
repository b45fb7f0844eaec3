"""Expected router effects, shared by the ACD router tests."""

from __future__ import annotations

from callcenter.acd.model import Event, Offer

RING = 15.0  # the ring timeout the tests' routers are built with
WRAPUP = 5.0


def agent_state(agent_id: str, state: str, reason: str | None = None) -> Event:
    return Event("agent_state", None, None, agent_id, {"state": state, "reason": reason})


class OfferedEvent:
    """Equal to the router's `offered` event for this offer, whatever its explanation says."""

    def __init__(self, call_id: str, queue: str, agent_id: str, offer_id: str, attempt: int) -> None:
        self.expected = (call_id, queue, agent_id, offer_id, attempt)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Event) and other.kind == "offered" and self.expected == (
            other.call_id, other.queue, other.agent_id, other.data.get("offer_id"), other.data.get("attempt"))

    def __repr__(self) -> str:
        return f"OfferedEvent{self.expected}"


def ringing(call_id: str, attempt: int, queue: str, agent_id: str) -> list[object]:
    """The three effects of one offer, in the order the router emits them."""
    offer_id = f"{call_id}/{attempt}"
    return [
        Offer(offer_id, call_id, agent_id, queue, RING),
        OfferedEvent(call_id, queue, agent_id, offer_id, attempt),
        agent_state(agent_id, "reserved"),
    ]
