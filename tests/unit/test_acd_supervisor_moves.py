"""A supervisor's changes to waiting calls in the pure router: moving a call to another queue
(it keeps its wait) and raising its priority (it takes its new place at once)."""

from __future__ import annotations

import pytest

from callcenter.acd.model import Event, Offer, RoutingError
from callcenter.acd.router import Router
from tests.unit.acd_effects import RING, WRAPUP


@pytest.fixture
def router() -> Router:
    return Router(["sales", "support"], ring_timeout=RING, wrapup_seconds=WRAPUP)


def waiting_ids(router: Router, queue: str, now: float) -> list[str]:
    return [c["call_id"] for q in router.queues_snapshot(now) if q["queue"] == queue for c in q["waiting"]]


def test_a_moved_call_keeps_its_wait_and_is_offered_in_the_new_queue(router):
    router.enqueue("c1", "sales", now=0)
    router.login("1001", ["support"], now=1)
    router.pause("1001", "break", now=1)
    effects = router.move_call("c1", "support", now=30, by="supervisor:sam")
    moved = [e for e in effects if isinstance(e, Event) and e.kind == "moved"]
    assert moved and moved[0].data["from"] == "sales" and moved[0].data["to"] == "support"
    assert moved[0].data["by"] == "supervisor:sam" and moved[0].data["wait"] == 30
    assert waiting_ids(router, "support", 30) == ["c1"] and waiting_ids(router, "sales", 30) == []
    # a caller who arrived in support later still goes after it: the wait so far counts
    router.enqueue("c2", "support", now=31)
    assert waiting_ids(router, "support", 31) == ["c1", "c2"]
    offered = [e for e in router.unpause("1001", now=32) if isinstance(e, Offer)]
    assert [o.call_id for o in offered] == ["c1"]


def test_a_move_is_offered_at_once_when_the_new_queue_has_a_free_agent(router):
    router.enqueue("c1", "sales", now=0)
    router.login("1001", ["support"], now=1)
    offered = [e for e in router.move_call("c1", "support", now=2) if isinstance(e, Offer)]
    assert [(o.call_id, o.agent_id) for o in offered] == [("c1", "1001")]


def test_only_waiting_calls_move_and_only_to_known_other_queues(router):
    router.enqueue("c1", "sales", now=0)
    with pytest.raises(RoutingError, match="unknown queue"):
        router.move_call("c1", "billing", now=1)
    with pytest.raises(RoutingError, match="already in queue sales"):
        router.move_call("c1", "sales", now=1)
    with pytest.raises(RoutingError, match="no call"):
        router.move_call("nope", "support", now=1)
    router.login("1001", ["sales"], now=2)  # now c1 rings 1001
    with pytest.raises(RoutingError, match="ringing, not waiting"):
        router.move_call("c1", "support", now=3)
    assert router.call("c1").queue == "sales"


def test_raising_priority_moves_a_call_to_the_front(router):
    for n, at in (("c1", 0), ("c2", 1), ("c3", 2)):
        router.enqueue(n, "sales", now=at)
    effects = router.set_priority("c3", 5, now=3, by="supervisor:sam")
    changed = [e for e in effects if isinstance(e, Event) and e.kind == "priority_changed"]
    assert changed and changed[0].data == {"from": 0, "to": 5, "by": "supervisor:sam"}
    assert waiting_ids(router, "sales", 3) == ["c3", "c1", "c2"]
    router.login("1001", ["sales"], now=4)
    assert router.call("c3").agent_id == "1001"


@pytest.mark.parametrize("bad", [1.5, "5", True, 10_000])
def test_priority_must_be_a_bounded_whole_number(router, bad):
    router.enqueue("c1", "sales", now=0)
    with pytest.raises(RoutingError, match="priority"):
        router.set_priority("c1", bad, now=1)
    assert router.call("c1").priority == 0
