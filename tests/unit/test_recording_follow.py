"""RecordingFollower (callcenter.recording.follow): a real ACD router's ``answered`` and ``ended``
effects lead to exactly one index call per recorded call, with the call's facts (agent, queue,
customer, direction) and its PCI pauses as offsets from the answer; an ``ended`` of a call it
never saw answered indexes nothing."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from callcenter.acd.model import Event
from callcenter.acd.router import Router
from callcenter.recording import follow
from callcenter.recording.follow import RecordingFollower, direction_of

T0 = 1_709_283_600.0  # 2024-03-01T09:00:00Z


class FakeService:
    def __init__(self) -> None:
        self.now = T0
        self.indexed: list[tuple[str, dict[str, Any]]] = []

    def clock(self) -> float:
        return self.now

    async def index_when_ready(self, call_id: str, **facts: Any) -> dict:
        self.indexed.append((call_id, facts))
        return {"id": call_id}


class Floor:
    def __init__(self) -> None:
        self.service = FakeService()
        self.router = Router(["support", "sales"], ring_timeout=15, wrapup_seconds=10)
        self.follower = RecordingFollower(self.service, self.router)
        self.router.login("1001", ["support", "sales"], T0)

    def at(self, offset: float) -> float:
        self.service.now = T0 + offset
        return self.service.now

    def feed(self, effects) -> list:
        for effect in effects:
            self.follower.on_effect(effect)
        return effects

    def event(self, offset: float, kind: str, call_id: str) -> None:
        self.follower.on_event({"id": 1, "ts": T0 + offset, "kind": kind, "call_id": call_id, "queue": None,
                                "agent_id": "1001", "data": {}})

    def answered(self, call_id: str, offset: float, queue: str = "support", **attrs) -> None:
        self.feed(self.router.enqueue(call_id, queue, self.at(offset - 3), attrs=attrs))
        self.feed(self.router.offer_answered(f"{call_id}/1", self.at(offset)))

    def ended(self, call_id: str, offset: float) -> None:
        self.feed(self.router.call_ended(call_id, self.at(offset)))
        self.feed(self.router.wrapup_done("1001", self.at(offset + 10)))


def run(scenario) -> None:
    """The follower spawns its indexing on the running loop: run the story on one."""
    async def main():
        scenario()
        for _ in range(5):
            await asyncio.sleep(0)

    asyncio.run(main())


@pytest.fixture
def floor() -> Floor:
    return Floor()


def test_an_answered_and_ended_call_is_indexed_once_with_its_facts_and_pci_spans(floor):
    def story():
        floor.answered("c1", 10, caller_number="+14155550100", caller_name="Ann Lee")
        floor.event(15, "recording_paused", "c1")
        floor.event(27, "recording_resumed", "c1")
        floor.event(40, "recording_paused", "c1")
        floor.event(42.5, "recording_resumed", "c1")
        floor.ended("c1", 70)

    run(story)
    assert floor.service.indexed == [("c1", {
        "agent_id": "1001", "queue": "support", "customer": "+14155550100", "customer_name": "Ann Lee",
        "direction": "inbound", "started_at": T0 + 10, "ended_at": T0 + 70,
        "pci_spans": [(5.0, 17.0), (30.0, 32.5)],
    })]


def test_a_pause_still_open_at_the_end_has_no_end(floor):
    def story():
        floor.answered("c1", 10)
        floor.event(50, "recording_paused", "c1")
        floor.ended("c1", 70)

    run(story)
    ((_, facts),) = floor.service.indexed
    assert facts["pci_spans"] == [(40.0, None)]
    assert (facts["customer"], facts["customer_name"]) == (None, None)  # no caller number known


def test_pause_rows_of_other_calls_and_stray_resumes_are_ignored(floor):
    def story():
        floor.event(5, "recording_paused", "c1")  # before the answer: not followed yet
        floor.answered("c1", 10)
        floor.event(12, "recording_resumed", "c1")  # nothing paused: ignored
        floor.event(15, "recording_paused", "other")
        floor.event(16, "call_held", "c1")
        floor.event(20, "recording_paused", "c1")
        floor.event(25, "recording_resumed", "c1")
        floor.event(26, "recording_resumed", "c1")  # already resumed: ignored
        floor.follower.on_event({"ts": T0 + 27, "kind": "recording_paused", "call_id": None})
        floor.ended("c1", 30)

    run(story)
    ((_, facts),) = floor.service.indexed
    assert facts["pci_spans"] == [(10.0, 15.0)]


def test_an_ended_without_answered_indexes_nothing(floor):
    def story():
        floor.follower.on_effect(Event("ended", "ghost", "support", "1001", {"talk": 30.0}))
        floor.feed(floor.router.enqueue("c2", "sales", floor.at(0)))  # rings 1001 ...
        floor.feed(floor.router.abandon("c2", floor.at(5)))  # ... and hangs up before the answer

    run(story)
    assert floor.service.indexed == []


def test_a_call_is_indexed_only_once(floor):
    def story():
        floor.answered("c1", 10)
        floor.ended("c1", 20)
        floor.follower.on_effect(Event("ended", "c1", "support", "1001", {"talk": 10.0}))  # a repeat

    run(story)
    assert [call_id for call_id, _ in floor.service.indexed] == ["c1"]


def test_other_effects_and_events_without_a_call_are_ignored(floor):
    def story():
        floor.follower.on_effect(Event("answered", None, "support", "1001", {}))
        floor.follower.on_effect(Event("ended", None, "support", "1001", {}))
        floor.follower.on_effect("not an effect")

    run(story)
    assert floor.service.indexed == []


@pytest.mark.parametrize("attrs, direction", [
    ({}, "inbound"),
    ({"dial_out": {"kind": "callback", "number": "+14155550101"}}, "callback"),
    ({"dial_out": {"kind": "campaign", "number": "+14155550102"}, "campaign": "spring-sale"}, "outbound"),
    ({"campaign": "spring-sale"}, "outbound"),
    ({"dial_out": {"kind": "other", "number": "+14155550103"}}, "outbound"),
])
def test_the_direction_comes_from_the_calls_attrs(floor, attrs, direction):
    def story():
        floor.answered("c1", 10, queue="sales", caller_number="+14155550109", **attrs)
        floor.ended("c1", 20)

    run(story)
    ((call_id, facts),) = floor.service.indexed
    assert (call_id, facts["direction"], facts["queue"], facts["agent_id"]) == ("c1", direction, "sales", "1001")
    assert facts["customer"] == "+14155550109"
    assert direction_of(attrs) == direction


def test_two_calls_at_once_keep_their_own_pauses(floor):
    def story():
        floor.router.login("1002", ["support"], floor.at(0))
        floor.answered("a", 10)
        floor.answered("b", 20)
        floor.event(25, "recording_paused", "a")
        floor.event(30, "recording_paused", "b")
        floor.event(35, "recording_resumed", "a")
        floor.ended("b", 40)
        floor.ended("a", 50)

    run(story)
    facts = dict(floor.service.indexed)
    assert (facts["a"]["agent_id"], facts["b"]["agent_id"]) == ("1001", "1002")
    assert facts["a"]["pci_spans"] == [(15.0, 25.0)] and facts["b"]["pci_spans"] == [(10.0, None)]
    assert (facts["a"]["started_at"], facts["a"]["ended_at"]) == (T0 + 10, T0 + 50)


def test_the_oldest_followed_call_is_dropped_past_the_limit(floor, monkeypatch):
    monkeypatch.setattr(follow, "KEPT_CALLS", 1)

    def story():
        floor.router.login("1002", ["support"], floor.at(0))
        floor.answered("a", 10)
        floor.answered("b", 20)  # a lost `ended` must not grow memory: a is forgotten
        floor.ended("a", 30)
        floor.ended("b", 40)

    run(story)
    assert [call_id for call_id, _ in floor.service.indexed] == ["b"]


def test_close_cancels_indexing_still_running():
    service = FakeService()
    started, cancelled = [], []

    async def slow(call_id, **facts):
        started.append(call_id)
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.append(call_id)
            raise

    service.index_when_ready = slow
    router = Router(["support"], ring_timeout=15, wrapup_seconds=0)
    follower = RecordingFollower(service, router)

    async def main():
        router.login("1001", ["support"], T0)
        for effects in (router.enqueue("c1", "support", T0), router.offer_answered("c1/1", T0 + 1),
                        router.call_ended("c1", T0 + 9)):
            for effect in effects:
                follower.on_effect(effect)
        await asyncio.sleep(0)
        assert (started, cancelled) == (["c1"], [])
        await asyncio.wait_for(follower.close(), 5)
        return list(cancelled)  # as close() returned, before asyncio.run's own clean-up

    assert asyncio.run(main()) == ["c1"]
